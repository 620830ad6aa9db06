"""Griffe extension for ``make docs``: the package's reST markup in docstrings, as Markdown.

The docstrings are Google-style with Sphinx roles (``:func:`name```), ``.. math::`` blocks,
simple reST tables and ``::`` literal blocks; mkdocstrings renders Markdown. This rewrites each
docstring before it is parsed, without touching the source:

- ``:func:`~a.b.c``` (and ``:class:``, ``:meth:``, ``:mod:``, ``:data:``, ``:attr:``, ``:exc:``,
  ``:obj:``) becomes an optional cross-reference to ``a.b.c`` shown as ``c`` in code (a bare
  name is taken in the docstring's module, or its class for ``:meth:`` and ``:attr:``): a link
  where the target is documented, plain code elsewhere (never a broken link);
- ``:math:`x``` becomes ``x`` in code, a ``.. math::`` block a fenced block of its LaTeX (one
  line of code inside a list item);
- a simple reST table (rule lines of ``=``) becomes a Markdown table;
- a paragraph ending in ``::`` ends in ``:`` (the indented block after it renders as code).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(func|class|meth|mod|data|attr|exc|obj):`(~?)([\w.]+)(?:\(\))?`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_TABLE_RULE = re.compile(r"^\s*=+(\s+=+)+\s*$")
_MATH_DIRECTIVE = re.compile(r"^(\s*)\.\. math::\s*$")


def _reference(match: re.Match[str], module: str, owner: str) -> str:
    role, tilde, target = match.groups()
    shown = target.rsplit(".", 1)[-1] if tilde else target
    if "." not in target and role in ("meth", "attr"):  # a member of the docstring's class
        target = f"{owner}.{target}"
    elif "." not in target or target[0].isupper():  # a name of the docstring's module
        target = f"{module}.{target}"
    return f'<autoref identifier="{target}" optional><code>{shown}</code></autoref>'


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _table(lines: list[str]) -> list[str]:
    """A simple reST table (three rule lines) as a Markdown table; a row whose first cell is
    empty continues the row above."""
    starts = [m.start() for m in re.finditer(r"=+", lines[0])]
    rows: list[list[str]] = []
    header_rows = 0
    for line in lines[1:]:
        if _TABLE_RULE.match(line):
            header_rows = header_rows or len(rows)
            continue
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None])]
        if rows and not cells[0]:
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells)]
        else:
            rows.append(cells)
    pad = " " * _indent(lines[0])
    cells_md = [["" if not c else c.replace("|", "\\|") for c in row] for row in rows]
    table = [pad + "| " + " | ".join(row) + " |" for row in cells_md]
    return [*table[:header_rows], pad + "|---" * len(starts) + "|", *table[header_rows:]]


def _blocks(lines: list[str]) -> list[str]:
    """``.. math::`` blocks and simple tables as fenced blocks."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        math = _MATH_DIRECTIVE.match(line)
        if math:
            base = len(math.group(1))
            j = i + 1
            body: list[str] = []
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
                body.append(lines[j])
                j += 1
            while body and not body[-1].strip():  # trailing blank lines stay in the text
                body.pop()
                j -= 1
            content = body[next((k for k, b in enumerate(body) if b.strip()), len(body)):]
            depth = min((_indent(b) for b in content if b.strip()), default=base)
            pad = " " * base
            if base:  # inside a list item, where fences do not work: one line of code
                out += ["", pad + "`" + " ".join(b.strip() for b in content if b.strip()) + "`"]
            else:
                out += ["```text", *(b[depth:] if b.strip() else "" for b in content), "```"]
            i = j
            continue
        if _TABLE_RULE.match(line):
            rules, j = 0, i
            while j < len(lines) and rules < 3:
                rules += bool(_TABLE_RULE.match(lines[j]))
                j += 1
            out += ["", *_table(lines[i:j]), ""]
            i = j
            continue
        out.append(line)
        i += 1
    return out


def rest_to_markdown(text: str, module: str = "analog_snu", owner: str | None = None) -> str:
    """One docstring's reST markup as Markdown (see the module docstring); ``module`` (and
    ``owner``, the class, for ``:meth:`` and ``:attr:``) qualify the relative names of roles."""
    lines = _blocks(text.splitlines())
    lines = [re.sub(r"(\S)::$", r"\1:", line) for line in lines]
    text = "\n".join(lines)
    text = _MATH_ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return _ROLE.sub(lambda match: _reference(match, module, owner or module), text)


class RestToMarkdown(griffe.Extension):
    """Rewrite every docstring with :func:`rest_to_markdown` as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            module = obj.path if obj.is_module else obj.module.path
            owner = obj.path if obj.is_class else obj.parent.path if obj.parent is not None and obj.parent.is_class else None
            obj.docstring.value = rest_to_markdown(obj.docstring.value, module, owner)
