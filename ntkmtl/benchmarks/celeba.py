"""CelebA: 40 binary face attributes, one task each (Liu et al., ICCV 2015), as in the NTKMTL paper.

Data: the standard CelebA folders (aligned-and-cropped JPEGs, attribute and partition files),
read, split by the official partition and cached as one uint8 image array by ``celeba_data``
(64² images in the paper).

Model: ``CelebACNN`` (shared 512-d representation, 40 linear heads). Loss: binary cross-entropy
per image and attribute. Metric: per-attribute F1 at threshold 0.5, ``f1_<Attribute>``; Δm
against the STL F1 of docs/REFERENCE_FACTS.md §3. Adam 3e-4, cosine schedule, 15 epochs, batch 256.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ntkmtl.benchmarks.base import Benchmark, Metric, MultiTaskModel, TrainDefaults
from ntkmtl.benchmarks.celeba_data import (
    ATTRIBUTES,
    SPLITS,
    CelebAImages,
    cached_images,
    check_layout,
    read_annotations,
)
from ntkmtl.benchmarks.loading import eval_loader, first, resolve, train_loader
from ntkmtl.benchmarks.nets.celeba_cnn import CelebACNN
from ntkmtl.options import HParam

# Single-task F1 per attribute, in ATTRIBUTES order: the reference's experiments/celeba/delta_m.py
# (docs/REFERENCE_FACTS.md §3).
STL_F1 = (
    0.6736886,
    0.68121034,
    0.81524944,
    0.5760289,
    0.7205613,
    0.8555076,
    0.38203922,
    0.58225113,
    0.787647,
    0.8321292,
    0.5029583,
    0.68694085,
    0.6781237,
    0.5240381,
    0.5161666,
    0.95694304,
    0.6968786,
    0.67976356,
    0.8808315,
    0.8582131,
    0.97034,
    0.93267566,
    0.5057539,
    0.40307626,
    0.9703734,
    0.48644206,
    0.60786104,
    0.5261031,
    0.56907415,
    0.59815097,
    0.6858371,
    0.924108,
    0.5424991,
    0.7406311,
    0.71019936,
    0.87365365,
    0.9305602,
    0.33704284,
    0.7647628,
    0.91907,
)


def f1_scores(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    """F1 = 2PR / (P + R) per attribute, with the reference's 1e-8 guards (0 when nothing is
    predicted or present, never NaN)."""
    precision = tp / (tp + fp + 1e-8)
    recall = tp / (tp + fn + 1e-8)
    return 2 * precision * recall / (precision + recall + 1e-8)


class CelebA(Benchmark):
    name = "celeba"
    tasks = ATTRIBUTES
    defaults = TrainDefaults(epochs=15, batch_size=256, lr=3e-4, scheduler="cosine", gpu_fraction=0.5)
    data_options = (
        HParam("root", str, "~/data/celeba", "the CelebA folder (Img/, Anno/, Eval/)"),
        HParam(
            "cache_dir",
            str,
            "~/.cache/ntkmtl/celeba",
            "where the resized uint8 image cache goes (node-local disk is best)",
        ),
        HParam("image_size", int, 64, "images are resized to image_size × image_size", low=8, high=512),
        HParam("max_train", int, None, "use only the first max_train training images (quick runs)", low=1),
        HParam("max_val", int, None, "use only the first max_val validation images", low=1),
        HParam("max_test", int, None, "use only the first max_test test images", low=1),
        HParam(
            "width_multiplier",
            float,
            1.0,
            "scales every layer's width (1 = the paper's network)",
            low=0.0,
            high=4.0,
            low_open=True,
        ),
    )

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return tuple(Metric(f"f1_{a}", True, b) for a, b in zip(ATTRIBUTES, STL_F1))

    @property
    def root(self) -> Path:
        return resolve(self.options["root"])

    def check_data(self) -> None:
        check_layout(self.root)

    def loaders(self, batch_size: int, seed: int, num_workers: int = 0) -> tuple[Iterable, Iterable, Iterable]:
        self.check_data()
        names, labels, split = read_annotations(self.root)
        chosen = {s: first(np.flatnonzero(split == code), self.options[f"max_{s}"]) for s, code in SPLITS.items()}
        used = np.sort(np.concatenate(list(chosen.values())))
        images = cached_images(
            self.root, [names[i] for i in used], self.options["image_size"], resolve(self.options["cache_dir"])
        )
        labels = labels[used]
        rows = {s: np.searchsorted(used, idx) for s, idx in chosen.items()}
        datasets = {s: CelebAImages(images, labels, r) for s, r in rows.items()}
        return (
            train_loader(datasets["train"], batch_size, seed, num_workers, drop_single=True),
            eval_loader(datasets["val"], batch_size, num_workers),
            eval_loader(datasets["test"], batch_size, num_workers),
        )

    def build_model(self) -> MultiTaskModel:
        return CelebACNN(n_tasks=len(ATTRIBUTES), width_multiplier=self.options["width_multiplier"])

    def loss_terms(self, outputs, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Binary cross-entropy of each image and attribute: sums [B, 40], counts all ones."""
        sums = F.binary_cross_entropy_with_logits(outputs, batch["labels"], reduction="none")
        return sums, torch.ones_like(sums)

    @torch.no_grad()
    def evaluate(self, model: MultiTaskModel, loader: Iterable, device: torch.device) -> dict[str, float]:
        was_training = model.training
        model.eval()
        counts = torch.zeros(3, len(ATTRIBUTES), dtype=torch.float64, device=device)
        for batch in loader:
            batch = self.batch_to(batch, device)
            logits, _ = model(batch)
            predicted = (logits > 0).double()  # sigmoid(logit) > 0.5
            target = batch["labels"].double()
            counts[0] += (predicted * target).sum(0)
            counts[1] += (predicted * (1 - target)).sum(0)
            counts[2] += ((1 - predicted) * target).sum(0)
        model.train(was_training)
        f1 = f1_scores(*counts).cpu()
        return {m.name: float(v) for m, v in zip(self.metrics, f1)}
