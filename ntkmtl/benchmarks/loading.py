"""Data plumbing shared by the image benchmarks: one-message data errors, fixed splits, seeded loaders.

The split of a data set is a function of ``split_seed`` only, never of the training seed, so every
seed of a sweep trains, validates and tests on the same samples. The training loader shuffles with
its own generator seeded by the training seed; its state is ``loader.generator``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ntkmtl.benchmarks.base import DataError


def data_error(benchmark: str, path: str | Path, problem: str, layout: str, source: str) -> DataError:
    """ONE DataError that says what is wrong where, what the layout should be and where to get it."""
    return DataError(
        f"{benchmark} data at {Path(path)}: {problem}.\nExpected layout:\n{layout}\nHow to get it: {source}"
    )


def resolve(path: str) -> Path:
    """An absolute path with ``~`` expanded (trials may run in another working directory)."""
    return Path(os.path.expanduser(path)).resolve()


def held_out_split(n: int, fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) sorted indices of range(n): round(fraction · n) held out (at least one
    when n > 1), chosen by a permutation seeded with ``split_seed`` alone."""
    n_out = min(n - 1, max(1, round(fraction * n))) if n > 1 else 0
    order = np.random.default_rng(split_seed).permutation(n)
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def first(indices: Sequence[int] | np.ndarray, limit: int | None) -> np.ndarray:
    """The first ``limit`` indices (all when ``limit`` is None): subsets for quick runs."""
    indices = np.asarray(indices, dtype=np.int64)
    return indices if limit is None else indices[:limit]


def train_loader(
    dataset: Dataset, batch_size: int, seed: int, num_workers: int = 0, drop_single: bool = False
) -> DataLoader:
    """Shuffled by a generator seeded with ``seed``. ``drop_single``: drop a last batch of one
    sample, for models whose BatchNorm1d cannot normalise a single feature vector in training."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
        num_workers=num_workers,
        drop_last=drop_single and len(dataset) % batch_size == 1,
        pin_memory=torch.cuda.is_available(),
    )


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """In file order, every sample once."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
    )
