"""CelebA on disk: the standard folders (``LAYOUT``), read into labels, splits and one image cache.

The attribute file gives the 40 attributes (``ATTRIBUTES``, in its header's order) of every
image as 1 / -1; the partition file the official split of each (``SPLITS``: train / val / test
= 0 / 1 / 2). Images are read with Pillow, resized to ``size``² (bilinear, aspect ratio not
kept, as the reference's ``Resize((64, 64))``) and cached ONCE as a uint8 array [N, H, W, 3] in
an ``.npy`` file that every later trial memory-maps (concurrent trials on a node share the page
cache); ``CelebAImages`` serves its rows as tensors. A missing or malformed file raises a
``DataError`` naming the path and the layout. The benchmark itself (tasks, metrics, model,
losses) is ``celeba.py``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from ntkmtl.benchmarks.loading import data_error

# The 40 attributes, in the order of the header line of Anno/list_attr_celeba.txt.
ATTRIBUTES = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)

ATTR_FILE = Path("Anno/list_attr_celeba.txt")
PARTITION_FILE = Path("Eval/list_eval_partition.txt")
IMAGE_DIR = Path("Img/img_align_celeba")
SPLITS = {"train": 0, "val": 1, "test": 2}

LAYOUT = """  <root>/Img/img_align_celeba/000001.jpg … 202599.jpg   (aligned & cropped JPEGs, 178×218)
  <root>/Anno/list_attr_celeba.txt    line 1: image count; line 2: the 40 attribute names;
                                      then one line per image: <file> and 40 values, 1 or -1
  <root>/Eval/list_eval_partition.txt one line per image: <file> <0 train | 1 val | 2 test>"""

SOURCE = (
    "download CelebA from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped "
    "Images: img_align_celeba.zip into Img/; list_attr_celeba.txt into Anno/; "
    "list_eval_partition.txt into Eval/), then set the data option root to that folder."
)


def check_layout(root: Path) -> None:
    """A DataError (naming the path and ``LAYOUT``) unless ``root`` holds the CelebA folders, an
    attribute file with the right header, and the first image it lists: quick, no full read."""
    if not root.is_dir():
        raise data_error("CelebA", root, "folder does not exist", LAYOUT, SOURCE)
    for part in (ATTR_FILE, PARTITION_FILE, IMAGE_DIR):
        if not (root / part).exists():
            raise data_error("CelebA", root, f"{part} is missing", LAYOUT, SOURCE)
    head = _read_lines(root / ATTR_FILE, limit=3)
    _check_header(root / ATTR_FILE, head)
    first_image = head[2].split()[0] if head[2].split() else ""
    if not (root / IMAGE_DIR / first_image).is_file():
        raise data_error(
            "CelebA", root / IMAGE_DIR, f"first annotated image {first_image!r} is missing", LAYOUT, SOURCE
        )


def read_annotations(root: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(file names, labels [N, 40] in {0, 1} as uint8, split id [N]) from the two text files."""
    attr_path, part_path = root / ATTR_FILE, root / PARTITION_FILE
    lines = _read_lines(attr_path)
    _check_header(attr_path, lines[:2])
    rows = [line.split(maxsplit=1) for line in lines[2:] if line.strip()]
    if len(rows) != int(lines[0]):
        raise _malformed(attr_path, f"line 1 announces {lines[0].strip()} images but {len(rows)} lines follow")
    names = [row[0] for row in rows]
    labels = _attribute_values(rows)
    if labels is None:
        bad = next(i for i, row in enumerate(rows) if len(row) != 2 or not _valid_values(row[1].split()))
        raise _malformed(attr_path, f"line {bad + 3} is {lines[bad + 2]!r}, not a file name and 40 values 1/-1")

    parts = [line.split() for line in _read_lines(part_path) if line.strip()]
    if [p[0] for p in parts] != names or any(len(p) != 2 or p[1] not in ("0", "1", "2") for p in parts):
        raise _malformed(
            part_path, f"its lines are not '<file> <0|1|2>' for exactly the images of {ATTR_FILE}, in the same order"
        )
    return names, labels, np.array([int(p[1]) for p in parts], dtype=np.int64)


