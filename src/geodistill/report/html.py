"""The report as one self-contained HTML page: CSS inline, figures as base64 PNG data URIs, no
scripts, no network; every table in its own horizontally scrolling box."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from typing import Any

from geodistill.analysis.format import display_rows
from geodistill.report.sections import Block, Figure, Heading, Pairs, Report, Table, Text

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:1150px;
color:#1b1f24;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}
h2{font-size:1.2rem;border-bottom:1px solid #ccd;padding-bottom:.2rem;margin-top:2rem}
div.table-box{overflow-x:auto;max-width:100%;margin:.6rem 0}
table{border-collapse:collapse;font-size:.82rem}
th,td{border:1px solid #d6d9de;padding:.25rem .5rem;text-align:left;white-space:nowrap}
table.kv td{white-space:normal;overflow-wrap:anywhere;min-width:12rem}
p,li,h3,figcaption{overflow-wrap:anywhere}
th{background:#eef1f5}tr:nth-child(even) td{background:#f8f9fb}
td.num{text-align:right;font-variant-numeric:tabular-nums}
p.verdict{background:#eef7ee;border-left:4px solid #2ca02c;padding:.7rem 1rem;font-size:1rem}
figure{margin:1rem 0}img.plot{max-width:100%;height:auto;border:1px solid #e3e5e8}
figcaption{font-size:.85rem;color:#555}.muted{color:#666;font-size:.85rem}code{font-size:.85rem}
"""
e = html.escape


def _box(table: str) -> str:
    """A table inside its own horizontally scrolling box, so a wide one never widens the page."""
    return f'<div class="table-box">{table}</div>'


def _numberish(text: str) -> bool:
    return bool(re.fullmatch(r"[+\-−]?[\d.]+(e[+\-]\d+)?( ± ([\d.]+|–))?( %)?|–", text))


def table(rows: Sequence[dict[str, Any]], cls: str, **attrs: str) -> str:
    """An HTML table of display rows (numbers right-aligned)."""
    extra = "".join(f' {e(k.replace("_", "-"))}="{e(v)}"' for k, v in attrs.items())
    if not rows:
        return _box(f'<table class="{e(cls)}"{extra}><tr><td>no rows</td></tr></table>')
    columns, cells = display_rows(rows)
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{e(v)}</td>' if _numberish(v) else f"<td>{e(v)}</td>" for v in line)
        + "</tr>"
        for line in cells
    )
    return _box(f'<table class="{e(cls)}"{extra}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def _block(b: Block) -> str:
    if isinstance(b, Text):
        cls = {"verdict": ' class="verdict"', "note": ' class="muted"'}.get(b.kind, "")
        return f"<p{cls}>{e(b.text)}</p>"
    if isinstance(b, Heading):
        return f"<h3>{e(b.text)}</h3>"
    if isinstance(b, Table):
        return table(b.rows, b.cls, **b.attrs)
    if isinstance(b, Pairs):
        body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in b.pairs)
        return _box(f'<table class="{e(b.cls)} kv">{body}</table>')
    if isinstance(b, Figure):
        uri = "data:image/png;base64," + base64.b64encode(b.png.read_bytes()).decode("ascii")
        return (
            f'<figure><img class="plot" alt="{e(b.alt)}" src="{uri}"><figcaption>{e(b.caption)}</figcaption></figure>'
        )
    items = "".join(f"<li><code>{e(code)}</code> {e(text)}</li>" for code, text in b.items)
    return f'<ul class="{e(b.cls)}">{items}</ul>'


def render(r: Report) -> str:
    """The whole page."""
    links = ", ".join(f'<a href="{e(n)}">{e(n)}</a>' for n in r.files)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(r.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(r.title)}</h1>",
        f'<p class="muted">Source folder: <code>{e(r.source)}</code>.'
        + (f" Tables as files: {links}." if links else "")
        + "</p>",
    ]
    for s in r.sections:
        parts += [f'<section id="{e(s.key)}"><h2>{e(s.title)}</h2>', *(_block(b) for b in s.blocks), "</section>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)
