"""Convergence: how long a run should be, and whether a finished run had stopped improving.

A comparison between runs that were still improving when they stopped is not evidence, so every
run records the evidence and a flag. The rule (stated once, here, and in docs/architecture.md):

* the validation accuracy curve ``a_1..a_E`` is smoothed by a trailing moving average over
  ``w = max(3, round(0.05 E))`` epochs: ``s_e = mean(a_{e-w+1..e})``;
* the *late slope* is the least-squares slope of ``s`` over the last 20% of the epochs (at least
  3 points), expressed as accuracy points gained per 10% of the run:
  ``slope_per_epoch * 0.1 E * 100``;
* a run is **converged** when its late slope is below ``CONVERGED_SLOPE`` = 1 point per 10%
  of the run, its learning rate had decayed to at most ``LR_DECAYED`` = 5% of its peak (a flat
  curve at a high learning rate is a noisy plateau, not the end: the decay still adds points),
  and it lasted at least ``MIN_EPOCHS`` epochs.

What one curve cannot show: under a schedule decayed to zero every curve flattens at its end,
so a run that was too short ends flat too, only lower. Measured on AID (32 px, CNN3, seed 0):
100 epochs at lr 3e-3 ended at 72.9% validation accuracy with a late slope of 0.95, 150 epochs
at lr 1e-2 at 78.6% (slope 0.77), 300 epochs at lr 3e-3 at 78.7% (slope 0.42): the slope does
not separate the under-trained run. The per-run flag therefore catches runs cut off while still
climbing (patience stops, schedules that never decayed, a few epochs), and the **budget check**
answers the real question: the same run with twice the epochs (`budget_check`); the budget is
converged when doubling it gains less than ``BUDGET_GAIN`` = 0.5 points of validation accuracy.

``auto_epochs`` turns a budget of *images seen* into epochs, so a small training set gets more
passes and a large one fewer: ``E = clamp(ceil(images / n_train), lo, hi)``. A config's
``train.epochs: auto`` is resolved once, where the training split is known (`resolve_epochs`), and
the resolved number is what the schedule, the progress lines and the saved config use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from geodistill.config.run import RunConfig

CONVERGED_SLOPE = 1.0  # accuracy points per 10% of the run, over the last 20%
BUDGET_GAIN = 0.5  # validation accuracy points that doubling a converged budget may add
MIN_EPOCHS = 10
LR_DECAYED = 0.05  # final learning rate / peak learning rate
LATE_FRACTION = 0.2


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average: ``s_e = mean(values[max(0, e-window+1) .. e])``."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def window_for(epochs: int) -> int:
    """The smoothing window for a run of ``epochs`` epochs: ``max(3, round(0.05 E))``."""
    return max(3, round(0.05 * epochs))


def slope(ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` against ``0, 1, ..., n-1`` (0 for fewer than 2 points)."""
    n = len(ys)
    if n < 2:
        return 0.0
    mx = (n - 1) / 2
    my = sum(ys) / n
    sxx = sum((i - mx) ** 2 for i in range(n))
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sxx


def late_slope(val_acc: Sequence[float]) -> float:
    """Points of validation accuracy gained per 10% of the run, over its last 20% (smoothed)."""
    e = len(val_acc)
    if e < 3:
        return math.nan
    s = smooth(val_acc, window_for(e))
    tail = s[-max(3, math.ceil(LATE_FRACTION * e)) :]
    return slope(tail) * 0.1 * e * 100.0


def evidence(val_acc: Sequence[float], best_epoch: int, lr_end_ratio: float = 0.0) -> dict:
    """The convergence record a results.json carries; ``lr_end_ratio`` = final lr / peak lr.

    Keys: ``best_epoch``, ``epochs``, ``best_at`` (best epoch / epochs), ``late_slope_pts``
    (see `late_slope`), ``lr_end_ratio``, ``smoothed_final`` (the smoothed accuracy at the end),
    ``converged`` and ``rule`` (the rule in words).
    """
    e = len(val_acc)
    ls = late_slope(val_acc)
    converged = e >= MIN_EPOCHS and math.isfinite(ls) and ls < CONVERGED_SLOPE and lr_end_ratio <= LR_DECAYED
    return {
        "best_epoch": int(best_epoch),
        "epochs": e,
        "best_at": best_epoch / e if e else math.nan,
        "late_slope_pts": ls,
        "lr_end_ratio": lr_end_ratio,
        "smoothed_final": smooth(val_acc, window_for(e))[-1] if e else math.nan,
        "converged": bool(converged),
        "rule": RULE,
    }


RULE = (
    f"converged when the validation accuracy, smoothed over max(3, 5% of the epochs), gains less than "
    f"{CONVERGED_SLOPE} points per 10% of the run over its last {LATE_FRACTION:.0%} (least-squares slope) "
    f"with the learning rate decayed to at most {LR_DECAYED:.0%} of its peak, after at least {MIN_EPOCHS} epochs"
)
NOT_CONVERGED = (  # why a run fails the rule, in a phrase for verdicts
    f"late slope ≥ {CONVERGED_SLOPE} points per 10% of the run, learning rate above {LR_DECAYED:.0%} "
    f"of its peak at the end, or fewer than {MIN_EPOCHS} epochs"
)


BUDGET_RULE = (
    f"the budget is converged when training the student alone for twice the epochs raises its best "
    f"validation accuracy by less than {BUDGET_GAIN} points"
)


@dataclass(frozen=True)
class BudgetCheck:
    """A budget check: the student alone at ``epochs`` and at twice that, its best validation
    accuracies (fractions), the gain in points and whether it is under `BUDGET_GAIN`."""

    epochs: int
    epochs_2x: int
    val: float
    val_2x: float
    gain_pts: float
    converged: bool
    rule: str = BUDGET_RULE

    def to_dict(self) -> dict:
        """The JSON form (a recipe's summary.json)."""
        return asdict(self)


def budget_check(val: float, val_2x: float, epochs: int) -> BudgetCheck:
    """The budget check of a run with ``epochs`` epochs (best validation accuracy ``val``, a
    fraction) against the same run with ``2 epochs`` (``val_2x``): gain in points and the flag."""
    gain = 100.0 * (val_2x - val)
    return BudgetCheck(int(epochs), 2 * int(epochs), val, val_2x, gain, gain < BUDGET_GAIN)


def auto_epochs(n_train: int, images: int, lo: int = 30, hi: int = 1000) -> int:
    """Epochs for a budget of ``images`` training images seen: ``clamp(ceil(images / n_train), lo, hi)``."""
    if n_train < 1:
        raise ValueError("the training split is empty")
    return max(lo, min(hi, math.ceil(images / n_train)))


def resolve_epochs(cfg: RunConfig, n_train: int) -> tuple[RunConfig, bool]:
    """``cfg`` with ``train.epochs = "auto"`` replaced by ``auto_epochs(n_train, train.auto_images)``
    (a copy; an int is kept), and whether it was auto."""
    if cfg.train.epochs != "auto":
        return cfg, False
    epochs = auto_epochs(n_train, cfg.train.auto_images)
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": epochs})}), True


def run_evidence(history: Sequence[dict], best_epoch: int, peak_lr: float) -> dict:
    """`evidence` of a finished run from its epoch rows (``val_acc``, ``lr``):
    ``lr_end_ratio`` = the last epoch's lr / ``peak_lr``."""
    lr_end = history[-1]["lr"] / peak_lr if history else 1.0
    return evidence([row["val_acc"] for row in history], best_epoch, lr_end)
