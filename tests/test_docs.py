"""The documentation's sources: the API overview names the whole public API, and the docstring
markup converter of ``make docs`` (scripts/griffe_rst.py) turns reST into the Markdown expected.

The strict build itself (every page in the nav, every link and anchor valid, every docstring
parsed without a warning) runs in ``make test`` and ``make docs``: ``mkdocs build --strict``.
"""

import importlib.util
from pathlib import Path

import pytest

import analog_snu

ROOT = Path(__file__).resolve().parents[1]


def _converter():
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_rst", ROOT / "scripts" / "griffe_rst.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rest_to_markdown


def test_api_overview_names_every_public_name():
    overview = (ROOT / "docs" / "api" / "index.md").read_text()
    missing = [name for name in analog_snu.__all__ if f"`{name}`" not in overview]
    assert not missing, f"docs/api/index.md does not list {missing}"


def test_every_subpackage_has_an_api_page():
    packages = sorted(p.parent.name for p in (ROOT / "analog_snu").glob("*/__init__.py"))
    pages = {p.stem for p in (ROOT / "docs" / "api").glob("*.md")}
    assert set(packages) <= pages, f"no API page for {sorted(set(packages) - pages)}"
    nav = (ROOT / "mkdocs.yml").read_text()
    assert all(f"api/{name}.md" in nav for name in packages)


def test_roles_become_optional_references_qualified_by_module_or_class():
    convert = _converter()
    text = convert("See :func:`snu_step`, :class:`~analog_snu.layers.SNU` and :meth:`save`.",
                   "analog_snu.functional.snu", "analog_snu.pcm.device.PCMDevice")
    assert text == (
        'See <autoref identifier="analog_snu.functional.snu.snu_step" optional><code>snu_step</code></autoref>, '
        '<autoref identifier="analog_snu.layers.SNU" optional><code>SNU</code></autoref> and '
        '<autoref identifier="analog_snu.pcm.device.PCMDevice.save" optional><code>save</code></autoref>.'
    )
    assert convert("the decay :math:`d` in [0, 1]") == "the decay `d` in [0, 1]"


def test_math_block_becomes_a_fence_and_literal_marker_a_colon():
    convert = _converter()
    text = convert("Update:\n\n.. math::\n\n    s_t = g(a_t)\n\nUse it so::\n\n    step()\n")
    assert text == "Update:\n\n```text\ns_t = g(a_t)\n```\n\nUse it so:\n\n    step()"


def test_simple_table_becomes_a_markdown_table_with_continued_rows():
    convert = _converter()
    table = "\n".join([
        "=====  ==========",
        "kind   parameters",
        "=====  ==========",
        "step   a (1),",
        "       b | c",
        "none   (none)",
        "=====  ==========",
    ])
    lines = convert(table).strip("\n").splitlines()
    assert lines == ["| kind | parameters |", "|---|---|", "| step | a (1), b \\| c |", "| none | (none) |"]
