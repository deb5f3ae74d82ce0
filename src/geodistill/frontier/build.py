"""From a frontier's finished runs to its table: the method chosen per student on validation,
each student's cost on the runtime that ships, and one `Candidate` per student."""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path

from geodistill.analysis.stats import paired_difference
from geodistill.config.study import Objective, Student
from geodistill.core.atomic import write_json
from geodistill.deploy.profile import profile_models
from geodistill.frontier.pareto import Candidate
from geodistill.frontier.spec import FrontierSpec
from geodistill.results.result import RunResult, is_baseline
from geodistill.study.choose import by_validation
from geodistill.study.execute import result_of
from geodistill.study.plan import StudyPlan, plan

logger = logging.getLogger(__name__)
CHOICE_FILE = "frontier-choice.json"
COST_FILE = "frontier-cost.json"


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def _std(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else float("nan")


def choose(spec: FrontierSpec, screening: StudyPlan, out: Path) -> dict[str, Objective | None]:
    """Each student's method, chosen on validation over the screening seeds
    (`study.choose.by_validation`) and recorded with every method's figure in
    ``frontier-choice.json``; None for a student whose distilled runs all failed."""
    methods = dict(zip((_label(spec, o, screening) for o in spec.objectives()), spec.objectives()))
    chosen: dict[str, Objective | None] = {}
    record: dict[str, dict] = {}
    for s in spec.students:
        labelled = [(j.label, result_of(out, j.name)) for j in screening.runs if j.label in methods and _of(j.name, s)]
        best, vals = by_validation(labelled)
        chosen[s.name] = methods[best] if best else None
        record[s.name] = {"chosen": best, "mean_best_val": vals, "seeds": spec.screen_seeds}
    write_json(out / CHOICE_FILE, record)
    return chosen


def _label(spec: FrontierSpec, o: Objective, screening: StudyPlan) -> str:
    """The table label the screening plan gives objective ``o`` (its loss, α/β/T and teachers)."""
    first = spec.students[0]
    job = next(j for j in screening.runs if _of(j.name, first) and _matches(j.spec["distill"], o))
    return job.label


def _matches(distill: dict, o: Objective) -> bool:
    own = o.distill()
    several = isinstance(distill.get("teacher"), list)
    return all(distill.get(k) == v for k, v in own.items()) and several == (o.teachers == "ensemble")


def _of(run: str, s: Student) -> bool:
    return run.startswith(f"{s.name}-")


def cost(s: Student, ckpt: Path, out: Path, threads: int) -> dict:
    """The student's parameters, FLOPs, int8 file size and int8 / fp32 ONNX latency at batch 1
    (``threads`` threads), measured once per student and kept in ``frontier-cost.json``."""
    path = out / COST_FILE
    known = json.loads(path.read_text()) if path.is_file() else {}
    if s.name not in known:
        rows = profile_models([ckpt], size=s.size or 0, batches=(1,), runtimes=("onnx", "onnx-int8"), threads=threads,
                              repeats=50, warmup=5)  # fmt: skip
        fp32, int8 = (next(r for r in rows if r["runtime"] == rt) for rt in ("onnx", "onnx-int8"))
        known[s.name] = {"params": fp32["params"], "flops": fp32["flops"], "size_kb": int8["size_bytes"] / 1024,
                         "int8_latency_ms": int8["latency_ms"], "fp32_latency_ms": fp32["latency_ms"]}  # fmt: skip
        write_json(path, known)
    return known[s.name]


def candidate(s: Student, final: StudyPlan, chosen: Objective | None, c: dict, out: Path) -> Candidate:
    """One student's line: alone and distilled over the seeds, the paired gain and its interval."""
    runs = [result_of(out, j.name) for j in final.runs if _of(j.name, s)]
    alone = [r for r in runs if is_baseline(r) and r.ok]
    dist = [r for r in runs if not is_baseline(r) and r.ok]
    pairing = next(iter(paired_difference([*alone, *dist])), None)
    acc = lambda rs: [r.value("accuracy") for r in rs]  # noqa: E731
    flags = [r.converged for r in alone + dist]
    return Candidate(
        student=s.name,
        size=int(s.size or (alone or dist)[0].size or 0),
        **c,
        alone_mean=_mean(acc(alone)),
        alone_std=_std(acc(alone)),
        distilled_mean=_mean(acc(dist)),
        distilled_std=_std(acc(dist)),
        gain_mean=pairing.mean_diff if pairing else float("nan"),
        gain_ci_low=pairing.ci_low if pairing else float("nan"),
        gain_ci_high=pairing.ci_high if pairing else float("nan"),
        ci_over=pairing.ci_over if pairing else "",
        n_seeds=pairing.n if pairing else 0,
        converged_runs=sum(f is True for f in flags),
        total_runs=len(runs),
        method=next((j.label for j in final.runs if _of(j.name, s) and j.label != "student"), ""),
    )


def split_teachers(spec: FrontierSpec, chosen: dict[str, Objective | None], out: Path) -> list[RunResult]:
    """The finished teacher of each split (teacher seed ``teacher_seeds[0]``'s, the one every
    single-teacher method reads)."""
    jobs = {t.name: t for t in plan(spec.screening(), out).teachers}
    for s in spec.students:
        jobs.update({t.name: t for t in plan(spec.final(s, chosen.get(s.name)), out).teachers})
    seed = spec.teacher_seeds[0]
    mine = [n for n, t in jobs.items() if t.spec["train"]["seed"] == seed]
    return [r for r in (result_of(out, n) for n in sorted(mine)) if r.ok]
