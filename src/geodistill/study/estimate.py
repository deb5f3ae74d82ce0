"""How long a job will take, said before it starts: a few timed steps of each distinct model.

For every distinct (architecture, size, batch, precision, threads) of the runs still to train,
:func:`speed_of` times ``WARMUP`` + ``TIMED`` training steps (batches assembled as training
assembles them, forward, backward, optimizer step) and a batch of inference on a fresh copy of
the model. A run is then expected to take

    epochs left x (steps per epoch x step time + validation images x image time)
    + test images x image time + its teacher caches (training images x views x the teacher's image time).

The estimate never decides a number: it reads configs, times throw-away models under
``torch.random.fork_rng`` (the global RNG is as it was) with the run's own thread count, and
its result only goes into log lines and the progress view's "about ... left".
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from geodistill.config.run import DistillConfig, RunConfig, build_config
from geodistill.core.progress import duration
from geodistill.data.prepare import TrainData
from geodistill.data.views import plan_of
from geodistill.engine import api
from geodistill.engine.batches import assemble_batch, epoch_order
from geodistill.engine.convergence import resolve_epochs
from geodistill.engine.objective import objective_of
from geodistill.engine.precision import decide
from geodistill.engine.trainer import TrainStep
from geodistill.models import build_model
from geodistill.models.checkpoint import load_checkpoint
from geodistill.models.cost import JOB_TIMING
from geodistill.study.plan import Job

WARMUP, TIMED = 2, 5  # training steps: untimed, then timed (the median is kept)


@dataclass(frozen=True)
class Speed:
    """One model's measured speed: seconds per training step and per inference image."""

    step_s: float
    image_s: float


@dataclass(frozen=True)
class RunEstimate:
    """One run of the job as the estimate sees it."""

    name: str
    role: str
    model: str
    size: int
    epochs: int
    epochs_left: int
    steps: int
    seconds: float
    teachers: tuple[str, ...] = ()
    serial: bool = False  # trained alone even in a pool: a teacher, a budget check


@dataclass
class Estimate:
    """The expected seconds of each run still to train (in order), and the speeds measured."""

    runs: list[RunEstimate] = field(default_factory=list)
    speeds: dict[str, Speed] = field(default_factory=dict)

    def at_once(self, parallel: int) -> int:
        """How many of the student runs are expected to train at a time: ``parallel`` worker
        processes, at most one per core the machine's other work leaves free."""
        return max(1, min(parallel, sum(not r.serial for r in self.runs), free_cores()))

    def expected(self, parallel: int = 1) -> dict[str, float]:
        """Run name -> the seconds of the job's wall time it is expected to take, with ``parallel``
        student runs at a time (what the progress view counts down)."""
        share = self.at_once(parallel)
        return {r.name: r.seconds / (1 if r.serial else share) for r in self.runs}

    def total_s(self, parallel: int = 1) -> float:
        """The job's expected wall time."""
        return sum(self.expected(parallel).values())

    def line(self, what: str, parallel: int = 1) -> str:
        """'recipe demo: 10 runs to train, about 1m40s expected (timed now: cnn4@32px b64 32-true
        1t 12 ms/step, ...)'; ``parallel`` student runs at a time."""
        timed = ", ".join(f"{k} {1000 * s.step_s:.1f} ms/step" for k, s in self.speeds.items())
        n, at_once = len(self.runs), self.at_once(parallel)
        on = f" with {at_once} student runs at a time" if at_once > 1 else ""
        if at_once < parallel and sum(not r.serial for r in self.runs) >= parallel:
            on = f" ({parallel} workers, but the machine's other work leaves {at_once} core(s) free)"
        return (
            f"{what}: {n} run{'s' if n != 1 else ''} to train, about {duration(self.total_s(parallel))} expected{on}"
            f" (timed now: {timed or 'nothing to time'})"
        )

    def run_line(self, name: str) -> str:
        """'[m] expected to take about 40s (timed now: cnn3@32px ... 12.0 ms/step)' for one run."""
        timed = ", ".join(f"{k} {1000 * s.step_s:.1f} ms/step" for k, s in self.speeds.items())
        return f"[{name}] expected to take about {duration(self.total_s())} (timed now: {timed or 'nothing to time'})"

    def table(self) -> str:
        """The plan, one line per run: name, role, model, epochs, teachers, expected time."""
        rows = []
        for r in self.runs:
            what = f"{r.model}@{r.size}px, {r.epochs_left} of {r.epochs} epochs x {r.steps} steps"
            reads = f", reads {', '.join(r.teachers)}" if r.teachers else ""
            rows.append(f"  {r.name:<34} {r.role:<9} {what}{reads}: ~{duration(r.seconds)}")
        return "\n".join(rows)


