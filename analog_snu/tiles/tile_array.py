"""aihwkit's logical array of tiles (a layer larger than one tile) without copying each tile's output.

A layer with more than ``max_input_size`` inputs is split by aihwkit into tiles over column
slices of its input, and ``TileModuleArray.forward`` adds the tiles' outputs: it concatenates the
outputs of each input slice's tiles with ``torch.cat``, also when a slice has a single tile (a
copy of that output), and adds the copies in place. For the benchmark network's 784-input layer
(two tiles of 392 inputs) that is two (T*N, F_out) copies and an add per forward, plus the
concatenations' backward. :class:`AddingTileModuleArray` concatenates only where a slice has
several tiles (outputs side by side) and adds the slices' results out of place: the same sums in
the same order (``((a + b) + c) ...``), so the same values and gradients, bit for bit.
"""

from __future__ import annotations

from torch import Tensor, cat, split

from analog_snu.tiles.backend import aihwkit_module

__all__ = ["AddingTileModuleArray"]

_array = aihwkit_module("simulator.tiles.array")


class AddingTileModuleArray(_array.TileModuleArray):
    """aihwkit's ``TileModuleArray`` with a forward that copies no tile output (module docstring);
    set as ``rpu_config.tile_array_class``."""

    def forward(self, x_input: Tensor, tensor_view: tuple | None = None) -> Tensor:
        if self.analog_tile_count == 1:
            return super().forward(x_input, tensor_view)
        last_dim = x_input.ndim - 1
        result, owned = None, False  # owned: a tensor made here, which later slices may add into
        for x, in_tiles in zip(split(x_input, self.in_sizes, dim=last_dim), self.array):
            outputs = [tile(x, tensor_view=tensor_view) for tile in in_tiles]
            part = outputs[0] if len(outputs) == 1 else cat(outputs, last_dim)
            if result is None:  # a tile's own output is left as its autograd node made it
                result, owned = part, len(outputs) > 1
            elif owned:
                result.add_(part)
            else:
                result, owned = result + part, True
        if self.bias is not None:
            if tensor_view is None:
                tensor_view = self.array[-1][-1].get_tensor_view(result.dim())
            return result + self.bias.view(*tensor_view)
        return result
