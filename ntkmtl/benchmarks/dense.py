"""Dense prediction on the MTAN layout: the losses, the MTAN metrics and the NYUv2/Cityscapes base class.

Losses, as per-image terms (sum over the image's valid pixels, number of valid pixels), so that
Σ sums / Σ counts over a batch is exactly the reference's batch loss:

- segmentation: cross-entropy, pixels labelled −1 ignored;
- depth: L1 on pixels with depth ≠ 0;
- normal: 1 − cos(predicted, true normal) on pixels whose normal is not all zero.

Metrics, exactly as the MTAN / reference evaluation (``ConfMatrix``, ``depth_error``,
``normal_error``): mIoU and pixel accuracy from one confusion matrix over the whole set; depth
absolute and relative error and the normal angle statistics (mean, median, fraction within
11.25°, 22.5°, 30°) computed per batch and averaged over batches, with the evaluation batch size
of the paper (``eval_batch_size``: 2 for NYUv2, 8 for Cityscapes) so the numbers are comparable
with the STL baselines of docs/REFERENCE_FACTS.md §3. Two guards the reference lacks: a class absent from
both prediction and truth is left out of the mIoU mean (the reference gives NaN), and a batch
without valid depth or normal pixels is left out of that average (the reference divides by 0).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ntkmtl.benchmarks.base import Benchmark, MultiTaskModel
from ntkmtl.benchmarks.loading import eval_loader, first, held_out_split, resolve, train_loader
from ntkmtl.benchmarks.mtan_data import MTANDataset, MTANLayout, check_sample, count_samples
from ntkmtl.benchmarks.nets.segnet_mtan import SegNetMTAN
from ntkmtl.options import HParam

ANGLE_THRESHOLDS = (11.25, 22.5, 30.0)


# -- losses -----------------------------------------------------------------------------------
def segmentation_terms(logits: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (Σ cross-entropy over labelled pixels, number of labelled pixels); −1 = ignore."""
    loss = F.cross_entropy(logits, label, ignore_index=-1, reduction="none")
    return loss.flatten(1).sum(1), (label != -1).flatten(1).sum(1).to(loss.dtype)


