"""The MTAN ``.npy`` layout of NYUv2 and Cityscapes (Liu et al., CVPR 2019) and its augmentation.

The MTAN authors pre-processed both data sets into one file per sample and modality:
``<root>/{train,val}/<folder>/<i>.npy`` with image H×W×3 in [0, 1], label H×W (class id, −1 =
ignore), depth H×W×1 (0 = no measurement) and, for NYUv2, normal H×W×3 (0 = no normal). Their
``val`` split is the split every paper reports as the TEST set, so we never select models on it:
our validation set is a fixed part of ``train`` (``val_fraction``, chosen by ``split_seed`` only).

Augmentation (docs/REFERENCE_FACTS.md §4; MTAN issue #34, used by the reference code): a random
scale s ∈ {1, 1.2, 1.5}, a random crop of size (H/s, W/s) resized back to H×W (bilinear for image and
normals, nearest for label and depth), depth divided by s (the camera moved s times closer), then
a horizontal flip with probability 1/2 that negates the normals' x component. Randomness comes
from torch's global generator (the trainer seeds and checkpoints it; DataLoader workers get
seeds derived from the loader's generator), so seeded runs are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ntkmtl.benchmarks.loading import data_error

SCALES = (1.0, 1.2, 1.5)
MTAN_SOURCE = (
    "use the {name} data pre-processed by the MTAN authors: the download links are in the "
    "'Datasets' section of https://github.com/lorenmt/mtan (README); unzip it and set the data "
    "option root to the folder that holds train/ and val/."
)
# Trailing axis of each modality on disk: image H×W×3, label H×W, depth H×W×1, normal H×W×3.
CHANNELS = {"image": 3, "label": None, "depth": 1, "normal": 3}
SIZE_MULTIPLE = 32  # SegNet pools five times by 2


@dataclass(frozen=True)
class MTANLayout:
    """One data set in the MTAN layout: its name, folders (label folder named ``label`` or
    ``label_7``), sample counts and image size of the real data (for the error message)."""

    name: str
    folders: dict[str, str]  # modality → folder name
    counts: dict[str, int]  # split → number of samples in the real data
    size: tuple[int, int]

    def describe(self) -> str:
        folders = ",".join(self.folders.values())
        h, w = self.size
        shapes = {
            "image": f"{h}×{w}×3 float in [0, 1]",
            "label": f"{h}×{w} class ids, -1 = ignore",
            "depth": f"{h}×{w}×1, 0 = unknown",
            "normal": f"{h}×{w}×3 unit vectors, 0 = unknown",
        }
        lines = [
            f"  <root>/{{train,val}}/{{{folders}}}/<i>.npy   i = 0 … N-1 "
            f"({self.counts['train']} train, {self.counts['val']} val samples)"
        ]
        lines += [f"    {folder}/<i>.npy: {shapes[m]}" for m, folder in self.folders.items()]
        return "\n".join(lines)

    def error(self, path: Path, problem: str):
        return data_error(self.name, path, problem, self.describe(), MTAN_SOURCE.format(name=self.name))


def count_samples(layout: MTANLayout, root: Path, split: str) -> int:
    """N for ``root/split``: every folder must hold exactly 0.npy … (N−1).npy."""
    counts = {}
    for folder in layout.folders.values():
        directory = root / split / folder
        if not directory.is_dir():
            raise layout.error(root, f"folder {split}/{folder} is missing")
        names = {p.name for p in directory.iterdir() if p.suffix == ".npy"}
        n = len(names)
        if n == 0 or names != {f"{i}.npy" for i in range(n)}:
            raise layout.error(
                directory,
                f"expected files 0.npy … N-1.npy, found {n} .npy files"
                + ("" if n == 0 else f" not numbered 0 … {n - 1}"),
            )
        counts[folder] = n
    if len(set(counts.values())) != 1:
        raise layout.error(root / split, f"the folders hold different numbers of samples: {counts}")
    return next(iter(counts.values()))


def check_sample(layout: MTANLayout, root: Path, split: str, index: int) -> tuple[int, int]:
    """Check one sample's shapes against the layout; return its (H, W)."""
    size = None
    for modality, folder in layout.folders.items():
        path = root / split / folder / f"{index}.npy"
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise layout.error(path, f"not a readable .npy file ({exc})") from None
        channels = CHANNELS[modality]
        expected_dims = 2 if channels is None else 3
        if array.ndim != expected_dims or (channels is not None and array.shape[2] != channels):
            want = "H×W" if channels is None else f"H×W×{channels}"
            raise layout.error(path, f"{modality} array of shape {array.shape}, expected {want}")
        if size is None:
            size = array.shape[:2]
        elif array.shape[:2] != size:
            raise layout.error(path, f"{modality} is {array.shape[:2]} but the image is {size}")
    h, w = size
    if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        raise layout.error(root / split, f"images are {h}×{w}; SegNet-MTAN needs sides divisible by {SIZE_MULTIPLE}")
    return h, w


class MTANDataset(Dataset):
    """Samples {"image": [3, H, W], "label": long [H, W], "depth": [1, H, W], "normal": [3, H, W]}
    ("normal" only where the layout has it), optionally augmented."""

    def __init__(self, layout: MTANLayout, split_dir: Path, indices: Sequence[int], augment: bool):
        self.layout, self.split_dir, self.indices, self.augment = layout, split_dir, list(indices), augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        index = self.indices[i]
        sample = {}
        for modality, folder in self.layout.folders.items():
            array = torch.from_numpy(np.load(self.split_dir / folder / f"{index}.npy"))
            if array.dim() == 3:
                array = array.permute(2, 0, 1)
            sample[modality] = array.long() if modality == "label" else array.float()
        if self.augment:
            sample = random_flip(random_scale_crop(sample))
        return {k: v.contiguous() for k, v in sample.items()}


def scale_crop(sample: dict[str, torch.Tensor], scale: float, top: int, left: int) -> dict[str, torch.Tensor]:
    """Crop (H/scale, W/scale) at (top, left) and resize back to H×W; depth divided by scale."""
    height, width = sample["image"].shape[-2:]
    h, w = int(height / scale), int(width / scale)
    out = {}
    for modality, x in sample.items():
        crop = x[..., top : top + h, left : left + w]
        if modality in ("image", "normal"):
            out[modality] = F.interpolate(crop[None], size=(height, width), mode="bilinear", align_corners=True)[0]
        elif modality == "label":
            resized = F.interpolate(crop[None, None].float(), size=(height, width), mode="nearest")[0, 0]
            out[modality] = resized.long()
        else:
            out[modality] = F.interpolate(crop[None], size=(height, width), mode="nearest")[0] / scale
    return out


def random_scale_crop(sample: dict[str, torch.Tensor], scales: Sequence[float] = SCALES) -> dict[str, torch.Tensor]:
    """``scale_crop`` with a random scale from ``scales`` and a random crop position."""
    height, width = sample["image"].shape[-2:]
    scale = scales[int(torch.randint(len(scales), ()))]
    h, w = int(height / scale), int(width / scale)
    top = int(torch.randint(height - h + 1, ()))
    left = int(torch.randint(width - w + 1, ()))
    return scale_crop(sample, scale, top, left)


def flip(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mirror left-right; a mirrored surface's normal has its x component negated."""
    out = {k: v.flip(-1) for k, v in sample.items()}
    if "normal" in out:
        out["normal"][0] = -out["normal"][0]
    return out


def random_flip(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``flip`` with probability 1/2."""
    return flip(sample) if bool(torch.rand(()) < 0.5) else sample
