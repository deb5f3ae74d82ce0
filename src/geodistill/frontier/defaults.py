"""The embedded frontier: the synthetic land-use set, a CNN4 teacher and a ladder of CNN3
students, small enough to run on a laptop CPU in a few minutes."""

from __future__ import annotations

from geodistill.config.study import Student
from geodistill.frontier.spec import FrontierSpec

LADDER = ("cnn3x0.5@16", "cnn3@24", "cnn3@32")
DATA = {"dataset": "synthetic", "n_per_class": 200, "train_ratio": 0.5, "val_ratio": 0.4}
TRAIN = {"batch_size": 64, "lr": 3e-3, "weight_decay": 5e-4}


def embedded(students: tuple[str, ...] = LADDER) -> FrontierSpec:
    """The default frontier job (`geodistill frontier` with no arguments)."""
    return FrontierSpec(
        about="embedded synthetic land-use set, half of each class for training, CNN4 teacher at 32 px, CNN3 ladder",
        base={
            "data": {**DATA, "augment": "dihedral"},
            "train": {**TRAIN, "warmup_epochs": 1, "epochs": 40, "precision": "auto"},
        },
        teacher={"data": {"size": 32}, "train": {"model": "cnn4", "epochs": 20}},
        students=[Student.parse(s) for s in students],
        methods=["kl", "dist"],
        seeds=[0, 1],
        budget_check=False,
        max_latency_ms=1.0,
    )
