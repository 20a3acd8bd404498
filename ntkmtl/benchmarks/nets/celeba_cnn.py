"""The CelebA network of the NTKMTL / FAMO / FairGrad experiments: a 9-layer BatchNorm CNN, 40 heads.

Nine BatchNorm'd layers make the shared 512-d representation z: seven 3×3 convolutions
(64, 128, 128, 256, 256, 512, 512 channels, max-pooling after the 1st, 3rd and 5th, global
average pooling after the 7th) and two 512-d linear layers. Each attribute has a linear head
giving one logit (the reference applies a sigmoid and BCE; we keep logits and use
BCE-with-logits, the same loss computed stably).
"""

from __future__ import annotations

import torch
from torch import nn

from ntkmtl.benchmarks.base import MultiTaskModel

CONV_CHANNELS = (64, 128, 128, 256, 256, 512, 512)
POOL_AFTER = (0, 2, 4)  # max-pool after these convolutions
FEATURES = 512


def scaled(channels: int, width_multiplier: float) -> int:
    """``channels`` times the width multiplier, at least 1 (tests use thin networks)."""
    return max(1, round(channels * width_multiplier))


class CelebACNN(MultiTaskModel):
    """forward(images [B, 3, H, W] in [0, 1], or a batch dict with "image") → ([B, K] logits, z).

    z is a list of K views of the one shared 512-d representation [B, 512], head k reading view
    k: then one backward pass gives every task's ∂L_k/∂z, which is what makes NTKMTL-SR cheap.
    """

    def __init__(self, n_tasks: int = 40, width_multiplier: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for i, channels in enumerate(CONV_CHANNELS):
            out_channels = scaled(channels, width_multiplier)
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            if i in POOL_AFTER:
                layers.append(nn.MaxPool2d(2))
            in_channels = out_channels
        features = scaled(FEATURES, width_multiplier)
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        for fan_in in (in_channels, features):
            layers += [nn.Linear(fan_in, features, bias=False), nn.BatchNorm1d(features), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Linear(features, 1) for _ in range(n_tasks))

    def forward(self, batch):
        images = batch["image"] if isinstance(batch, dict) else batch
        z = self.encoder(images)
        views = [z.view_as(z) for _ in self.heads]
        logits = torch.cat([head(v) for head, v in zip(self.heads, views)], dim=1)
        return logits, views

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def task_specific_parameters(self) -> list[nn.Parameter]:
        return list(self.heads.parameters())
