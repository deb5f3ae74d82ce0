"""What a report says, as a list of sections of typed blocks, rendered by `report.html` and
`report.markdown` alike: a section is written once and appears in both."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Text:
    """A paragraph; ``kind`` ``verdict`` is set apart, ``note`` is small print."""

    text: str
    kind: str = "plain"


@dataclass(frozen=True)
class Table:
    """A table of display rows (column -> value; `analysis.format` formats the cells)."""

    rows: list[dict[str, Any]]
    cls: str
    empty: str = "No rows."
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Pairs:
    """A two-column table of (field, value) texts."""

    pairs: list[tuple[str, str]]
    cls: str


@dataclass(frozen=True)
class Figure:
    """A PNG figure with its alt text and caption."""

    png: Path
    alt: str
    caption: str


@dataclass(frozen=True)
class Items:
    """A bulleted list; each item a (code, text) pair."""

    items: list[tuple[str, str]]
    cls: str


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section."""

    text: str


Block = Text | Table | Pairs | Figure | Items | Heading


@dataclass
class Section:
    """One titled part of the report (``key`` is its HTML id)."""

    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    """The title, the source folder, the table files written beside it, and the sections."""

    title: str
    source: str
    files: list[str]
    sections: list[Section]