def _key(cfg: RunConfig, size: int, precision: str) -> str:
    t = cfg.train
    return f"{t.model}@{size}px b{t.batch_size} {precision} {t.threads}t"


def _device(cfg: RunConfig) -> torch.device:
    cuda = cfg.train.accelerator in ("cuda", "gpu") or (cfg.train.accelerator == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if cuda else "cpu")


def _autocast(device: torch.device, precision: str):
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision.startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def speed_of(cfg: RunConfig, data: TrainData, precision: str) -> Speed:
    """Time a fresh ``cfg.train.model`` on ``data`` (see the module docstring); RNG untouched."""
    t, device = cfg.train, _device(cfg)
    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.set_num_threads(t.threads)
        try:
            model = build_model(t.model, len(data.classes), in_channels=data.channels).to(device)
            if t.channels_last:
                model = model.to(memory_format=torch.channels_last)
            step = TrainStep(model, objective_of(cfg.model_copy(update={"distill": DistillConfig()})))
            opt = torch.optim.AdamW(step.parameters(), lr=t.lr)
            batches = epoch_order(data.train, t.seed, 0, 0, 1, t.batch_size)
            took = []
            for i in range(WARMUP + TIMED):  # as Trainer.train_step does it, with the student-alone loss
                t0 = time.perf_counter()
                b = assemble_batch(data, batches[i % len(batches)], plan_of(cfg.data), seed=t.seed, epoch=0, step=i,
                                   rank=0, channels_last=t.channels_last, device=device)  # fmt: skip
                with _autocast(device, precision):
                    loss, _, logits = step(b.x, b.y, None, None)
                bool(torch.isfinite(loss))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                float(loss.detach()), int((logits.argmax(1) == b.y).sum())
                _sync(device)
                took.append(time.perf_counter() - t0)
            return Speed(statistics.median(took[WARMUP:]), _image_s(model, data, t.channels_last, device))
        finally:
            torch.set_num_threads(before)


@torch.no_grad()
def _image_s(model: torch.nn.Module, data: TrainData, channels_last: bool, device: torch.device) -> float:
    """Seconds per image of inference (fp32, as validation runs) on one batch of up to 256 images."""
    model.eval()
    idx = data.train[:256]
    x = data.normalizer(torch.from_numpy(data.images[idx]))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.to(device)
    model(x[:8])
    _sync(device)
    t0 = time.perf_counter()
    model(x)
    _sync(device)
    return (time.perf_counter() - t0) / len(idx)


class _Estimator:
    """Resolves each job's config, data and precision, and times each distinct model once."""

    def __init__(self, out: Path, data: dict, record: bool, teachers: Sequence[Job], resume: bool) -> None:
        self.out, self.data, self.record, self.resume = out, data, record, resume
        self.teachers = {str(self.out.resolve() / t.name / "model.ckpt"): t for t in teachers}
        self.speeds: dict[str, Speed] = {}
        self.known: dict[str, Speed] = {}  # teacher checkpoint -> the speed its own run measured
        self.cached: set[str] = set()  # teachers whose cache an earlier run builds
        self.costed: set[str] = set()  # architectures whose latency an earlier run measures

    def speed(self, cfg: RunConfig, data: TrainData) -> Speed:
        probe = build_model(cfg.train.model, 2, in_channels=data.channels)
        precision = decide(cfg.train, probe, self.out if self.record else None).value
        key = _key(cfg, data.size, precision)
        if key not in self.speeds:
            self.speeds[key] = speed_of(cfg, data, precision)
        return self.speeds[key]

    def teacher_image_s(self, path: str, cfg: RunConfig) -> float:
        """A teacher's inference time per image at its size: measured with its run, else timed now."""
        if path in self.known:
            return self.known[path].image_s
        if path in self.teachers:
            tcfg = build_config(self.teachers[path].spec, where=self.teachers[path].name)
        else:
            meta = load_checkpoint(path)
            size = cfg.distill.teacher_size or meta["size"]
            tcfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"model": meta["arch"]}),
                                          "data": cfg.data.model_copy(update={"size": size})})  # fmt: skip
        return self.speed(tcfg, api.data_for(tcfg, self.data)).image_s

    def run(self, job: Job, cfg: RunConfig, serial: bool = False) -> RunEstimate:
        data = api.data_for(cfg, self.data)
        resolved, _ = resolve_epochs(cfg, len(data.train))
        epochs = int(resolved.train.epochs)
        left = max(0, epochs - (_epochs_done(self.out / job.name) if self.resume else 0))
        speed = self.speed(resolved, data)
        steps = len(epoch_order(data.train, 0, 0, 0, 1, cfg.train.batch_size))
        seconds = left * (steps * speed.step_s + len(data.val) * speed.image_s) + len(data.test) * speed.image_s
        if left and cfg.train.model not in self.costed:  # the job measures each architecture's latency once
            self.costed.add(cfg.train.model)
            seconds += cost_s(speed)
        for path in _teacher_paths(cfg):
            if path not in self.cached:  # a teacher's cache is built once, by the first run that reads it
                self.cached.add(path)
                seconds += len(data.train) * plan_of(cfg.data).views * self.teacher_image_s(path, cfg)
        if job.role == "teacher":
            self.known[str(self.out.resolve() / job.name / "model.ckpt")] = speed
        serial = serial or job.role == "teacher"
        return RunEstimate(
            job.name, job.role, cfg.train.model, data.size, epochs, left, steps, seconds, job.teachers, serial
        )