def _attribute_values(rows: list[list[str]]) -> np.ndarray | None:
    """[N, 40] labels in {0, 1} (uint8) from the rows' value columns; None if any row is malformed.
    Parsed by numpy in one pass: 8 million tokens are too many for a Python loop."""
    text = "\n".join(row[1] if len(row) == 2 else "x" for row in rows)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # older numpy only warns on text it cannot parse
            values = np.fromstring(text, dtype=np.int8, sep=" ")
    except ValueError:  # newer numpy (2.4 here) raises on a token that is not an integer
        return None
    if values.size != 40 * len(rows) or not np.isin(values, (-1, 1)).all():
        return None
    return (values.reshape(len(rows), 40) > 0).astype(np.uint8)


def _read_lines(path: Path, limit: int | None = None) -> list[str]:
    """The file's lines (the first ``limit`` of them), or a DataError if it is not UTF-8 text."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines() if limit is None else [f.readline() for _ in range(limit)]
    except UnicodeDecodeError as exc:
        raise _malformed(path, f"not a text file ({exc.reason} at byte {exc.start})") from None


def _valid_values(tokens: list[str]) -> bool:
    return len(tokens) == 40 and all(v in ("1", "-1") for v in tokens)


def _check_header(attr_path: Path, head: list[str]) -> None:
    if len(head) < 2 or not head[0].strip().isdigit():
        raise _malformed(attr_path, "line 1 should be the image count")
    if tuple(head[1].split()) != ATTRIBUTES:
        raise _malformed(
            attr_path,
            f"line 2 should name the 40 attributes ({ATTRIBUTES[0]} … {ATTRIBUTES[-1]}), found {head[1][:80]!r}",
        )


def _malformed(path: Path, problem: str):
    return data_error("CelebA", path, f"malformed file: {problem}", LAYOUT, SOURCE)


def cached_images(root: Path, names: list[str], size: int, cache_dir: Path) -> np.ndarray:
    """uint8 [len(names), size, size, 3], memory-mapped from the cache; built once if missing.

    The cache file is named after the size and a digest of the file list, and written to a
    temporary file then renamed, so a reader never sees a half-written cache.
    """
    digest = hashlib.sha1("\n".join([str(root)] + names).encode()).hexdigest()[:12]
    path = cache_dir / f"celeba_{size}px_{len(names)}_{digest}.npy"
    if not path.exists():
        present = set(os.listdir(root / IMAGE_DIR))
        missing = next((name for name in names if name not in present), None)
        if missing is not None:
            raise data_error(
                "CelebA", root / IMAGE_DIR / missing, "image listed in the annotation file is missing", LAYOUT, SOURCE
            )
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(names), size, size, 3))
            for i, name in enumerate(tqdm(names, desc=f"CelebA → {size}px cache", unit="img", mininterval=2.0)):
                out[i] = load_image(root / IMAGE_DIR / name, size)
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")


def load_image(path: Path, size: int) -> np.ndarray:
    """One JPEG as uint8 [size, size, 3] (RGB, bilinear resize like torchvision's Resize)."""
    if not path.is_file():
        raise data_error("CelebA", path, "image listed in the annotation file is missing", LAYOUT, SOURCE)
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)
    except OSError as exc:
        raise data_error("CelebA", path, f"not a readable image ({exc})", LAYOUT, SOURCE) from None


class CelebAImages(Dataset):
    """Samples {"image": float [3, H, W] in [0, 1], "labels": float [40] in {0, 1}}."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, rows: np.ndarray):
        self.images, self.labels, self.rows = images, labels, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = self.rows[i]
        image = torch.from_numpy(np.array(self.images[row])).permute(2, 0, 1).float().div_(255.0)
        return {"image": image, "labels": torch.from_numpy(self.labels[row].astype(np.float32))}
