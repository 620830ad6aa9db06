"""aihwkit stays behind analog_snu.tiles: no module above it touches aihwkit's object model.

import-linter (pyproject.toml) sees import statements only; aihwkit's objects are also reachable
by duck typing (``module.get_weights()``, ``tile.tile``, ``"analog_ctx"``). This test reads
every module outside ``analog_snu/tiles/`` and fails naming ``file:line`` for each attribute
of aihwkit's object model it uses, each string that spells one of aihwkit's module paths, and
each comparison of a class name to a string (use ``isinstance`` or a ``tiles`` predicate).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "analog_snu"

#: attributes and methods of aihwkit's layers, tiles and RPU configs (the typed handle in
#: analog_snu.tiles.crossbar wraps them)
AIHWKIT_ATTRIBUTES = frozenset({
    "analog_ctx", "analog_module", "analog_tile", "analog_tiles", "named_analog_tiles", "analog_tile_state",
    "get_weights", "set_weights", "get_mapping_scales", "set_mapping_scales", "get_scales", "set_scales",
    "get_learned_out_scales", "set_learned_out_scales", "get_hidden_parameters", "set_hidden_parameters",
    "rpu_config", "reference_combined_weights", "programmed_weights", "drift_noise_parameters",
    "drift_baseline", "shared_weights", "program_weights", "drift_weights", "program_analog_weights",
    "drift_analog_weights", "noise_model", "tile",
})
#: aihwkit module-path parts that a string must not spell
AIHWKIT_NAMES = ("analog_ctx", "analog_module", "analog_tile")
#: aihwkit methods that a string must not name (``getattr(tile, "get_weights")``); the data
#: fields among the attributes (``drift_baseline``, ``tile``) are also keys of our own files
AIHWKIT_METHODS = frozenset(a for a in AIHWKIT_ATTRIBUTES if a.startswith(("get_", "set_", "program", "drift_a", "named_")))
#: attributes of ours under one of aihwkit's names: a Crossbar's or a chip's noise model
OURS = frozenset({"noise_model"})


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _is_class_name(node: ast.AST) -> bool:
    """``type(x).__name__`` or ``x.__class__.__name__``."""
    return isinstance(node, ast.Attribute) and node.attr == "__name__" and (
        (isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name) and node.value.func.id == "type")
        or (isinstance(node.value, ast.Attribute) and node.value.attr == "__class__"))


def violations(path: Path, source: str) -> list[str]:
    """``file:line: what`` for every use of aihwkit's object model in ``source``."""
    tree = ast.parse(source)
    docstrings = _docstring_nodes(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and node.attr in AIHWKIT_ATTRIBUTES and node.attr not in OURS:
            found.append(f"{where}: .{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr == "noise_model" and "rpu" in ast.unparse(node.value):
            found.append(f"{where}: .noise_model of an RPU config")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if any(name in node.value for name in AIHWKIT_NAMES) or node.value in AIHWKIT_METHODS:
                found.append(f"{where}: string {node.value!r}")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_class_name(s) for s in sides) and any(
                    isinstance(s, (ast.Constant, ast.Tuple, ast.List, ast.Set)) for s in sides):
                found.append(f"{where}: class name compared to a string")
            elif any(isinstance(s, ast.Name) for s in sides) and any(
                    isinstance(s, (ast.Tuple, ast.List, ast.Set)) and s.elts
                    and all(isinstance(e, ast.Constant) and str(e.value).startswith("Analog") for e in s.elts)
                    for s in sides):
                found.append(f"{where}: aihwkit class names compared as strings")
    return found


def _modules_outside_tiles() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "tiles" not in p.relative_to(PACKAGE).parts[:1]]


def test_no_module_outside_tiles_touches_aihwkits_object_model():
    modules = _modules_outside_tiles()
    assert len(modules) > 100 and not any(p.parts[-2] == "tiles" for p in modules)
    found = [v for path in modules for v in violations(path.relative_to(PACKAGE.parent), path.read_text())]
    assert not found, "aihwkit's object model used outside analog_snu/tiles/ (go through analog_snu.tiles.crossbar):\n" + "\n".join(found)


@pytest.mark.parametrize(("source", "what"), [
    ("w, b = layer.get_weights()", ".get_weights"),
    ("tile.tile.set_weights(w)", ".tile"),
    ("t.set_mapping_scales(s)", ".set_mapping_scales"),
    ("x = getattr(model, 'named_analog_tiles', None)", "string 'named_analog_tiles'"),
    ("ok = not name.endswith('analog_ctx')", "string 'analog_ctx'"),
    ("grid = 'a.analog_module.array.0.1'", "string 'a.analog_module.array.0.1'"),
    ("nm = tile.rpu_config.noise_model", ".rpu_config"),
    ("if type(m).__name__ == 'AnalogLinear': pass", "class name compared to a string"),
    ("name = type(m).__name__\nif name in ('AnalogLinear', 'AnalogConv2d'): pass", "aihwkit class names compared"),
])
def test_the_scan_catches_each_kind_of_use(source, what):
    found = violations(Path("x.py"), source)
    assert len(found) >= 1 and any(what in f for f in found), found
    assert found[0].startswith("x.py:")


def test_the_scan_passes_docstrings_keywords_and_the_handle():
    source = '''"""Docstring naming get_weights() and analog_module is fine."""
def f(model, device_rpu_config, rpu_config=None):
    """Also here: tile.tile.set_weights."""
    return SNUNetwork([2, 3], rpu_config=rpu_config), [c.read_weights() for c in crossbars(model)]
'''
    assert violations(Path("x.py"), source) == []
