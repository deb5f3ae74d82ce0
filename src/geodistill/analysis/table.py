"""Results table: gather every run's `results.json`, flatten to one row per run, aggregate.

A *row* is a flat dict (one run). An *aggregate row* is one group of runs that share the
`by` fields (usually everything but the seed) with, for each metric m,

    m_mean = (1/n) Σ x_i          m_std = sqrt( Σ (x_i - m_mean)² / (n - 1) )   (sample std)

and `m_std = nan` when n = 1 (shown as '–').
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from geodistill.core.atomic import write_text
from geodistill.core.errors import GeodistillError
from geodistill.losses import get_term, loss_terms
from geodistill.results.result import FAILED_FILE, RESULTS_FILE

# what makes a setting; runs of one setting that trained in different precisions are kept apart
AGGREGATE_BY = ("dataset", "model", "objective_name", "alpha", "beta", "T", "method", "precision")
AGGREGATE_METRICS = ("accuracy", "f1_macro")
QUALITY_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
COST_FIELDS = ("params", "flops", "size_bytes", "latency_ms")
_REQUIRED = ("run_id", "dataset", "model", "objective_name", "seed")
DASH = "–"


# ---------------------------------------------------------------- reading


def collect(directory: str | Path) -> list[dict[str, Any]]:
    """Read every run under `directory` (any depth; a run folder or a sweep folder).

    A run is a folder with `results.json`; a folder with only `failed.json` (what a sweep
    writes when a point crashed) counts as a failed run. A `failed.json` beside a
    `results.json` is stale (the point was re-run) and ignored. Each returned dict is the
    file's content plus `_path` (the file's path), sorted by path.
    """
    root = Path(directory)
    if root.is_file() and root.name in (RESULTS_FILE, FAILED_FILE):
        files = [root]
    elif root.is_dir():
        files = sorted(root.rglob(RESULTS_FILE))
        done = {f.parent for f in files}
        files += [f for f in root.rglob(FAILED_FILE) if f.parent not in done]
        files.sort()
    else:
        raise GeodistillError(f"{root} is not a folder; give the run or sweep folder that holds results.json files.")
    if not files:
        raise GeodistillError(
            f"No {RESULTS_FILE} found under {root}; give a run or sweep folder whose runs have finished."
        )
    return [_read_one(f) for f in files]


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """A JSON object from ``path``, or a GeodistillError naming the file and ``fix``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeodistillError(f"{path} is not readable JSON ({exc}); {fix}.") from None
    if not isinstance(data, dict):
        raise GeodistillError(f"{path} must hold a JSON object; {fix}.")
    return data


def _read_one(path: Path) -> dict[str, Any]:
    data = read_json_object(path, "re-run that run or delete its folder")
    for key in _REQUIRED:
        if key not in data:
            raise GeodistillError(f"{path} lacks the field '{key}'; re-run that run or delete its folder.")
    if path.name == FAILED_FILE:
        data["status"] = "failed"
    if data.get("status", "ok") == "ok":
        metrics = data.get("metrics")
        if not isinstance(metrics, dict) or not isinstance(metrics.get("accuracy"), (int, float)):
            raise GeodistillError(
                f"{path} has status 'ok' but no number at 'metrics.accuracy'; re-run that run or delete its folder."
            )
    data["_path"] = str(path)
    return data


# ---------------------------------------------------------------- tidy rows


def is_number(x: Any) -> bool:
    """True for a finite int or float (not bool, not nan/inf): a value that can be averaged."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _teachers(t: Any) -> Any:
    """A run's teacher as one cell: several checkpoints joined by ' + '."""
    return " + ".join(map(str, t)) if isinstance(t, list) else t


def precision_of(result: dict[str, Any]) -> str | None:
    """The precision a run trained in: results.json's ``precision.value``, else its config's."""
    p = result.get("precision")
    if isinstance(p, dict) and p.get("value"):
        return str(p["value"])
    return ((result.get("config") or {}).get("train") or {}).get("precision")


