"""SegNet-MTAN: the Multi-Task Attention Network on a SegNet backbone (Liu et al., CVPR 2019).

A shared SegNet encoder-decoder (filters 64, 128, 256, 512, 512; max-pool indices reused for
unpooling) and, per task, a soft-attention path: at every encoder and decoder level a task's
attention mask (1×1 conv, BN, ReLU, 1×1 conv, BN, sigmoid) selects from the shared features,
and shared 3×3 conv blocks carry the attended features to the next level. Each task's attended
full-resolution features (64 channels) feed its head (3×3 conv, 1×1 conv); these K feature maps
are the representation z of NTKMTL-SR.

Parameters: as in the reference code (and the Nash-MTL / FAMO code it derives from), everything
but the prediction heads counts as shared, the attention masks included; a task's mask gets
gradient from its own loss only, so it adds to that task's row of G in NTKMTL.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ntkmtl.benchmarks.base import MultiTaskModel
from ntkmtl.benchmarks.nets.celeba_cnn import scaled

FILTERS = (64, 128, 256, 512, 512)
LEVELS = len(FILTERS)


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


def conv_stack(channels: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*(conv_block(channels, channels) for _ in range(depth)))


def attention_mask(in_channels: int, channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 1),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 1),
        nn.BatchNorm2d(channels),
        nn.Sigmoid(),
    )


class SegNetMTAN(MultiTaskModel):
    """forward(images [B, 3, H, W], or a batch dict with "image") → (K predictions, K attended features).

    ``head_channels``: output channels per task (NYUv2: 13, 1, 3; Cityscapes: 7, 1).
    ``unit_norm``: per task, whether its prediction is L2-normalised over channels (normals).
    H and W must be divisible by 32.
    """

    def __init__(
        self, head_channels: Sequence[int], unit_norm: Sequence[bool] | None = None, width_multiplier: float = 1.0
    ):
        super().__init__()
        f = [scaled(c, width_multiplier) for c in FILTERS]
        below = [f[max(level - 1, 0)] for level in range(LEVELS)]  # decoder output channels per level
        self.unit_norm = tuple(unit_norm) if unit_norm is not None else (False,) * len(head_channels)
        if len(self.unit_norm) != len(head_channels):
            raise ValueError(f"unit_norm={unit_norm!r} needs one flag per task ({len(head_channels)} tasks)")

        # shared SegNet: two (levels 0-1) or three (levels 2-4) conv blocks per level
        self.encoder_in = nn.ModuleList(conv_block(3 if i == 0 else f[i - 1], f[i]) for i in range(LEVELS))
        self.encoder_conv = nn.ModuleList(conv_stack(f[i], 1 if i < 2 else 2) for i in range(LEVELS))
        self.decoder_in = nn.ModuleList(conv_block(f[i], below[i]) for i in range(LEVELS))
        self.decoder_conv = nn.ModuleList(conv_stack(below[i], 1 if i < 2 else 2) for i in range(LEVELS))

        # shared convolutions of the attention paths
        self.encoder_att_conv = nn.ModuleList(conv_block(f[i], f[min(i + 1, LEVELS - 1)]) for i in range(LEVELS))
        att_up = [f[i] if i in (0, LEVELS - 1) else below[i] for i in range(LEVELS)]
        self.decoder_att_conv = nn.ModuleList(conv_block(f[i], att_up[i]) for i in range(LEVELS))

        # task-specific attention masks and prediction heads
        self.encoder_att = nn.ModuleList(
            nn.ModuleList(attention_mask(f[i] if i == 0 else 2 * f[i], f[i]) for i in range(LEVELS))
            for _ in head_channels
        )
        self.decoder_att = nn.ModuleList(
            nn.ModuleList(attention_mask(f[i] + att_up[i], below[i]) for i in range(LEVELS)) for _ in head_channels
        )
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(f[0], f[0], 3, padding=1), nn.Conv2d(f[0], out, 1)) for out in head_channels
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, batch):
        x = batch["image"] if isinstance(batch, dict) else batch
        # shared encoder: first (u) and last (v) features of each level, pooling indices
        u, v, indices = [], [], []
        h = x
        for i in range(LEVELS):
            u.append(self.encoder_in[i](h))
            v.append(self.encoder_conv[i](u[i]))
            h, index = F.max_pool2d(v[i], 2, 2, return_indices=True)
            indices.append(index)
        # shared decoder, deepest level first: unpooled input and output features per level
        unpooled, decoded = [None] * LEVELS, [None] * LEVELS
        for i in reversed(range(LEVELS)):
            unpooled[i] = F.max_unpool2d(h, indices[i], 2, 2, output_size=v[i].shape[-2:])
            h = decoded[i] = self.decoder_conv[i](self.decoder_in[i](unpooled[i]))

        features = []
        for enc_att, dec_att in zip(self.encoder_att, self.decoder_att):
            s = None
            for i in range(LEVELS):
                mask = enc_att[i](u[i] if i == 0 else torch.cat((u[i], s), 1))
                s = F.max_pool2d(self.encoder_att_conv[i](mask * v[i]), 2, 2)
            for i in reversed(range(LEVELS)):
                up = F.interpolate(s, size=unpooled[i].shape[-2:], mode="bilinear", align_corners=True)
                up = self.decoder_att_conv[i](up)
                s = dec_att[i](torch.cat((unpooled[i], up), 1)) * decoded[i]
            features.append(s)

        outputs = []
        for head, z, normalise in zip(self.heads, features, self.unit_norm):
            y = head(z)
            outputs.append(F.normalize(y, dim=1) if normalise else y)
        return outputs, features

    def shared_parameters(self) -> list[nn.Parameter]:
        heads = {id(p) for p in self.heads.parameters()}
        return [p for p in self.parameters() if id(p) not in heads]

    def task_specific_parameters(self) -> list[nn.Parameter]:
        return list(self.heads.parameters())