def depth_terms(pred: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (Σ |d̂ − d| over pixels with d ≠ 0, number of such pixels)."""
    valid = (depth != 0).to(pred.dtype)
    return ((pred - depth).abs() * valid).flatten(1).sum(1), valid.flatten(1).sum(1)


def normal_terms(pred: torch.Tensor, normal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (Σ (1 − n̂·n) over pixels with a normal, number of such pixels)."""
    valid = (normal.sum(1) != 0).to(pred.dtype)
    return ((1 - (pred * normal).sum(1)) * valid).flatten(1).sum(1), valid.flatten(1).sum(1)


# -- metrics ----------------------------------------------------------------------------------
def confusion_matrix(pred: torch.Tensor, label: torch.Tensor, n_classes: int) -> torch.Tensor:
    """[C, C] pixel counts, row = true class, column = predicted; labels outside 0…C−1 skipped."""
    keep = (label >= 0) & (label < n_classes)
    index = n_classes * label[keep].long() + pred[keep].long()
    return torch.bincount(index, minlength=n_classes**2).reshape(n_classes, n_classes)


def segmentation_scores(confusion: torch.Tensor) -> tuple[float, float]:
    """(mean IoU over classes present in truth or prediction, pixel accuracy)."""
    h = confusion.double()
    tp = h.diag()
    union = h.sum(0) + h.sum(1) - tp
    present = union > 0
    miou = float((tp[present] / union[present]).mean()) if present.any() else float("nan")
    return miou, float(tp.sum() / h.sum().clamp_min(1))


def depth_errors(pred: torch.Tensor, depth: torch.Tensor) -> tuple[float, float] | None:
    """(mean |d̂ − d|, mean |d̂ − d| / d) over pixels with d ≠ 0; None when there are none."""
    valid = depth != 0
    if not valid.any():
        return None
    error = (pred[valid] - depth[valid]).abs()
    return float(error.mean()), float((error / depth[valid]).mean())


def normal_errors(pred: torch.Tensor, normal: torch.Tensor) -> tuple[float, ...] | None:
    """Angles (degrees) between predicted and true normals where a normal exists: (mean,
    median, fraction < 11.25°, < 22.5°, < 30°); None when no pixel has a normal."""
    valid = normal.sum(1) != 0
    if not valid.any():
        return None
    cosine = (pred * normal).sum(1)[valid].clamp(-1, 1)
    angles = np.degrees(torch.acos(cosine).double().cpu().numpy())
    return (float(np.mean(angles)), float(np.median(angles))) + tuple(
        float(np.mean(angles < t)) for t in ANGLE_THRESHOLDS
    )


# -- the benchmark ----------------------------------------------------------------------------
def mtan_options(dataset: str, root: str, eval_batch_size: int) -> tuple[HParam, ...]:
    """The data options of a benchmark on the MTAN layout; ``root`` and the paper's batch differ."""
    return (
        HParam("root", str, root, f"the {dataset} folder holding train/ and val/ (MTAN layout)"),
        HParam(
            "val_fraction",
            float,
            0.0,
            "fraction of the MTAN train split held out for validation (MTAN's own "
            "val split is the test set); 0 = the reference: train on the whole train split and validate "
            "on the test set, the only evaluation its trainer makes",
            low=0.0,
            high=0.5,
        ),
        HParam("split_seed", int, 0, "chooses the held-out validation samples (not the training seed)", low=0),
        HParam(
            "chunk_loss",
            str,
            "image_mean",
            "NTKMTL-SR's per-chunk task losses: image_mean (the reference: the "
            "mean over the chunk's images of each image's mean loss, segmentation averaged over all pixels) "
            "or valid_pixels (Σ loss / Σ valid pixels over the chunk, like the batch loss)",
            choices=("image_mean", "valid_pixels"),
        ),
        HParam("augment", bool, True, "random scale-crop and horizontal flip of training samples"),
        HParam("max_train", int, None, "use only the first max_train training samples (quick runs)", low=1),
        HParam("max_val", int, None, "use only the first max_val validation samples", low=1),
        HParam("max_test", int, None, "use only the first max_test test samples", low=1),
        HParam(
            "eval_batch_size",
            int,
            eval_batch_size,
            "batch size of evaluation; depth and normal metrics are means over batches as in the reference",
            low=1,
        ),
        HParam(
            "width_multiplier",
            float,
            1.0,
            "scales every layer's width (1 = the paper's SegNet-MTAN)",
            low=0.0,
            high=4.0,
            low_open=True,
        ),
    )


class DenseBenchmark(Benchmark):
    """NYUv2 or Cityscapes: SegNet-MTAN on the MTAN layout; subclasses declare the layout,
    ``n_classes``, ``tasks`` (segmentation, depth[, normal]), metrics and defaults.

    The model returns [segmentation logits, depth, (unit normals)] and z = the per-task attended
    features (NTKMTL-SR's representation), a list of K tensors [B, 64, H, W].
    """

    layout: ClassVar[MTANLayout]
    n_classes: ClassVar[int]

    @property
    def root(self) -> Path:
        return resolve(self.options["root"])

    def check_data(self) -> None:
        root = self.root
        if not root.is_dir():
            raise self.layout.error(root, "folder does not exist")
        for split in ("train", "val"):
            held_out = split == "train" and self.options["val_fraction"] > 0
            if count_samples(self.layout, root, split) < (2 if held_out else 1):
                raise self.layout.error(
                    root / split,
                    "too few samples (train needs 2 when val_fraction > 0: one is held out for validation)",
                )
            check_sample(self.layout, root, split, 0)

    def splits(self) -> dict[str, tuple[Path, np.ndarray]]:
        """split → (folder, sample indices): train (and, with ``val_fraction`` > 0, val) from MTAN's
        train, test = MTAN's val; with ``val_fraction`` 0 val is the test set, as in the reference."""
        root = self.root
        o = self.options
        n_train = count_samples(self.layout, root, "train")
        test = (root / "val", first(np.arange(count_samples(self.layout, root, "val")), o["max_test"]))
        if o["val_fraction"] == 0:
            return {"train": (root / "train", first(np.arange(n_train), o["max_train"])), "val": test, "test": test}
        kept, held_out = held_out_split(n_train, o["val_fraction"], o["split_seed"])
        return {
            "train": (root / "train", first(kept, o["max_train"])),
            "val": (root / "train", first(held_out, o["max_val"])),
            "test": test,
        }

    def loaders(self, batch_size: int, seed: int, num_workers: int = 0) -> tuple[Iterable, Iterable, Iterable]:
        self.check_data()
        data = {
            s: MTANDataset(self.layout, folder, idx, augment=s == "train" and self.options["augment"])
            for s, (folder, idx) in self.splits().items()
        }
        eval_bs = self.options["eval_batch_size"]
        return (
            train_loader(data["train"], batch_size, seed, num_workers),
            eval_loader(data["val"], eval_bs, num_workers),
            eval_loader(data["test"], eval_bs, num_workers),
        )

    def build_model(self) -> MultiTaskModel:
        channels = (self.n_classes, 1, 3)[: self.n_tasks]
        unit_norm = tuple(task == "normal" for task in self.tasks)
        return SegNetMTAN(channels, unit_norm, width_multiplier=self.options["width_multiplier"])

    def loss_terms(self, outputs, batch) -> tuple[torch.Tensor, torch.Tensor]:
        terms = [segmentation_terms(outputs[0], batch["label"]), depth_terms(outputs[1], batch["depth"])]
        if "normal" in self.tasks:
            terms.append(normal_terms(outputs[2], batch["normal"]))
        return torch.stack([s for s, _ in terms], 1), torch.stack([c for _, c in terms], 1)

    def chunk_loss_terms(self, outputs, batch, terms):
        """``chunk_loss: image_mean``: (each image's mean loss, 1) — the reference's NTKMTL-SR losses,
        segmentation averaged over ALL pixels, depth and normal over the image's valid ones (an
        image without valid pixels counts 0, where the reference divides by zero)."""
        if self.options["chunk_loss"] == "valid_pixels":
            return terms
        sums, counts = terms
        divisor = counts.clamp_min(1)
        divisor[:, 0] = batch["label"][0].numel()  # segmentation: every pixel of the image
        return sums / divisor, torch.ones_like(sums)

    @torch.no_grad()
    def evaluate(self, model: MultiTaskModel, loader: Iterable, device: torch.device) -> dict[str, float]:
        was_training = model.training
        model.eval()
        confusion = torch.zeros(self.n_classes, self.n_classes, dtype=torch.int64, device=device)
        per_batch: dict[str, list[tuple[float, ...]]] = {"depth": [], "normal": []}
        for batch in loader:
            batch = self.batch_to(batch, device)
            outputs, _ = model(batch)
            confusion += confusion_matrix(outputs[0].argmax(1), batch["label"], self.n_classes)
            per_batch["depth"].append(depth_errors(outputs[1], batch["depth"]))
            if "normal" in self.tasks:
                per_batch["normal"].append(normal_errors(outputs[2], batch["normal"]))
        model.train(was_training)
        values = list(segmentation_scores(confusion.cpu()))
        for task in ("depth", "normal")[: self.n_tasks - 1]:
            rows = [r for r in per_batch[task] if r is not None]
            width = 2 if task == "depth" else 2 + len(ANGLE_THRESHOLDS)
            values += list(np.mean(rows, axis=0)) if rows else [math.nan] * width
        return {m.name: float(v) for m, v in zip(self.metrics, values)}
