"""The report of a run or study folder: one list of sections, rendered as one self-contained
HTML page (`report.html`) and as its Markdown twin (`report.markdown`).

Both hold: the plain-words verdict, what was run (config, objective formulas, data, seeds,
machines), the aggregate table (mean ± sd over seeds), the thesis's tables (teacher against
student; α against accuracy and macro F1 per β, i.e. with and without the nuclear norm), the
paired differences against the student alone with 95% CIs, the figures, the per-run table and
the failed runs. Tables also go to CSV/JSON beside them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from geodistill.analysis.format import write_csv, write_rows_json
from geodistill.analysis.stats import paired_difference
from geodistill.analysis.table import aggregate, alpha_table, run_rows, teacher_student_table
from geodistill.analysis.verdict import verdict
from geodistill.core.atomic import write_text
from geodistill.engine.convergence import RULE
from geodistill.report import content, html, markdown
from geodistill.report.sections import Heading, Items, Pairs, Report, Section, Table, Text
from geodistill.results.files import STUDY_FILE, collect, read_json_object
from geodistill.results.result import RunResult

logger = logging.getLogger(__name__)

PAIRED_METRICS = ("accuracy", "f1_macro")
TS_NOTE = (
    "Per dataset: the teacher, the student trained alone and the distilled setting with the highest "
    "mean accuracy; mean ± sd over seeds; cost is the mean over seeds; × fewer params, × fewer FLOPs "
    "and × faster are the teacher's cost divided by the row's (latency only where measured)."
)
AGG_NOTE = (
    "Sample standard deviation (n − 1); – where a setting has a single seed. converged: how many runs met "
    f"the convergence rule, of those that record it (– where none does). The rule: {RULE}."
)
PAIRED_NOTE = (
    "Δ = setting − student alone, paired by dataset, student model and seed, in percentage points; "
    "95% CI = mean Δ ± t(0.975, n−1)·√(sd²/n + v), where v is the part of the variance owed to which "
    "test images were drawn (for accuracy, when every paired run records its per-image hits: CI over "
    "'seeds and test images'; else v = 0: CI over 'seeds'); wins = seeds with Δ > 0."
)
NO_ALPHA = "No α sweep among these runs: an α table needs one objective run at two or more α values."
NO_FIGURES = "No figures: the runs carry no α values, costs, confusion matrices or histories."


def _what_was_run(results: list[RunResult], study: dict | None, pending: list[str]) -> Section:
    summary = content.runs_summary(results)
    if pending:
        more = ", …" if len(pending) > 10 else ""
        summary.append(("not finished (no result yet)", f"{len(pending)}: {', '.join(pending[:10])}{more}"))
    blocks = [Pairs(summary, "summary"), Heading("Objectives"), Table(content.objectives(results), "objectives")]
    if study:
        blocks += [Heading(f"Sweep configuration ({STUDY_FILE})"), Pairs(content.flatten(study), "config")]
    if machines := content.run_machines(results):
        blocks += [Heading("Machines that ran the runs"), Pairs(machines, "run-machines")]
    blocks += [Heading("Machine (where this report was made)"), Pairs(content.machine_info(), "machine")]
    return Section("what-was-run", "What was run", blocks)


def sections(results: list[RunResult], study: dict | None, pending: list[str], figures: list) -> list[Section]:
    """The report's sections, in order."""
    paired = {m: paired_difference(results, metric=m) for m in PAIRED_METRICS}
    thesis = []
    if ts := teacher_student_table(results):
        thesis += [Heading("Teacher against student"), Text(TS_NOTE, "note")]
        thesis += [Table(content.teacher_student_rows(ts), "teacher-student")]
    alphas = content.alpha_tables(results)
    thesis += [b for title, rows in alphas for b in (Heading(title), Table(rows, "alpha-table"))] or [Text(NO_ALPHA)]
    pairs = [Text(PAIRED_NOTE, "note")]
    for m, p in paired.items():
        pairs += [
            Heading(m),
            Table(content.paired_rows(p), "paired", "No distilled runs to compare.", {"data_metric": m}),
        ]
    out = [
        Section("verdict", "Verdict", [Text(verdict(paired["accuracy"]), "verdict")]),
        _what_was_run(results, study, pending),
        Section("aggregate", "Mean ± sd over seeds", [Text(AGG_NOTE, "note"), Table(_aggregate(results), "aggregate")]),
        Section("thesis-tables", "The thesis tables", thesis),
        Section("paired", "Paired differences against the student alone", pairs),
        Section("figures", "Figures", list(figures) or [Text(NO_FIGURES)]),
        Section("results", "All runs", [Table(content.compact_rows(results), "results")]),
    ]
    if failed := content.failed_items(results):
        out.append(Section("failed", "Failed runs", [Items(failed, "failed")]))
    return out


def _aggregate(results: list[RunResult]) -> list[dict]:
    return [g.flat() for g in aggregate(results)]


def write_report(directory: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Build the report of a run or study folder: `report.html` (self-contained) and `report.md`
    (+ `figures/*.png|svg`, `table.csv|json`, `aggregate.csv`, `paired.csv`, and the thesis
    tables' CSVs when there are any) in `out_dir` (default `<directory>/report`)."""
    src = Path(directory)
    results = collect(src)
    folder = src.parent if src.is_file() else src
    study = read_json_object(folder / STUDY_FILE, "fix it or delete it") if (folder / STUDY_FILE).is_file() else None
    pending = content.pending_points(folder, study)
    if pending:
        logger.warning(
            f"{len(pending)} of the sweep's points have no result yet, so the report covers the others "
            f"(a shard or run has not finished; re-run it to fill them in): {', '.join(pending)}"
        )
    out = Path(out_dir) if out_dir is not None else folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "table.csv": run_rows(results),
        "aggregate.csv": _aggregate(results),
        "paired.csv": [p.flat() for m in PAIRED_METRICS for p in paired_difference(results, metric=m)],
        "teacher_student.csv": teacher_student_table(results),
        "alpha_table.csv": alpha_table(results),
    }
    write_rows_json(files["table.csv"], out / "table.json")
    written = ["table.csv", "table.json"]
    for name, rows in files.items():
        if rows or name in ("table.csv", "aggregate.csv", "paired.csv"):
            write_csv(rows, out / name)
            written += [] if name == "table.csv" else [name]
    doc = Report(
        f"geodistill report: {folder.resolve().name}",
        str(folder),
        written,
        sections(results, study, pending, content.figures(results, out / "figures")),
    )
    return write_text(out / "report.html", html.render(doc)), write_text(out / "report.md", markdown.render(doc, out))
