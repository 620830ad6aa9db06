"""The figure canvas every report uses: matplotlib's Agg backend, a resolution and a size cap."""

from __future__ import annotations

import io

from analog_snu.errors import ConfigError

__all__ = ["PLOT_DPI", "MAX_DPI", "MAX_FIGURE_PIXELS", "new_figure", "figure_png"]

#: resolution of every figure the package writes (dots per inch)
PLOT_DPI = 150
#: the highest resolution a figure is rendered at (print quality; above it a figure takes GBs)
MAX_DPI = 600
#: the most pixels one rendered figure may have (an RGBA buffer of 4 bytes each)
MAX_FIGURE_PIXELS = 60_000_000


def new_figure(width: float, height: float):
    """A matplotlib ``Figure`` on the Agg backend (no display needed), constrained layout."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def figure_png(fig, dpi: int = PLOT_DPI) -> bytes:
    """``fig`` as PNG bytes at ``dpi`` (default :data:`PLOT_DPI`); a figure of more than
    :data:`MAX_FIGURE_PIXELS` pixels is refused before it is rendered."""
    width, height = (float(size) * dpi for size in fig.get_size_inches())
    if width * height > MAX_FIGURE_PIXELS:
        raise ConfigError(f"a figure of {width:.0f} x {height:.0f} pixels at {dpi} dpi is larger than the "
                          f"{MAX_FIGURE_PIXELS:,} pixels allowed; use a lower dpi")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
