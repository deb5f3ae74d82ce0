"""The thesis CNNs: a 4-block teacher (`cnn4`) and a 3-block student (`cnn3`).

Each block is ``n x (conv3x3 -> BatchNorm -> ReLU)`` followed by a 2x2 max-pool (``ceil_mode`` so
tiny inputs never shrink to zero). After the last block: global average pool -> dropout ->
linear head. Sized for 32 px input, but the global pool makes them work at any size.

cnn4 (teacher): widths 32-64-128-256, one conv in blocks 1-2 and two in blocks 3-4 (~1.13 M
parameters, ~0.07 GFLOPs at 32 px; twice as wide was 4.5 M / 0.28 GFLOPs and 4x slower on CPU
for no gain on 32 px scenes). cnn3 (student): widths 16-32-64, one conv per block
(~24 k parameters, ~5.6 MFLOPs at 32 px with 10 classes), i.e. about 46x smaller.

A width multiplier ``w`` (``cnn3x2``, ``cnn3x0.5``: `models.build`) scales every block's width
to ``max(4, round(w * width))``: parameters and FLOPs grow about as ``w²``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

# (width, number of convs) per block
CNN4_BLOCKS: tuple[tuple[int, int], ...] = ((32, 1), (64, 1), (128, 2), (256, 2))
CNN3_BLOCKS: tuple[tuple[int, int], ...] = ((16, 1), (32, 1), (64, 1))


def _block(c_in: int, c_out: int, n_convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
    layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


class ThesisCNN(nn.Module):
    """Plain conv-BN-ReLU-maxpool blocks, global average pool, dropout, linear head."""

    def __init__(
        self, blocks: Sequence[tuple[int, int]], num_classes: int, in_channels: int = 3, dropout: float = 0.3
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        c = in_channels
        for width, n in blocks:
            stages.append(_block(c, width, n))
            c = width
        self.features = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.features(x))
        return self.fc(self.dropout(torch.flatten(x, 1)))


def widened(blocks: Sequence[tuple[int, int]], width: float) -> tuple[tuple[int, int], ...]:
    """``blocks`` with every width scaled by ``width`` (at least 4 channels)."""
    return tuple((max(4, round(width * c)), n) for c, n in blocks)


def cnn4(num_classes: int, in_channels: int = 3, width: float = 1.0) -> ThesisCNN:
    """The thesis teacher: 4 blocks, widths 32-64-128-256 (times ``width``)."""
    return ThesisCNN(widened(CNN4_BLOCKS, width), num_classes, in_channels)


def cnn3(num_classes: int, in_channels: int = 3, width: float = 1.0) -> ThesisCNN:
    """The thesis student: 3 blocks, widths 16-32-64 (times ``width``)."""
    return ThesisCNN(widened(CNN3_BLOCKS, width), num_classes, in_channels)
