"""The on-disk QM9 cache: molecules as complete graphs in concatenated arrays, memory-mapped.

A store is one directory of ``.npy`` files plus ``meta.json``:

    node_ptr [M+1], edge_ptr [M+1]   int64 offsets of each molecule's atoms / complete-graph edges
    x [Σn, 11] float32, z [Σn] int8, pos [Σn, 3] float32          PyG's per-atom fields
    edge_bond [Σn(n−1)] int8 (−1: no bond, 0..3: single, double, triple, aromatic)
    edge_dist [Σn(n−1)] float32       Euclidean distance of each ordered pair (T.Distance(norm=False))
    y [M, 19] float32, idx [M] int64, position [M] int64, bond_method [M] int8

Edges of a molecule are all ordered pairs i ≠ j in row-major order, so edge_index is never
stored: it is a function of n. Files are opened with ``mmap_mode='r'``: concurrent trials on a
node share the page cache instead of each holding a copy. A store is written to a temporary
directory and renamed into place, so a killed build never leaves a half-written store, and
built under an exclusive file lock (``build_lock``), so concurrent trials on a node build once.
Stores live under ``default_cache_dir()`` unless a caller names another folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from ntkmtl.benchmarks.qm9_convert import N_BOND_TYPES, complete_graph

ARRAYS = ("node_ptr", "edge_ptr", "x", "z", "pos", "edge_bond", "edge_dist", "y", "idx", "position", "bond_method")
FORMAT_VERSION = 1
# Row b + 1 is the one-hot of bond type b; row 0 (no bond) is all zeros.
_BOND_ONE_HOT = np.concatenate([np.zeros((1, N_BOND_TYPES), np.float32), np.eye(N_BOND_TYPES, dtype=np.float32)])


def default_cache_dir() -> Path:
    """``$NTKMTL_CACHE/qm9`` if set, else ``~/.cache/ntkmtl/qm9``."""
    base = os.environ.get("NTKMTL_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "ntkmtl") / "qm9"


@contextmanager
def build_lock(path: Path):
    """An exclusive lock next to ``path``: one process on the node builds, the others wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_store(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and ``meta`` to ``path`` atomically; if another process finished the
    same store first, keep theirs. Returns ``path``."""
    missing = sorted(set(ARRAYS) - set(arrays))
    if missing:
        raise ValueError(f"store arrays missing {missing}; a store needs {', '.join(ARRAYS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arrays[name]))
        with open(tmp / "meta.json", "w") as f:
            json.dump({**meta, "format_version": FORMAT_VERSION}, f, indent=1)
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / "meta.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def remove_stale_temporaries(path: Path) -> None:
    """Delete temporary directories of ``path`` left by builds that were killed (call it while
    holding the build lock: then no live build owns one)."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def store_is_complete(path: Path) -> bool:
    """True when ``path`` holds a finished store of the current format."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("format_version") == FORMAT_VERSION and all((path / f"{a}.npy").exists() for a in ARRAYS)


@lru_cache(maxsize=None)
def _complete_edges(n: int) -> np.ndarray:
    return complete_graph(n)


class Store:
    """Read-only, memory-mapped view of one store directory."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.meta = json.loads((self.path / "meta.json").read_text())
        for name in ARRAYS:
            setattr(self, name, np.load(self.path / f"{name}.npy", mmap_mode="r"))
        self.n_atoms = np.diff(np.asarray(self.node_ptr))

    def __len__(self) -> int:
        return len(self.idx)

    def __getstate__(self) -> dict:
        """Pickle the path only (Ray, DataLoader workers): the copy reopens the same files."""
        return {"path": str(self.path)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(Path(state["path"]))

    def graph(self, row: int) -> Data:
        """Molecule ``row`` of the store as a PyG ``Data`` (complete graph, edge_attr dim 5)."""
        a, b = int(self.node_ptr[row]), int(self.node_ptr[row + 1])
        e, f = int(self.edge_ptr[row]), int(self.edge_ptr[row + 1])
        idx = int(self.idx[row])
        edge_attr = np.concatenate(
            [_BOND_ONE_HOT[self.edge_bond[e:f].astype(np.int64) + 1], self.edge_dist[e:f, None]], 1
        )
        return Data(
            x=torch.from_numpy(np.array(self.x[a:b])),
            z=torch.from_numpy(self.z[a:b].astype(np.int64)),
            pos=torch.from_numpy(np.array(self.pos[a:b])),
            edge_index=torch.from_numpy(_complete_edges(b - a).copy()),
            edge_attr=torch.from_numpy(edge_attr),
            y=torch.from_numpy(np.array(self.y[row : row + 1])),
            name=f"gdb_{idx + 1}",
            idx=idx,
        )

    def batch(self, rows: np.ndarray) -> Batch:
        """Molecules ``rows`` as one PyG ``Batch``, assembled directly from the flat arrays;
        equal to ``Batch.from_data_list([self.graph(r) for r in rows])``, without the per-graph
        Python work."""
        rows = np.asarray(rows, dtype=np.int64)
        n_atoms = self.n_atoms[rows]
        n_edges = n_atoms * (n_atoms - 1)
        node_ptr = np.concatenate([[0], np.cumsum(n_atoms)])
        edge_ptr = np.concatenate([[0], np.cumsum(n_edges)])
        nodes = _ranges(np.asarray(self.node_ptr)[rows], n_atoms)
        edges = _ranges(np.asarray(self.edge_ptr)[rows], n_edges)
        edge_index = np.concatenate([_complete_edges(int(n)) for n in n_atoms], axis=1)
        edge_index += np.repeat(node_ptr[:-1], n_edges)[None, :]
        edge_attr = np.concatenate(
            [_BOND_ONE_HOT[self.edge_bond[edges].astype(np.int64) + 1], self.edge_dist[edges, None]], 1
        )
        idx = np.asarray(self.idx)[rows]
        batch = Batch(
            x=torch.from_numpy(self.x[nodes]),
            z=torch.from_numpy(self.z[nodes].astype(np.int64)),
            pos=torch.from_numpy(self.pos[nodes]),
            edge_index=torch.from_numpy(edge_index),
            edge_attr=torch.from_numpy(edge_attr),
            y=torch.from_numpy(self.y[rows]),
            name=[f"gdb_{i + 1}" for i in idx],
            idx=torch.from_numpy(idx),
            batch=torch.from_numpy(np.repeat(np.arange(len(rows)), n_atoms)),
            ptr=torch.from_numpy(node_ptr),
        )
        node_slices, edge_slices = torch.from_numpy(node_ptr), torch.from_numpy(edge_ptr)
        graph_slices = torch.arange(len(rows) + 1)
        batch._num_graphs = len(rows)
        batch._slice_dict = {
            "x": node_slices,
            "z": node_slices,
            "pos": node_slices,
            "edge_index": edge_slices,
            "edge_attr": edge_slices,
            "y": graph_slices,
            "name": graph_slices,
            "idx": graph_slices,
        }
        zeros = torch.zeros(len(rows), dtype=torch.long)
        batch._inc_dict = {
            "x": zeros,
            "z": zeros,
            "pos": zeros,
            "edge_index": torch.from_numpy(node_ptr[:-1]),
            "edge_attr": zeros,
            "y": zeros,
            "name": None,
            "idx": None,
        }
        return batch


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + l) for each (s, l), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + shift