def tidy_rows(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per run: identity, hyper-parameters, quality metrics, per-class F1
    (`f1[<class>]` columns, the union over all runs, None where a run lacks the class),
    cost (params, flops, size_bytes, latency_ms), epochs, `converged` (True/False; None for a
    results.json from before convergence was recorded) and `late_slope_pts` (see
    `engine.convergence`), wall time, status, error."""
    results = list(results)
    classes: list[str] = []
    for r in results:
        for c in (r.get("metrics") or {}).get("per_class_f1") or {}:
            if c not in classes:
                classes.append(c)
    rows = []
    for r in results:
        m = r.get("metrics") or {}
        cost = r.get("cost") or {}
        per_class = m.get("per_class_f1") or {}
        row: dict[str, Any] = {
            "run_id": r.get("run_id"),
            "dataset": r.get("dataset"),
            "model": r.get("model"),
            "role": r.get("role"),
            "teacher": _teachers(r.get("teacher")),
            "method": r.get("method") or "",
            "objective_name": r.get("objective_name"),
            "objective": r.get("objective"),
            "alpha": _num(r.get("alpha")),
            "beta": _num(r.get("beta")),
            "T": _num(r.get("T")),
            "seed": r.get("seed"),
            "size": r.get("size"),
        }
        for k in QUALITY_METRICS:
            row[k] = _num(m.get(k))
        for c in classes:
            row[f"f1[{c}]"] = _num(per_class.get(c))
        for k in COST_FIELDS:
            row[k] = _num(cost.get(k))
        row["epochs"] = r.get("epochs")
        row["precision"] = precision_of(r)
        conv = r.get("convergence") if isinstance(r.get("convergence"), dict) else {}
        row["converged"] = conv.get("converged") if isinstance(conv.get("converged"), bool) else None
        row["late_slope_pts"] = _num(conv.get("late_slope_pts"))
        row["wall_time_s"] = _num(r.get("wall_time_s"))
        row["status"] = r.get("status", "ok")
        row["error"] = r.get("error")
        if isinstance(m.get("correct"), str):  # per test image, for `stats.image_variance`
            row["_correct"], row["_correct_of"] = m["correct"], m.get("correct_of")
        rows.append(row)
    return rows


# ---------------------------------------------------------------- aggregate


def sort_key(value: Any) -> tuple:
    """Orders mixed cells: None first, then numbers by value, then strings."""
    if value is None:
        return (0, 0, "")
    if isinstance(value, (int, float)):
        return (1, float(value), "")
    return (2, 0, str(value))


OPTIONAL_COLUMNS = ("method", "precision")  # rows may lack them (results written before they existed)


def check_columns(rows: Sequence[dict[str, Any]], columns: Iterable[str], what: str) -> None:
    """Raise if a requested column appears in none of the rows (a typo would else give nothing)."""
    if not rows:
        return
    present = {k for row in rows for k in row}
    for c in columns:
        if c not in present and c not in OPTIONAL_COLUMNS:
            raise GeodistillError(
                f"'{c}' asked of {what} is not a column of the results table; use one of: {', '.join(sorted(present))}."
            )


def aggregate(
    rows: Iterable[dict[str, Any]],
    by: Sequence[str] = AGGREGATE_BY,
    metrics: Sequence[str] = AGGREGATE_METRICS,
) -> list[dict[str, Any]]:
    """Group the runs with status 'ok' by the `by` fields; per group: n, n_failed and, for
    each metric, `<m>_mean` and `<m>_std` (sample std, ddof=1; nan when n = 1). Missing or
    nan values (e.g. an empty test split) are left out of the mean. Rows with a `converged`
    column give the group a `converged` cell (see `converged_cell`)."""
    rows = list(rows)
    check_columns(rows, [*by, *metrics], "aggregate")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    failed: dict[tuple, int] = {}
    for row in rows:
        key = tuple(row.get(k) for k in by)
        if row.get("status", "ok") == "ok":
            groups.setdefault(key, []).append(row)
        else:
            failed[key] = failed.get(key, 0) + 1
    with_flags = any("converged" in r for r in rows)
    out = []
    for key in sorted(set(groups) | set(failed), key=lambda k: tuple(sort_key(v) for v in k)):
        members = groups.get(key, [])
        agg: dict[str, Any] = dict(zip(by, key))
        agg["n"] = len(members)
        agg["n_failed"] = failed.get(key, 0)
        for m in metrics:
            values = [float(r[m]) for r in members if is_number(r.get(m))]
            agg[f"{m}_mean"] = statistics.fmean(values) if values else math.nan
            agg[f"{m}_std"] = statistics.stdev(values) if len(values) > 1 else math.nan
        if with_flags:
            agg["converged"] = converged_cell([r.get("converged") for r in members])
        out.append(agg)
    return out


def converged_cell(flags: Sequence[bool | None]) -> str | None:
    """'2/3': runs that converged of those that record it, '(1 unknown)' added for runs without a
    record (old results.json); None when none records it."""
    known = [f for f in flags if isinstance(f, bool)]
    if not known:
        return None
    unknown = len(flags) - len(known)
    return f"{sum(known)}/{len(known)}" + (f" ({unknown} unknown)" if unknown else "")


# ---------------------------------------------------------------- formatting


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


# ---------------------------------------------------------------- writers


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically (see `geodistill.atomic`)."""
    return write_text(path, text)


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
    return atomic_write_text(path, buf.getvalue())


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
    return atomic_write_text(path, json.dumps(clean, indent=2, ensure_ascii=False) + "\n")


def write_markdown(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Markdown table (see `markdown_table`): quality metrics in %, others to 4 significant digits."""
    return atomic_write_text(path, markdown_table(rows))


# ---------------------------------------------------------------- the thesis's tables

ALPHA_FAMILY = ("dataset", "model", "objective_name", "T")


def has_nuclear(row: dict[str, Any]) -> bool:
    """Whether a setting carries the nuclear-norm term β·‖W₁‖* (a term on the first-layer
    weight) with a nonzero weight: its objective (preset or spec, from `objective_name`) is
    built at the row's β and T and a generic α, since the setting spans α (β None means the
    preset's β = α)."""
    T = row.get("T")
    try:
        terms = loss_terms(str(row.get("objective_name") or ""), beta=row.get("beta"), T=4.0 if T is None else T)
    except GeodistillError:
        return False
    return any(t.active and get_term(t.name).needs_first_weight for t in terms)


def _alpha_swept(row: dict[str, Any]) -> bool:
    return row.get("alpha") is not None and row.get("role") != "teacher" and row.get("objective_name") != "student"


def alpha_table(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The thesis's α table in long form. A *family* is one (dataset, student model, objective,
    T) run at two or more α values; for each family, one row per (β, α) with n, n_failed,
    accuracy and macro F1 as mean and sample sd over seeds (see `aggregate`), and `nuclear`
    (the setting carries β·‖W₁‖*, see `has_nuclear`). Sorted by family, β, α."""
    rows = [r for r in rows if _alpha_swept(r)]
    alphas: dict[tuple, set] = {}
    for r in rows:
        alphas.setdefault(tuple(r.get(k) for k in ALPHA_FAMILY), set()).add(r.get("alpha"))
    kept = [r for r in rows if len(alphas[tuple(r.get(k) for k in ALPHA_FAMILY)]) >= 2]
    if not kept:
        return []
    out = aggregate(kept, by=(*ALPHA_FAMILY, "beta", "alpha"), metrics=("accuracy", "f1_macro"))
    for a in out:
        a["nuclear"] = has_nuclear(a)
    return out


def cost_ratios(ref: dict[str, Any] | None, row: dict[str, Any]) -> dict[str, float | None]:
    """The reference's (the teacher's) mean cost over the row's cost: `params_ratio`,
    `flops_ratio`, `speedup` (reference latency / latency); None where a value is missing."""
    out: dict[str, float | None] = {}
    for key, field in (("params_ratio", "params"), ("flops_ratio", "flops"), ("speedup", "latency_ms")):
        num, den = (ref or {}).get(f"{field}_mean"), row.get(field)
        out[key] = num / den if is_number(num) and is_number(den) and den > 0 else None
    return out


def teacher_student_table(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Teacher against student, per dataset: each teacher model, the student alone, and the
    distilled setting with the highest mean accuracy. Each row: `who`, the setting, n, mean and
    sd over seeds of accuracy and macro precision/recall/F1, the mean cost (params, flops,
    size_bytes, latency_ms), and the best teacher's cost over the row's: `params_ratio`,
    `flops_ratio`, `speedup` (teacher latency / latency; None where latency is missing), and
    `converged` (see `converged_cell`; None where the runs record none)."""
    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    if not rows:
        return []
    by = ("dataset", "role", "model", "objective_name", "alpha", "beta", "T")
    groups = aggregate(rows, by=by, metrics=(*QUALITY_METRICS, *COST_FIELDS))
    out: list[dict[str, Any]] = []
    for ds in sorted({g["dataset"] for g in groups}, key=sort_key):
        mine = [g for g in groups if g["dataset"] == ds]

        def best(gs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            gs = [g for g in gs if is_number(g["accuracy_mean"])]
            return [max(gs, key=lambda g: g["accuracy_mean"])] if gs else []

        teachers = sorted(
            (g for g in mine if g["role"] == "teacher"),
            key=lambda g: -g["accuracy_mean"] if is_number(g["accuracy_mean"]) else 0.0,
        )
        alone = [g for g in mine if g["role"] == "student" and g["objective_name"] == "student"]
        distilled = best([g for g in mine if g["role"] == "distilled"])
        ref = teachers[0] if teachers else None
        for who, gs in (("teacher", teachers), ("student alone", alone), ("distilled (best)", distilled)):
            for g in gs:
                row = {"who": who, **{k: g[k] for k in by if k != "role"}, "n": g["n"]}
                for m in QUALITY_METRICS:
                    row[f"{m}_mean"], row[f"{m}_std"] = g[f"{m}_mean"], g[f"{m}_std"]
                for c in COST_FIELDS:
                    row[c] = g[f"{c}_mean"] if is_number(g[f"{c}_mean"]) else None
                row.update(cost_ratios(ref, row), converged=g.get("converged"))
                out.append(row)
    return out
