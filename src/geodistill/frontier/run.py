"""``geodistill frontier``: the accuracy-latency frontier of candidate students, alone and
distilled, and the best student under a latency or size budget.

Steps (resumable and shardable like any study, since each is one): phase one trains every
student alone and under every method on the screening seeds; each student's method is chosen
on validation (`frontier.build.choose`); phase two trains the student alone and under its
method on every seed; each student's int8 and fp32 ONNX latency at batch 1 is measured on this
machine (by the first shard, so every shard sees the same numbers); the students on either
Pareto set train on the claim seeds too (their membership decided once, on the first seeds);
then the table, the Pareto sets of both curves, the pick under the budget (exported
as int8 ONNX) and the verdict against the best student alone under the same budget.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from pathlib import Path

from geodistill.analysis.plots import plot_frontier
from geodistill.core.atomic import write_json
from geodistill.deploy.verified import export
from geodistill.engine.api import evaluate
from geodistill.frontier.build import COST_FILE, candidate, choose, cost, split_teachers
from geodistill.frontier.pareto import Candidate, Frontier, alone, distilled, pareto, pick
from geodistill.frontier.report import frontier_text, verdict, write_frontier_report
from geodistill.frontier.spec import FrontierSpec
from geodistill.results.files import ended
from geodistill.study.execute import Options, execute
from geodistill.study.plan import StudyPlan, plan
from geodistill.study.shards import parse_shard

logger = logging.getLogger(__name__)
FRONTIER_FILE = "frontier.json"


def frontier(spec: FrontierSpec, out: str | Path, opts: Options | None = None) -> Frontier | None:
    """Run (or resume) the frontier job ``spec`` in ``out``; returns its outcome, also written
    to ``frontier.json``, ``frontier.html``, ``frontier.md`` and ``frontier.png``. One shard of
    several waits for the others' screening runs before choosing, and for their final runs
    before measuring; ``opts.dry_run``: say the plan (every method on every seed, an upper
    bound, since the choice needs trained runs) and its expected time; returns None."""
    out = Path(out)
    opts = opts or Options()
    opts.what = "frontier"
    if opts.dry_run:
        execute(plan(spec.upper_bound(), out), out, opts)
        return None
    screening = plan(spec.screening(), out)
    execute(screening, out, opts)
    _wait_for_shards(screening, out, opts)
    chosen = choose(spec, screening, out)
    finals = _train(spec, chosen, spec.students, out, opts)
    cands = _candidates(spec, finals, chosen, out, opts)
    members = {c.student for c in (*pareto(cands, acc=alone), *pareto(cands, acc=distilled))}
    if spec.claim_seeds and members:
        finals |= _train(spec, chosen, [s for s in spec.students if s.name in members], out, opts, claim=True)
        cands = _candidates(spec, finals, chosen, out, opts)
    result = Frontier(cands, _teacher_acc(spec, chosen, out))
    result.pareto_alone = [c.student for c in pareto(cands, acc=alone)]
    result.pareto_distilled = [c.student for c in pareto(cands, acc=distilled)]
    result.pick = pick(cands, spec.max_latency_ms, spec.max_size_kb)
    result.best_alone = pick(cands, spec.max_latency_ms, spec.max_size_kb, acc=alone)
    if result.pick is not None and (spec.max_latency_ms or spec.max_size_kb):
        result.exported = _export_pick(result.pick, finals, out)
    result.verdict = verdict(result, spec)
    _write(result, spec, out)
    return result


def _train(spec: FrontierSpec, chosen: dict, students: list, out: Path, opts: Options, claim: bool = False) -> dict:
    """Phase two of ``students`` (on the claim seeds too, for ``claim``), the other shards'
    runs awaited; returns each student's plan."""
    finals = {s.name: plan(spec.final(s, chosen[s.name], claim), out) for s in students}
    for p in finals.values():
        execute(p, out, opts)
    for p in finals.values():
        _wait_for_shards(p, out, opts)
    return finals


def _candidates(spec: FrontierSpec, finals: dict, chosen: dict, out: Path, opts: Options) -> list[Candidate]:
    """One line per student. Its cost is a timing, so only the first shard measures it and the
    others read it: every shard then sees the same Pareto sets and plans the same claim runs."""
    ckpts = {s.name: out / next(j.name for j in finals[s.name].runs if j.label == "student") / "model.ckpt"
             for s in spec.students}  # fmt: skip
    if parse_shard(opts.shard).index != 1:
        _wait_for_costs(spec, out)
    costs = {s.name: cost(s, ckpts[s.name], out, spec.latency_threads) for s in spec.students}
    return [candidate(s, finals[s.name], chosen[s.name], costs[s.name], out) for s in spec.students]


def _wait_for_costs(spec: FrontierSpec, out: Path, poll_s: float = 30.0) -> None:
    """Until the first shard has measured every student's cost."""
    path = out / COST_FILE
    while not (path.is_file() and all(s.name in json.loads(path.read_text()) for s in spec.students)):
        time.sleep(poll_s)


def _wait_for_shards(p: StudyPlan, out: Path, opts: Options, poll_s: float = 30.0) -> None:
    """Until every run of ``p`` has a result or a failure (the other shards' runs included)."""
    if parse_shard(opts.shard).whole:
        return
    waiting = [j.name for j in p.runs if not ended(out / j.name)]
    if waiting:
        logger.info(f"frontier: waiting for {len(waiting)} run(s) of the other shards, e.g. {waiting[0]}")
    while waiting:
        time.sleep(poll_s)
        waiting = [n for n in waiting if not ended(out / n)]


def _teacher_acc(spec: FrontierSpec, chosen: dict, out: Path) -> float:
    """The teacher's test accuracy: the mean over the splits' teachers, or the given checkpoint's
    on its own split."""
    if spec.teacher_ckpt:
        return evaluate(spec.teacher_ckpt).accuracy
    accs = [t.value("accuracy") for t in split_teachers(spec, chosen, out) if t.value("accuracy") is not None]
    return statistics.fmean(accs) if accs else math.nan


def _export_pick(c: Candidate, finals: dict, out: Path) -> str:
    """The picked student's distilled model of the first seed, as verified int8 ONNX."""
    job = next(j for j in finals[c.student].runs if j.label != "student")
    dest = out / f"pick-{c.student}.int8.onnx"
    export(out / job.name / "model.ckpt", "onnx", int8=True, out=dest)
    return str(dest)


def _write(result: Frontier, spec: FrontierSpec, out: Path) -> None:
    write_json(out / FRONTIER_FILE, result.to_dict())
    png = plot_frontier(result.candidates, result.teacher_acc, out / "frontier")[0]
    page, _ = write_frontier_report(result, spec, out, png)
    logger.info("\n" + frontier_text(result, spec).rstrip() + f"\nreport: {page}")
