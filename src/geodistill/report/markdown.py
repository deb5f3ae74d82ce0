"""The report as Markdown: the same sections as the HTML page, figures linked as PNG files."""

from __future__ import annotations

from pathlib import Path

from geodistill.analysis.format import markdown_table
from geodistill.report.sections import Block, Figure, Heading, Pairs, Report, Table, Text


def text(t: str) -> str:
    """``t`` with Markdown's special characters escaped."""
    out = t.replace("\\", "\\\\")
    for ch in "*`<>[]#|":
        out = out.replace(ch, "\\" + ch)
    return out


def _block(b: Block, out_dir: Path) -> list[str]:
    if isinstance(b, Text):
        return [text(b.text), ""]
    if isinstance(b, Heading):
        return [f"### {text(b.text)}", ""]
    if isinstance(b, Table):
        return [markdown_table(b.rows) or b.empty, ""]
    if isinstance(b, Pairs):
        return [markdown_table([{"field": k, "value": v} for k, v in b.pairs])]
    if isinstance(b, Figure):
        alt = b.alt.replace("[", "(").replace("]", ")")
        return [f"![{alt}]({b.png.relative_to(out_dir).as_posix()})", "", f"*{text(b.caption)}*", ""]
    return [f"- `{code}` {text(t)}" for code, t in b.items] + [""]


def render(r: Report, out_dir: Path) -> str:
    """The whole document; figures are linked relative to ``out_dir``."""
    files = ", ".join(f"[{n}]({n})" for n in r.files)
    lines = [
        f"# {text(r.title)}",
        "",
        f"Source folder: `{r.source}`." + (f" Tables as files: {files}." if files else ""),
        "",
    ]
    for s in r.sections:
        lines += [f"## {text(s.title)}", ""]
        for b in s.blocks:
            lines += _block(b, out_dir)
    return "\n".join(lines).rstrip() + "\n"
