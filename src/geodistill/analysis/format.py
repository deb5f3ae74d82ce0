"""Numbers as people read them, and tables as Markdown, CSV and JSON.

One number format everywhere (Markdown, HTML, a recipe's summary): quality metrics (accuracy,
macro P/R/F1, per-class F1) in percent with 2 decimals, ``± sd`` only where n > 1, standard
deviations and point differences with 2 decimals, other numbers to 4 significant digits.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geodistill.core.atomic import write_text
from geodistill.results.result import QUALITY_METRICS

DASH = "–"


def is_number(x: Any) -> bool:
    """True for a finite int or float (not bool, not nan/inf): a value that can be averaged."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def sort_key(value: Any) -> tuple:
    """Orders mixed cells: None first, then numbers by value, then strings."""
    if value is None:
        return (0, 0, "")
    if isinstance(value, (int, float)):
        return (1, float(value), "")
    return (2, 0, str(value))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _sig4(x: float) -> str:
    """4 significant digits, trailing zeros kept (0.5 -> '0.5000'), no dangling '.'."""
    if x == 0:
        return "0"
    s = f"{x:#.4g}"
    return s[:-1] if s.endswith(".") else s


HYPER_COLUMNS = ("alpha", "beta", "T")


def _metric_of(column: str) -> str:
    """The metric a column shows: 'accuracy' of 'accuracy_mean' / 'accuracy_std'."""
    for suffix in ("_mean", "_std"):
        if column.endswith(suffix):
            return column[: -len(suffix)]
    return column


def is_percent_column(column: str) -> bool:
    """Quality metrics are shown in percent: accuracy, macro precision / recall / F1, per-class
    F1 (`f1[<class>]`), validation accuracy, and their `_mean` / `_std` columns."""
    m = _metric_of(column)
    return m in QUALITY_METRICS or m in ("val_accuracy", "val_acc", "val_f1") or m.startswith("f1[")


def format_value(column: str, value: Any) -> str:
    """Text for one cell: '–' for missing/nan, ints as is; quality metrics (`is_percent_column`)
    ×100 with 2 decimals and ' %' ('85.24 %'), standard deviations (`_std` columns) with 2
    decimals, α/β/T as given (0.1, 4), other floats to 4 significant digits."""
    if _is_missing(value):
        return DASH
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if column in HYPER_COLUMNS:
            return f"{value:g}"
        if is_percent_column(column):
            return f"{100.0 * value:.2f} %"
        if column.endswith("_std"):
            return f"{value:.2f}"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return _sig4(value)
    return str(value)


def format_mean_std(metric: str, mean: Any, std: Any, *, unit: bool = True) -> str:
    """'87.53 ± 1.20 %' for a quality metric (percent, 2 decimals), '0.3121 ± 0.01' otherwise;
    the '± sd' part only where there is a standard deviation (n > 1), e.g. '85.24 %' for one
    run. ``unit`` False leaves out ' %' (for a column whose header says it)."""
    if _is_missing(mean):
        return DASH
    percent = is_percent_column(metric)
    scale = 100.0 if percent else 1.0
    text = f"{scale * float(mean):.2f}" if percent else _sig4(float(mean))
    if not _is_missing(std):
        text += f" ± {scale * float(std):.2f}"
    return text + (" %" if percent and unit else "")


def format_points(mean: Any, sd: Any = None) -> str:
    """A difference in percentage points: '+1.27 ± 0.63' (signed, 2 decimals; '± sd' only
    where there is one), '–' when missing."""
    if _is_missing(mean):
        return DASH
    return f"{float(mean):+.2f}" + ("" if _is_missing(sd) else f" ± {float(sd):.2f}")


def display_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Columns and formatted cells; a pair of `<m>_mean`/`<m>_std` columns becomes one
    column `<m>` showing 'mean ± std'."""
    columns: list[str] = []
    for row in rows:
        for k in row:
            if k not in columns and not k.startswith("_"):
                columns.append(k)
    shown: list[str] = []
    for c in columns:
        if c.endswith("_mean") and c[:-5] + "_std" in columns:
            shown.append(c[:-5])
        elif c.endswith("_std") and c[:-4] + "_mean" in columns:
            continue
        else:
            shown.append(c)
    cells = []
    for row in rows:
        line = []
        for c in shown:
            if c not in columns:  # merged mean ± std column
                line.append(format_mean_std(c, row.get(c + "_mean"), row.get(c + "_std")))
            else:
                line.append(format_value(c, row.get(c)))
        cells.append(line)
    return shown, cells


def _md_escape(text: str) -> str:
    out = text.replace("\\", "\\\\")
    for ch in "|*`<>[]":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table of `rows` (numbers right-aligned), '' if no rows."""
    if not rows:
        return ""
    columns, cells = display_rows(rows)
    numeric = [all(_looks_numeric(line[i]) for line in cells) for i in range(len(columns))]
    head = "| " + " | ".join(_md_escape(c) for c in columns) + " |"
    rule = "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"
    body = ["| " + " | ".join(_md_escape(v) for v in line) + " |" for line in cells]
    return "\n".join([head, rule, *body]) + "\n"


def _looks_numeric(text: str) -> bool:
    t = text.replace(" %", "").replace("±", " ").split()
    if not t:
        return False
    for part in t:
        if part == DASH:
            continue
        try:
            float(part)
        except ValueError:
            return False
    return True


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        for k in row:
            if k not in cols and not k.startswith("_"):
                cols.append(k)
    return cols


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """CSV with the union of the rows' columns; missing values and nan as empty cells."""
    cols = _columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow(["" if _is_missing(row.get(c)) else row.get(c) for c in cols])
    return write_text(path, buf.getvalue())


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_rows_json(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """JSON list of the rows (nan/inf written as null; `_`-prefixed keys dropped)."""
    clean = [{k: _json_safe(v) for k, v in row.items() if not k.startswith("_")} for row in rows]
    return write_text(path, json.dumps(clean, indent=2, ensure_ascii=False) + "\n")


def write_markdown(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Markdown table (see `markdown_table`): quality metrics in %, others to 4 significant digits."""
    return write_text(path, markdown_table(rows))