def free_cores() -> int:
    """The cores this process may use, less the load of other work (the 1-minute load average
    minus this process, which is timing now): what a pool of workers can expect to use. A
    reading of the machine for the estimate only; it decides nothing a run computes."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        others = max(0.0, os.getloadavg()[0] - 1.0)
    except (AttributeError, OSError):  # no load average on this platform
        others = 0.0
    return max(1, int(round(cores - others)))


def cost_s(speed: Speed) -> float:
    """`models.cost.job_cost`'s latency measurement: batches of 1 and 32 timed (warm-up +
    repeats) times each, at most ``max_seconds`` each."""
    calls = JOB_TIMING["warmup"] + JOB_TIMING["repeats"]
    return sum(min(JOB_TIMING["max_seconds"], calls * b * speed.image_s) for b in (1, 32))


def _teacher_paths(cfg: RunConfig) -> list[str]:
    t = cfg.distill.teacher
    return [] if not t or cfg.distill.loss == "student" else [t] if isinstance(t, str) else list(t)


def _epochs_done(run_dir: Path) -> int:
    """Epochs a half-done run already has (rows of its metrics.csv beside a last.ckpt), else 0."""
    csv = run_dir / "metrics.csv"
    if not (run_dir / "last.ckpt").is_file() or not csv.is_file():
        return 0
    return max(0, len(csv.read_text(encoding="utf-8").splitlines()) - 1)


def estimate(
    jobs: Iterable[Job], out: str | Path, *, teachers: Sequence[Job] = (), data: dict | None = None,
    record: bool = True, doubled: Sequence[tuple[Job, Job]] = (), resume: bool = True,
) -> Estimate:  # fmt: skip
    """The expected time of ``jobs`` (teachers first, as the executor runs them) in study folder
    ``out``; ``teachers``: every teacher job of the plan (a student may read one another shard
    trains); ``data``: the executor's memo of prepared data (shared, so nothing is decoded twice);
    ``record``: precision ``auto`` may be recorded in ``out`` (False for a dry run); ``doubled``:
    (budget check, the run it doubles) pairs, each at twice its run's epochs; ``resume``: a
    half-done run continues from its last epoch (else it starts over)."""
    e = _Estimator(Path(out), {} if data is None else data, record, teachers, resume)
    result = Estimate()
    with torch.random.fork_rng(devices=[]):  # building the probes and copies draws from torch's RNG
        for job in jobs:
            result.runs.append(e.run(job, build_config(job.spec, where=job.name)))
        for check, source in doubled:
            cfg = build_config(source.spec, where=source.name)
            epochs = resolve_epochs(cfg, len(api.data_for(cfg, e.data).train))[0].train.epochs
            twice = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 2 * int(epochs)})})
            result.runs.append(e.run(check, twice, serial=True))
    result.speeds = e.speeds
    return result


def estimate_run(cfg: RunConfig, run_dir: str | Path, *, resume: bool, data: dict | None = None) -> Estimate:
    """The expected time of one run (``geodistill train`` / ``distill``) in ``run_dir``."""
    role = "distilled" if _teacher_paths(cfg) else "student"
    job = Job(Path(run_dir).name, cfg.model_dump(), role)
    return estimate([job], Path(run_dir).parent, data=data, record=False, resume=resume)


__all__ = ["TIMED", "WARMUP", "Estimate", "RunEstimate", "Speed", "cost_s", "estimate", "estimate_run", "speed_of"]
