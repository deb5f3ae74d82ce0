"""Metrics of a model on one split: the confusion matrix summed over processes, and which images it got right."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from geodistill.core.metrics import confusion, metrics_from_confusion
from geodistill.data.prepare import TrainData


@torch.no_grad()
def evaluate_split(
    fabric,
    model: nn.Module,
    data: TrainData,
    idx: np.ndarray,
    batch: int = 256,
    channels_last: bool = True,
    per_image: bool = True,
) -> dict:
    """Metrics of ``model`` on the images ``idx`` (sharded across processes, confusion summed),
    with (``per_image``) ``correct``: '1' or '0' per image of ``idx`` in its order, whether the
    model got it right (what `experiments.stats` needs to count the test split's own sampling
    error), and ``correct_of``: a hash of ``idx``, so only runs scored on the same images are compared."""
    model.eval()
    shard = idx[fabric.global_rank :: fabric.world_size]
    k = len(data.classes)
    cm = torch.zeros(k, k, dtype=torch.long)
    hits = torch.zeros(len(idx), dtype=torch.long)  # this process fills its positions only
    for s in range(0, len(shard), batch):
        b = shard[s : s + batch]
        x = data.normalizer(torch.from_numpy(np.asarray(data.images[b])))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        preds = model(x.to(fabric.device)).argmax(1).cpu()
        target = torch.from_numpy(data.labels[b])
        cm += confusion(preds, target, k)
        if per_image:
            hits[fabric.global_rank + fabric.world_size * torch.arange(s, s + len(b))] = (preds == target).long()
    if fabric.world_size > 1:
        cm = fabric.all_reduce(cm.to(fabric.device), reduce_op="sum").cpu().long()
    if not per_image:
        return metrics_from_confusion(cm, data.classes)
    if fabric.world_size > 1:
        hits = fabric.all_reduce(hits.to(fabric.device), reduce_op="sum").cpu().long()
    of = hashlib.sha1(np.asarray(idx, dtype=np.int64).tobytes()).hexdigest()[:12]
    return {**metrics_from_confusion(cm, data.classes), "correct": "".join(map(str, hits.tolist())), "correct_of": of}
