"""The real QM9 (130,831 molecules) as PyG graphs, offline, converted once and memory-mapped.

Usage::

    from ntkmtl.benchmarks.qm9 import TARGET_COLUMNS
    from ntkmtl.benchmarks.qm9_data import load_qm9
    from ntkmtl.benchmarks.qm9_source import n_molecules

    n = n_molecules()                           # 130831, nothing converted
    graphs = load_qm9(indices=range(3000))      # converts (or reuses) only these molecules
    data = graphs[0]                            # torch_geometric.data.Data
    batch = graphs.batch([0, 1, 2])             # torch_geometric.data.Batch, fast path
    for batch in graphs.loader(batch_size=120, shuffle=True, generator=g): ...
    y = graphs.y[:, TARGET_COLUMNS]             # [len, 11] the paper's 11 targets

``load_qm9(source="qm9pack", root=None, cache_dir=None, indices=None, progress=True)``
returns a ``QM9Graphs``: an indexable torch ``Dataset`` of PyG ``Data`` objects, usable with
``torch_geometric.loader.DataLoader``, each already transformed as the NTKMTL reference does
(complete graph + distance):

- ``x`` [n, 11] float32 (PyG's node features), ``z`` [n] int64, ``pos`` [n, 3] float32 (Å);
- ``edge_index`` [2, n(n−1)]: every ordered pair i ≠ j, row-major;
- ``edge_attr`` [n(n−1), 5]: bond one-hot (single, double, triple, aromatic; zeros where no
  bond) then the Euclidean distance (Å);
- ``y`` [1, 19] float32: PyG's 19 targets in PyG's order and units (``qm9_targets.TARGET_NAMES``);
  the benchmark's 11 are ``qm9.TARGET_COLUMNS``;
- ``idx``: PyG's ``idx`` (QM9 index − 1), ``name``: ``gdb_<QM9 index>``.

``indices`` are PyG dataset positions 0..130830 (row i of qm9pack = PyG's ``dataset[i]``); the
dataset keeps their order. ``graphs.subset(items)`` / ``graphs[a:b]`` give views (e.g. a split)
without copying; ``graphs.positions`` are the dataset positions of its items, ``graphs.y`` all
their targets [len, 19] (training-set statistics), ``graphs.bond_methods`` how each molecule's
bonds were found. ``graphs.loader(...)`` returns a re-iterable ``GraphLoader`` (attributes
``dataset``, ``generator``; ``len`` = batches per epoch) whose shuffling depends only on its
generator.

Sources (``source``, ``root``): see ``qm9_source.py``. Cache: ``cache_dir`` (default
``$NTKMTL_CACHE/qm9``, else ``~/.cache/ntkmtl/qm9``) holds one store per (source files,
selection) — see ``qm9_store.py``; ``qm9_build.py`` writes it. A full store serves every later
subset request without conversion. Builds hold a file lock, so concurrent trials on a node
build once; the full conversion runs on all CPU cores.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ntkmtl.benchmarks import qm9_build
from ntkmtl.benchmarks.qm9_convert import BOND_METHODS
from ntkmtl.benchmarks.qm9_source import check_source, n_molecules, source_signature
from ntkmtl.benchmarks.qm9_store import Store, default_cache_dir, store_is_complete


class QM9Graphs(Dataset):
    """QM9 molecules as complete PyG graphs with distances, read from a memory-mapped store.

    Item i is dataset position ``positions[i]``. ``batch(items)`` and ``loader(...)`` build
    ``Batch`` objects straight from the flat arrays (several times faster than collating
    ``Data`` objects); ``graphs[i]`` works with ``torch_geometric.loader.DataLoader`` too.
    """

    def __init__(self, store: Store, rows: np.ndarray | None = None):
        self.store = store
        self.rows = np.arange(len(store), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item):
        """``Data`` of item ``item``; a slice or a sequence of items gives a ``subset`` view."""
        if isinstance(item, (int, np.integer)):
            return self.store.graph(int(self.rows[item]))
        return self.subset(np.arange(len(self))[item] if isinstance(item, slice) else item)

    @property
    def positions(self) -> np.ndarray:
        """PyG dataset positions of the items."""
        return np.asarray(self.store.position)[self.rows]

    @property
    def y(self) -> torch.Tensor:
        """All targets [len, 19] (PyG order and units), e.g. for training-set statistics."""
        return torch.from_numpy(np.asarray(self.store.y)[self.rows])

    @property
    def bond_methods(self) -> list[str]:
        """How the bonds of each item were found (see ``qm9_convert.BOND_METHODS``)."""
        return [BOND_METHODS[m] if m >= 0 else "pyg" for m in np.asarray(self.store.bond_method)[self.rows]]

    def subset(self, items: Sequence[int] | np.ndarray) -> "QM9Graphs":
        """A view of the items ``items`` (positions within this dataset), no copy."""
        items = np.asarray(items, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= len(self)):
            bad = items[(items < 0) | (items >= len(self))][0]
            raise ValueError(f"subset item {bad} is out of range; valid items: 0..{len(self) - 1}")
        return QM9Graphs(self.store, self.rows[items])

    def batch(self, items: Sequence[int] | np.ndarray):
        """Items ``items`` as one ``torch_geometric.data.Batch``."""
        return self.store.batch(self.rows[np.asarray(items, dtype=np.int64)])

    def loader(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None, drop_last: bool = False
    ) -> "GraphLoader":
        """Batches of ``batch_size`` items; shuffled each epoch with ``generator`` when ``shuffle``."""
        return GraphLoader(self, batch_size, shuffle, generator, drop_last)


class GraphLoader:
    """Iterable of ``Batch`` objects over a ``QM9Graphs`` (re-iterable, one pass per epoch)."""

    def __init__(
        self,
        graphs: QM9Graphs,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
        self.graphs, self.batch_size, self.shuffle = graphs, batch_size, shuffle
        self.generator, self.drop_last = generator, drop_last
        self.dataset = graphs

    def __len__(self) -> int:
        n = len(self.graphs)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator:
        n = len(self.graphs)
        order = torch.randperm(n, generator=self.generator).numpy() if self.shuffle else np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self.graphs.batch(order[start : start + self.batch_size])


def load_qm9(
    source: str = "qm9pack",
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    indices: Iterable[int] | None = None,
    progress: bool = True,
) -> QM9Graphs:
    """QM9 as complete graphs with distances (see the module docstring), cached on disk.

    The first call converts the selected molecules (all when ``indices`` is None) and writes a
    store under ``cache_dir``; later calls memory-map it. A full store also serves subsets.
    """
    source = check_source(source)
    cache = Path(cache_dir).expanduser().resolve() if cache_dir is not None else default_cache_dir()
    signature = source_signature(source, root)
    family = f"{source}-{hashlib.sha1(json.dumps(signature).encode()).hexdigest()[:12]}"
    full = cache / f"{family}-full"
    if store_is_complete(full):
        store = Store(full)
        return QM9Graphs(store, None if indices is None else _check_indices(indices, len(store)))
    if indices is None:
        wanted, selection, path = None, None, full
    else:
        wanted = _check_indices(indices, None)
        selection = np.unique(wanted)
        path = cache / f"{family}-n{len(selection)}-{hashlib.sha1(selection.tobytes()).hexdigest()[:12]}"
    if not store_is_complete(path):  # about to build: check the selection against the source
        n_total = n_molecules(source, root)
        selection = np.arange(n_total) if wanted is None else np.unique(_check_indices(wanted, n_total))
    qm9_build.build_store(path, source, root, selection, signature, progress)
    store = Store(path)
    return QM9Graphs(store, None if wanted is None else np.searchsorted(np.asarray(store.position), wanted))


def _check_indices(indices: Iterable[int], n_total: int | None) -> np.ndarray:
    """``indices`` as int64 positions; ValueError for non-integers, negatives or (when
    ``n_total`` is given) positions past the end."""
    array = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"indices must be a 1-D sequence of integers (dataset positions); got {array!r:.80}")
    if array.size == 0:
        raise ValueError("indices is empty; give at least one dataset position, or None for all molecules")
    array = array.astype(np.int64)
    upper = np.iinfo(np.int64).max if n_total is None else n_total
    if array.min() < 0 or array.max() >= upper:
        bad = array[(array < 0) | (array >= upper)][0]
        valid = "0 or more" if n_total is None else f"0..{n_total - 1}"
        raise ValueError(f"index {bad} is not a QM9 dataset position; valid positions: {valid}")
    return array
