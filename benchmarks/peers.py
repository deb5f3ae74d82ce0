"""Peer benchmark (issue 13): geodistill against timm's distillation tasks on the same work.

timm 1.0 ships ``timm.task.LogitDistillationTask`` (CE + T²·KL on logits) and
``FeatureDistillationTask`` (CE + MSE between projected student and teacher pooled features):
what a user of this ecosystem would pick instead of geodistill. They run the teacher on every
step; geodistill reads the teacher's answers from its exact cache (built once per teacher).

Both sides train the same student (the same geodistill network, seeded to the same initial
weights) from the same teacher checkpoint (made here: no weights can be downloaded), on the
same AID subset and split (geodistill's ``prepare_data`` with split files), with the same
batches and dihedral views (``engine.batches``), AdamW, learning rate, weight decay, warm-up +
cosine schedule (``engine.trainer.lr_factor``), batch size and epochs, and both report the test
accuracy of their best-validation weights. The objectives are the same math: ``kl`` (α = 0.5,
T = 4: 0.5·CE + 0.5·T²·KL) and ``ce:1 + mse_feat:1`` (timm's feature task at equal weights).
Settings: AID 64 px VGG16 -> MobileNetV2 and AID 32 px CNN4 -> CNN3. The runs are interleaved
(per repeat: every setting and objective, the two frameworks in alternating order); figures
are medians over repeats, repeat r using seed r on both sides.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.common import AID
from geodistill.config.run import RunConfig, build_config
from geodistill.data.prepare import TrainData, prepare_data
from geodistill.data.views import plan_of
from geodistill.engine import api
from geodistill.engine.batches import assemble_batch, epoch_order
from geodistill.engine.trainer import lr_factor
from geodistill.models import build_model
from geodistill.models.checkpoint import load_classifier
from geodistill.teachers.sets import load_teachers, teacher_source

HERE = Path(__file__).resolve().parent

ALPHA, T, FEAT_WEIGHT = 0.5, 4.0, 1.0
OBJECTIVES = {"logit": "kl", "feature": f"ce:1 + mse_feat:{FEAT_WEIGHT:g}"}


@dataclass(frozen=True)
class Budget:
    """How much work: images per class in train/val/test, student epochs, repeats, batch size."""

    per_class: tuple[int, int, int]
    epochs: int
    repeats: int
    batch: int


@dataclass(frozen=True)
class Setting:
    """One teacher -> student pair at one image size, with its optimiser settings and its full budget."""

    name: str
    size: int
    teacher: str
    student: str
    lr: float
    teacher_epochs: int
    full: Budget


SETTINGS = (
    # VGG16 trains at ~15 img/s here: a speed measurement on a small subset (accuracy near chance)
    Setting("AID 64 px, VGG16 → MobileNetV2", 64, "vgg16", "mobilenet_v2", 1e-3, 2, Budget((20, 10, 20), 2, 3, 32)),
    # cheap enough for a teacher and students that learn: the accuracy comparison
    Setting("AID 32 px, CNN4 → CNN3", 32, "cnn4", "cnn3", 3e-3, 30, Budget((100, 30, 30), 15, 3, 64)),
)
QUICK = Budget((4, 2, 2), epochs=1, repeats=1, batch=32)


def _source(budget: Budget) -> dict:
    """The dataset: AID, or for ``--quick`` the embedded synthetic set (no data on disk needed)."""
    quick = {"dataset": "synthetic", "n_per_class": 12}
    return quick if budget is QUICK else {"dataset": "folder", "root": str(AID)}


# ---------------------------------------------------------------- timm's view of a geodistill model


class TimmFace(nn.Module):
    """A geodistill ``Classifier`` behind the model interface timm's tasks call: ``forward`` ->
    logits, ``forward_features`` -> pooled features (the head's input), ``forward_head(f,
    pre_logits)`` -> logits or ``f``; ``num_classes``, ``in_chans``, ``num_features`` and a
    ``pretrained_cfg`` whose mean/std are the data's normaliser (so timm renormalises nothing)."""

    def __init__(self, clf: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.clf = clf
        self.num_classes, self.in_chans = clf.num_classes, clf.in_channels
        self.num_features = self.head_hidden_size = clf.feature_dim
        self.pretrained_cfg = {"mean": tuple(mean), "std": tuple(std)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clf(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.clf.forward_features(x)[1]

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return feats if pre_logits else self.clf.head(feats)


def timm_task(kind: str, student: nn.Module, teacher: nn.Module, norm: dict) -> nn.Module:
    """timm's task for ``kind`` ('logit' or 'feature') at this benchmark's weights: logit
    ``(1−α)·CE + α·T²·KL(T)``, feature ``CE + w·MSE(P·f_s, f_t)`` with timm's own projector P."""
    from timm.task import DistillationTeacher, FeatureDistillationTask, LogitDistillationTask

    s = TimmFace(student, norm["mean"], norm["std"])
    t = DistillationTeacher(TimmFace(teacher, norm["mean"], norm["std"]))
    ce = nn.CrossEntropyLoss()
    if kind == "logit":
        return LogitDistillationTask(
            s, t, criterion=ce, task_loss_weight=1 - ALPHA, distill_loss_weight=ALPHA, temperature=T, verbose=False
        )
    return FeatureDistillationTask(
        s, t, criterion=ce, task_loss_weight=1.0, distill_loss_weight=FEAT_WEIGHT, verbose=False
    )


# ---------------------------------------------------------------- data, teacher, configs


def _split_files(setting: Setting, budget: Budget, out: Path) -> dict[str, str]:
    """A stratified subset of geodistill's seeded 60/20/20 split of AID: the first
    ``budget.per_class`` images of each class in each part, written as split files."""
    full = prepare_data(build_config({"data": {**_source(budget), "size": setting.size}}))
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for part, n in zip(("train", "val", "test"), budget.per_class):
        idx = getattr(full, part)
        keep = np.concatenate([idx[full.labels[idx] == c][:n] for c in range(len(full.classes))])  # first n per class
        files[part] = str(out / f"{part}.txt")
        Path(files[part]).write_text("".join(full.dataset.paths[i] + "\n" for i in sorted(keep)))
    return files


def _config(setting: Setting, budget: Budget, files: dict, seed: int, **over: object) -> RunConfig:
    """The student run's config (``over``: train/distill sections to merge)."""
    d = {
        "data": {**_source(budget), "size": setting.size, "split_files": files},
        "train": {
            "model": setting.student,
            "epochs": budget.epochs,
            "batch_size": budget.batch,
            "lr": setting.lr,
            "seed": seed,
            "progress": False,
            "patience": None,
        },
    }
    for section, values in over.items():
        d.setdefault(section, {}).update(values)
    return build_config(d)


def _teacher(setting: Setting, budget: Budget, files: dict, out: Path) -> Path:
    """Train the teacher briefly with geodistill (resumable: a finished one is reused)."""
    epochs = 1 if budget is QUICK else setting.teacher_epochs
    cfg = _config(setting, budget, files, 0, train={"model": setting.teacher, "epochs": epochs})
    api.train(cfg, out / "teacher", resume=True, role="teacher")
    return out / "teacher" / "model.ckpt"


# ---------------------------------------------------------------- the two runs


@torch.no_grad()
def _accuracy(model: nn.Module, data: TrainData, idx: np.ndarray) -> float:
    model.eval()
    right = 0
    for s in range(0, len(idx), 256):
        b = idx[s : s + 256]
        x = data.normalizer(torch.from_numpy(np.asarray(data.images[b]))).contiguous(memory_format=torch.channels_last)
        right += int((model(x).argmax(1) == torch.from_numpy(data.labels[b])).sum())
    return right / len(idx)


def run_timm(kind: str, cfg: RunConfig, data: TrainData, teacher_ckpt: Path) -> dict:
    """Train the student with timm's task over geodistill's batches; epoch times (training only)
    and the test accuracy of the best-validation weights."""
    t = cfg.train
    teacher, _ = load_classifier(teacher_ckpt)
    torch.manual_seed(t.seed)  # as engine.api.train: the same initial student
    student = build_model(t.model, len(data.classes), in_channels=data.channels)
    student = student.to(memory_format=torch.channels_last)
    task = timm_task(kind, student, teacher.to(memory_format=torch.channels_last), data.normalizer.to_dict())
    params = [p for p in task.trainable_module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    steps = len(epoch_order(data.train, t.seed, 0, 0, 1, t.batch_size))
    total, warmup = steps * t.epochs, int(round(t.warmup_epochs * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup))
    plan, times, best = plan_of(cfg.data), [], (-1.0, None)
    torch.manual_seed(t.seed)  # as Trainer.setup: the same dropout draws
    for epoch in range(t.epochs):
        task.train()
        t0 = time.perf_counter()
        for step, idx in enumerate(epoch_order(data.train, t.seed, epoch, 0, 1, t.batch_size)):
            b = assemble_batch(data, idx, plan, seed=t.seed, epoch=epoch, step=step, rank=0)
            loss = task(b.x, b.y)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        times.append(time.perf_counter() - t0)
        val = _accuracy(student, data, data.val)
        if val > best[0]:
            best = (val, copy.deepcopy(student.state_dict()))
    student.load_state_dict(best[1])
    return {"epoch_s": times, "images": steps * t.batch_size, "test_acc": _accuracy(student, data, data.test)}


def run_geodistill(cfg: RunConfig, run_dir: Path) -> dict:
    """Train the student with ``engine.api.train`` (``cfg`` holds the teacher and objective); the
    same figures, from its results.json."""
    res = api.train(cfg, run_dir)
    return {"epoch_s": [h.train_time_s for h in res.history], "test_acc": res.metrics.accuracy}


# ---------------------------------------------------------------- the benchmark


@dataclass
class Prepared:
    """One setting made ready: split files, teacher checkpoint, data (split and normaliser) and
    the seconds its teacher cache took to build."""

    files: dict[str, str]
    teacher: Path
    data: TrainData
    cache_s: float


def _prepare(setting: Setting, budget: Budget, out: Path) -> Prepared:
    """Split files, teacher, data, and the teacher's cache built up front (so no timed run
    builds it); a cache found from an earlier invocation reports the build time it recorded."""
    files = _split_files(setting, budget, out / "split")
    teacher = _teacher(setting, budget, files, out)
    cfg = _config(setting, budget, files, 0, distill={"teacher": str(teacher), "loss": "kl"})
    data = prepare_data(cfg)
    cache, seconds = teacher_source(cfg, data, load_teachers(cfg, data), feats=False)
    return Prepared(files, teacher, data, seconds if seconds is not None else getattr(cache, "build_seconds", 0.0))


def _one(framework: str, kind: str, setting: Setting, budget: Budget, prep: Prepared, seed: int, out: Path) -> dict:
    """One training run of ``framework`` ('timm' or 'geodistill'); its figures."""
    distill = {"teacher": str(prep.teacher), "loss": OBJECTIVES[kind], "alpha": ALPHA, "T": T}
    cfg = _config(setting, budget, prep.files, seed, distill=distill)
    if framework == "timm":
        row = run_timm(kind, cfg, prep.data, prep.teacher)
    else:
        row = run_geodistill(cfg, out / f"geodistill-{kind}-s{seed}")
    row["images"] = len(epoch_order(prep.data.train, seed, 0, 0, 1, budget.batch)) * budget.batch
    print(
        f"  {setting.name}, {kind}, {framework}, seed {seed}: {statistics.fmean(row['epoch_s']):.2f} s/epoch, "
        f"test accuracy {row['test_acc']:.3f}",
        flush=True,
    )
    return row


Runs = dict[tuple[str, str], dict[str, list[dict]]]  # (setting, objective) -> framework -> one row per repeat


def settings_of(quick: bool) -> tuple[Setting, ...]:
    """Every setting; ``--quick`` runs the 32 px one only (VGG16 alone takes minutes)."""
    return SETTINGS[1:] if quick else SETTINGS


def budget_of(setting: Setting, quick: bool) -> Budget:
    """The setting's own budget, or the tiny one of ``--quick``."""
    return QUICK if quick else setting.full


def measure(quick: bool, out_dir: Path) -> tuple[Runs, dict[str, Prepared]]:
    """Every run, interleaved: per repeat r (seed r), every setting and objective, timm and
    geodistill in an order that alternates with r, so drift in machine load biases neither."""
    prepared = {
        s.name: _prepare(s, budget_of(s, quick), out_dir / f"{s.student}-{s.size}px") for s in settings_of(quick)
    }
    runs: Runs = {(s.name, k): {"timm": [], "geodistill": []} for s in settings_of(quick) for k in OBJECTIVES}
    for r in range(max(budget_of(s, quick).repeats for s in settings_of(quick))):
        for s in settings_of(quick):
            if r >= budget_of(s, quick).repeats:
                continue
            for kind in OBJECTIVES:
                for fw in ("timm", "geodistill") if r % 2 == 0 else ("geodistill", "timm"):
                    where = out_dir / f"{s.student}-{s.size}px" / f"r{r}"
                    row = _one(fw, kind, s, budget_of(s, quick), prepared[s.name], r, where)
                    runs[(s.name, kind)][fw].append(row)
    return runs, prepared


def _figures(rows: list[dict]) -> dict[str, float]:
    """Medians over repeats: seconds per epoch (training only), images/s, test accuracy."""
    med = statistics.median
    epoch = med(statistics.fmean(r["epoch_s"]) for r in rows)
    return {"epoch_s": epoch, "ips": rows[0]["images"] / epoch, "acc": med(r["test_acc"] for r in rows)}


def _table(runs: Runs, prepared: dict[str, Prepared]) -> list[str]:
    """The Markdown table: one row per setting and objective."""
    lines = [
        "| setting | objective | s/epoch timm | s/epoch geodistill | **ratio geodistill ÷ timm** | img/s timm "
        "| img/s geodistill | test acc. timm | test acc. geodistill | teacher cache build (s) | cache repaid after |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (setting, kind), sides in runs.items():
        t, g = _figures(sides["timm"]), _figures(sides["geodistill"])
        build, saved = prepared[setting].cache_s, t["epoch_s"] - g["epoch_s"]
        repaid = f"{build / saved:.1f} student epochs" if saved > 0 else "never"
        lines.append(
            f"| {setting} | {kind} ({OBJECTIVES[kind]}) | {t['epoch_s']:.2f} | {g['epoch_s']:.2f} | "
            f"**{g['epoch_s'] / t['epoch_s']:.2f}** | {t['ips']:.0f} | {g['ips']:.0f} | {t['acc']:.3f} | "
            f"{g['acc']:.3f} | {build:.1f} | {repaid} |"
        )
    return lines


DIFFERS = [
    "- **Teacher answers.** timm runs the teacher on every batch (fp32, channels_last, no grad); geodistill "
    "reads them from its cache (fp16 logits and features for every training image under all 8 views), built "
    "once per teacher and then shared by every student of it (an α sweep of 11 pays for it once). The "
    "cache build is not in the epoch times; the last column says after how many student epochs (summed "
    "over every student of that teacher) the time it saves has paid for it.",
    "- **Feature projector.** timm's task makes its own `nn.Linear` with a bias; geodistill's objective has "
    "a bias-free one; both are learned with the student but start from different random weights.",
    "- **Loop.** timm's tasks bring no training loop: here a plain one (no checkpoints, no logging) feeds "
    "them geodistill's batches; geodistill runs its own `Trainer` (Lightning Fabric, last.ckpt and "
    "model.ckpt each epoch, outside the timed training part). Only training is timed, validation is not.",
    "- **Same:** student network and initial weights (seeded), teacher checkpoint, data subset, split and "
    "normalisation, batch order and views, AdamW, learning rate, weight decay, warm-up + cosine schedule, "
    "batch size, epochs, the objective's math, and the test accuracy of the best-validation weights.",
]


def main(out_dir: Path, quick: bool = False) -> str:
    """Run the benchmark; returns its Markdown section."""
    runs, prepared = measure(quick, Path(out_dir))
    head = [
        "## Peers: geodistill against timm's distillation tasks (issue 13)",
        "",
    ]
    if quick:
        head += [
            "> **These numbers are from `--quick`** (tiny: a few images per class, 1 epoch, 1 repeat); they "
            "show the benchmark runs, not how the two compare. The full measurement is "
            "`OMP_NUM_THREADS=1 python -m benchmarks peers`.",
            "",
        ]
    head += [
        "Same student from the same teacher on the same AID subset and geodistill's seeded split ("
        + "; ".join(_budget_words(s, budget_of(s, quick)) for s in settings_of(quick))
        + f"), AdamW with warm-up + cosine decay, once with timm {_timm_version()}'s `LogitDistillationTask` / "
        "`FeatureDistillationTask` and once with geodistill (`engine.api.train`). Objectives: logit = "
        f"{1 - ALPHA:g}·CE + {ALPHA:g}·T²·KL(T={T:g}); feature = CE + {FEAT_WEIGHT:g}·MSE(P·f_s, f_t). "
        "Medians over the interleaved repeats (repeat r: seed r on both sides); teachers trained here "
        f"({', '.join(f'{s.teacher} {s.teacher_epochs} epochs' for s in settings_of(quick))}), so accuracies compare "
        "the two tools on the same budget, not the methods at convergence (at 64 px the VGG16 teacher is "
        "near chance: that row measures speed; the 32 px row carries the accuracy comparison); torch "
        f"threads {torch.get_num_threads()}.",
        "",
    ]
    return "\n".join([*head, *_table(runs, prepared), "", "What differs, and what does not:", "", *DIFFERS, ""])


def _budget_words(s: Setting, b: Budget) -> str:
    """'AID 32 px: 3000 / 900 / 900 images, 15 epochs, batch 64, 3 repeats'."""
    n = [k * 30 for k in b.per_class]
    return (
        f"{s.name.split(',')[0]}: {n[0]} train / {n[1]} val / {n[2]} test images, {b.epochs} "
        f"epoch{'s' if b.epochs > 1 else ''}, batch {b.batch}, {b.repeats} repeat{'s' if b.repeats > 1 else ''}"
    )


def _timm_version() -> str:
    import timm

    return timm.__version__
