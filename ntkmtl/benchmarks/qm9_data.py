"""The real QM9 (130,831 molecules) as PyG graphs, offline, converted once and memory-mapped.

Usage::

    from ntkmtl.benchmarks.qm9_data import load_qm9, n_molecules, REFERENCE_TARGETS

    n = n_molecules()                           # 130831, nothing converted
    graphs = load_qm9(indices=range(3000))      # converts (or reuses) only these molecules
    data = graphs[0]                            # torch_geometric.data.Data
    batch = graphs.batch([0, 1, 2])             # torch_geometric.data.Batch, fast path
    for batch in graphs.loader(batch_size=120, shuffle=True, generator=g): ...
    y = graphs.y[:, REFERENCE_TARGETS]          # [len, 11] the paper's 11 targets

``load_qm9(source="qm9pack", root=None, cache_dir=None, indices=None, progress=True)``
returns a ``QM9Graphs``: an indexable torch ``Dataset`` of PyG ``Data`` objects, usable with
``torch_geometric.loader.DataLoader``, each already transformed as the NTKMTL reference does
(complete graph + distance):

- ``x`` [n, 11] float32 (PyG's node features), ``z`` [n] int64, ``pos`` [n, 3] float32 (Å);
- ``edge_index`` [2, n(n−1)]: every ordered pair i ≠ j, row-major;
- ``edge_attr`` [n(n−1), 5]: bond one-hot (single, double, triple, aromatic; zeros where no
  bond) then the Euclidean distance (Å);
- ``y`` [1, 19] float32: PyG's 19 targets in PyG's order and units (``TARGET_NAMES``);
  ``REFERENCE_TARGETS`` = the reference experiment's 11 columns [0, 1, 2, 3, 5, 6, 12, 13, 14,
  15, 11]; ``MEV_TARGETS`` = positions (within those 11) reported in meV;
- ``idx``: PyG's ``idx`` (QM9 index − 1), ``name``: ``gdb_<QM9 index>``.

``indices`` are PyG dataset positions 0..130830 (row i of qm9pack = PyG's ``dataset[i]``); the
dataset keeps their order. ``graphs.subset(items)`` / ``graphs[a:b]`` give views (e.g. a split)
without copying; ``graphs.positions`` are the dataset positions of its items, ``graphs.y`` all
their targets [len, 19] (training-set statistics), ``graphs.bond_methods`` how each molecule's
bonds were found. ``graphs.loader(...)`` returns a re-iterable ``GraphLoader`` (attributes
``dataset``, ``generator``; ``len`` = batches per epoch) whose shuffling depends only on its
generator. ``reference_complete`` is the reference's on-the-fly transform, for comparisons.

Sources:
- ``"qm9pack"`` (default): the CSVs of the PyPI wheel ``qm9pack`` 1.0.3, converted with RDKit
  (``ntkmtl/benchmarks/qm9_convert.py`` explains how bonds are found and why the result
  equals PyG's featurisation). ``root`` may name another folder of ``qm9_part*.csv`` files in
  the same format (the tests use ``tests/fixtures/qm9``).
- ``"pyg"``: ``root`` is a ``torch_geometric.datasets.QM9`` root (``processed/data_v3.pt``, or
  ``raw/`` with gdb9.sdf, gdb9.sdf.csv, uncharacterized.txt); it is read by PyG itself.

Cache: ``cache_dir`` (default ``$NTKMTL_CACHE/qm9``, else ``~/.cache/ntkmtl/qm9``) holds one
store per (source files, selection) — see ``qm9_store.py``. A full store serves every later
subset request without conversion. Builds hold a file lock, so concurrent trials on a node
build once; the full conversion runs on all CPU cores.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import multiprocessing
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ntkmtl.benchmarks.base import DataError
from ntkmtl.benchmarks.qm9_convert import (
    BOND_METHODS,
    QM9PACK_TARGET_COLUMNS,
    TARGET_NAMES,
    complete_bond_types,
    complete_graph,
    convert_molecule,
    moleculenet_targets,
    parse_coordinates,
    parse_elements,
    pyg_targets,
)
from ntkmtl.benchmarks.qm9_store import Store, remove_stale_temporaries, store_is_complete, write_store

SOURCES = ("qm9pack", "pyg")
N_QM9 = 130_831  # molecules of PyG's QM9 and of qm9pack (QM9's 133,885 minus 3,054 uncharacterized)
REFERENCE_TARGETS = (0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11)
REFERENCE_TARGET_NAMES = tuple(TARGET_NAMES[i] for i in REFERENCE_TARGETS)
MEV_TARGETS = (2, 3, 5, 6, 7, 8, 9)
QM9PACK_LAYOUT = (
    "  <root>/qm9_part1.csv, qm9_part2.csv, ... (qm9pack's CSV format: columns Index, Elements, XYZ_Ang,\n"
    "  " + ", ".join(QM9PACK_TARGET_COLUMNS) + "; rows sorted by Index)"
)
QM9PACK_HOW = "pip install qm9pack==1.0.3 rdkit (the real QM9, offline), or use source='pyg' with a PyG QM9 root"
PYG_LAYOUT = (
    "  <root>/processed/data_v3.pt (written by torch_geometric.datasets.QM9), or\n"
    "  <root>/raw/gdb9.sdf, gdb9.sdf.csv, uncharacterized.txt (MoleculeNet's files; needs rdkit)"
)
PYG_HOW = "run torch_geometric.datasets.QM9(root) once on a machine with internet, then copy root here"
_CSV_COLUMNS = ("Index", "Elements", "XYZ_Ang") + QM9PACK_TARGET_COLUMNS
_CHUNK = 2000
_PARALLEL_FROM = 10_000  # smaller selections convert in-process (a few seconds; no fork inside a Ray worker)
_N_CACHE: dict[str, int] = {}  # molecules per source signature, filled by every CSV read


def default_cache_dir() -> Path:
    """``$NTKMTL_CACHE/qm9`` if set, else ``~/.cache/ntkmtl/qm9``."""
    base = os.environ.get("NTKMTL_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "ntkmtl") / "qm9"


def qm9pack_dir() -> Path:
    """The data folder of the installed qm9pack wheel (located without importing qm9pack)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"QM9 source 'qm9pack': the package qm9pack is not installed.\nHow to get it: {QM9PACK_HOW}")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def qm9pack_files(root: str | Path | None = None) -> list[Path]:
    """The ``qm9_part*.csv`` files of ``root`` (default: the qm9pack wheel), in part order."""
    folder = Path(root).expanduser().resolve() if root is not None else qm9pack_dir()
    files = sorted(folder.glob("qm9_part*.csv"), key=lambda p: (len(p.stem), p.stem))  # part2 before part10
    if not files:
        problem = "does not exist" if not folder.exists() else "holds no qm9_part*.csv file"
        raise DataError(
            f"QM9 data at {folder}: {problem}.\nExpected layout:\n{QM9PACK_LAYOUT}\nHow to get it: {QM9PACK_HOW}"
        )
    return files


def read_qm9pack(files: Sequence[Path], columns: Sequence[str] = _CSV_COLUMNS) -> dict[str, list]:
    """``columns`` of the concatenated CSV files, as Python lists (pyarrow's multithreaded reader)."""
    from pyarrow import csv

    out: dict[str, list] = {c: [] for c in columns}
    for path in files:
        try:
            table = csv.read_csv(path, convert_options=csv.ConvertOptions(include_columns=list(columns)))
        except (KeyError, ValueError, OSError) as error:
            raise DataError(
                f"QM9 data at {path}: cannot read the columns {', '.join(columns)} ({error}).\n"
                f"Expected layout:\n{QM9PACK_LAYOUT}\nHow to get it: {QM9PACK_HOW}"
            ) from None
        for c in columns:
            out[c].extend(table.column(c).to_pylist())
    _N_CACHE[json.dumps(_file_signature(files))] = len(out[columns[0]])
    return out


def n_molecules(source: str = "qm9pack", root: str | Path | None = None) -> int:
    """Number of molecules of the source (130,831 for the real QM9), without converting any."""
    source = _check_source(source)
    if source == "pyg":
        return len(_pyg_dataset(root))
    files = qm9pack_files(root)
    key = json.dumps(_file_signature(files))
    if key not in _N_CACHE:
        _N_CACHE[key] = sum(_count_rows(path) for path in files)
    return _N_CACHE[key]


def _count_rows(path: Path) -> int:
    """Data rows of a CSV file whose cells hold no line breaks (qm9pack's): lines − header."""
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n") - 1


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

    def loader(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
               drop_last: bool = False) -> "GraphLoader":
        """Batches of ``batch_size`` items; shuffled each epoch with ``generator`` when ``shuffle``."""
        return GraphLoader(self, batch_size, shuffle, generator, drop_last)


class GraphLoader:
    """Iterable of ``Batch`` objects over a ``QM9Graphs`` (re-iterable, one pass per epoch)."""

    def __init__(self, graphs: QM9Graphs, batch_size: int, shuffle: bool = False,
                 generator: torch.Generator | None = None, drop_last: bool = False):
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


def load_qm9(source: str = "qm9pack", root: str | Path | None = None, cache_dir: str | Path | None = None,
             indices: Iterable[int] | None = None, progress: bool = True) -> QM9Graphs:
    """QM9 as complete graphs with distances (see the module docstring), cached on disk.

    The first call converts the selected molecules (all when ``indices`` is None) and writes a
    store under ``cache_dir``; later calls memory-map it. A full store also serves subsets.
    """
    source = _check_source(source)
    cache = Path(cache_dir).expanduser().resolve() if cache_dir is not None else default_cache_dir()
    signature = _pyg_signature(root) if source == "pyg" else _file_signature(qm9pack_files(root))
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
    with _build_lock(path):
        remove_stale_temporaries(path)
        if not store_is_complete(path):
            started = time.perf_counter()
            if source == "pyg":
                arrays, meta = _build_from_pyg(root, selection, progress)
            else:
                arrays, meta = _build_from_qm9pack(qm9pack_files(root), selection, progress)
            meta.update(source=source, signature=signature, build_seconds=time.perf_counter() - started)
            write_store(path, arrays, meta)
    store = Store(path)
    return QM9Graphs(store, None if wanted is None else np.searchsorted(np.asarray(store.position), wanted))


def reference_complete(data):
    """The NTKMTL reference's ``Complete`` transform, applied on the fly to a PyG molecule: the
    full N×N grid with the bond features scattered in, self-loops removed. With
    ``T.Distance(norm=False)`` after it this is what ``load_qm9`` precomputes (the tests check
    equality; bench/qm9_loading.py times both)."""
    from torch_geometric.utils import remove_self_loops

    n = data.num_nodes
    row = torch.arange(n).view(-1, 1).repeat(1, n).view(-1)
    col = torch.arange(n).repeat(n)
    edge_attr = data.edge_attr.new_zeros(n * n, data.edge_attr.size(1))
    edge_attr[data.edge_index[0] * n + data.edge_index[1]] = data.edge_attr
    data.edge_index, data.edge_attr = remove_self_loops(torch.stack([row, col]), edge_attr)
    return data


def _check_source(source: str) -> str:
    """``source`` if it is one of ``SOURCES``, else a ValueError listing them."""
    if source not in SOURCES:
        raise ValueError(f"unknown QM9 source {source!r}; valid sources: {', '.join(SOURCES)}")
    return source


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


def _file_signature(files: Sequence[Path]) -> list:
    """Path, size and mtime of each source file: a store is reused only for unchanged files."""
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


@contextmanager
def _build_lock(path: Path):
    """An exclusive lock next to ``path``: one process on the node builds, the others wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert_chunk(chunk: tuple[list[int], list[str], list[str]]) -> dict[str, np.ndarray]:
    """Worker (numpy + RDKit only): molecules (QM9 indices, Elements cells, XYZ_Ang cells) →
    concatenated store arrays."""
    parts: dict[str, list] = {k: [] for k in ("x", "z", "pos", "edge_bond", "n_atoms", "bond_method")}
    for index, elements_cell, xyz_cell in zip(*chunk):
        try:
            elements = parse_elements(elements_cell)
            molecule = convert_molecule(elements, parse_coordinates(xyz_cell))
        except ValueError as error:
            raise DataError(f"QM9 molecule {index} (Elements {elements_cell!r:.80}) cannot be converted: {error}") from None
        n = len(elements)
        parts["x"].append(molecule["x"])
        parts["z"].append(molecule["z"].astype(np.int8))
        parts["pos"].append(molecule["pos"])
        parts["edge_bond"].append(complete_bond_types(n, molecule["edge_index"], molecule["bond_type"]))
        parts["n_atoms"].append(n)
        parts["bond_method"].append(BOND_METHODS.index(molecule["method"]))
    return {k: np.concatenate(v) if k in ("x", "z", "pos", "edge_bond") else np.array(v) for k, v in parts.items()}


def complete_distances(pos: np.ndarray, n_atoms: np.ndarray) -> np.ndarray:
    """Distances of every complete-graph edge of consecutive molecules (``pos`` concatenated),
    computed as ``T.Distance(norm=False)`` does, so they are bitwise equal to it."""
    node_ptr = np.concatenate([[0], np.cumsum(n_atoms)])
    edges = np.concatenate([complete_graph(int(n)) + start for n, start in zip(n_atoms, node_ptr[:-1])], axis=1)
    pos = torch.from_numpy(np.ascontiguousarray(pos))
    row, col = torch.from_numpy(edges)
    return torch.norm(pos[col] - pos[row], p=2, dim=-1).numpy()


def _pool_context():
    """Fork where available: workers need no re-import of ``__main__`` (works from notebooks,
    stdin and Ray workers) and never touch torch, so forking a torch process is safe."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _build_from_qm9pack(files: Sequence[Path], selection: np.ndarray, progress: bool) -> tuple[dict, dict]:
    """(store arrays, metadata) of the molecules at positions ``selection`` of the CSV files;
    RDKit runs in one worker process per core, chunk by chunk."""
    try:
        import rdkit  # noqa: F401
    except ImportError:
        raise DataError(
            "QM9 source 'qm9pack': converting the molecules needs RDKit, which is not installed.\n"
            "How to get it: pip install rdkit (or use source='pyg' with a PyG QM9 root)"
        ) from None
    table = read_qm9pack(files)
    index = [table["Index"][i] for i in selection]
    elements = [table["Elements"][i] for i in selection]
    xyz = [table["XYZ_Ang"][i] for i in selection]
    chunks = [(index[s : s + _CHUNK], elements[s : s + _CHUNK], xyz[s : s + _CHUNK]) for s in range(0, len(selection), _CHUNK)]
    results = []
    from tqdm import tqdm

    bar = tqdm(total=len(selection), desc="QM9: molecules → complete graphs", unit="mol", disable=not progress)
    workers = min(os.cpu_count() or 1, len(chunks)) if len(selection) >= _PARALLEL_FROM else 1
    if workers > 1:
        with _pool_context().Pool(workers) as pool:
            for result in pool.imap(_convert_chunk, chunks):
                results.append(result)
                bar.update(len(result["n_atoms"]))
    else:
        for chunk in chunks:
            results.append(_convert_chunk(chunk))
            bar.update(len(chunk[0]))
    bar.close()
    for result in results:
        result["edge_dist"] = complete_distances(result["pos"], result["n_atoms"])
    raw = np.array([[table[c][i] for c in QM9PACK_TARGET_COLUMNS] for i in selection], dtype=np.float64)
    y = pyg_targets(moleculenet_targets(raw, [parse_elements(e) for e in elements]))
    arrays = _assemble(results, y, np.array(index, dtype=np.int64) - 1, selection)
    methods = np.bincount(arrays["bond_method"], minlength=len(BOND_METHODS))
    return arrays, {"n_molecules": len(selection), "bond_methods": dict(zip(BOND_METHODS, methods.tolist()))}


def _assemble(results: list[dict], y: np.ndarray, idx: np.ndarray, selection: np.ndarray) -> dict[str, np.ndarray]:
    """The store arrays (``qm9_store.ARRAYS``) from per-chunk results, targets and indices."""
    n_atoms = np.concatenate([r["n_atoms"] for r in results]).astype(np.int64)
    cat = {k: np.concatenate([r[k] for r in results]) for k in ("x", "z", "pos", "edge_bond", "edge_dist")}
    return {
        **cat,
        "node_ptr": np.concatenate([[0], np.cumsum(n_atoms)]),
        "edge_ptr": np.concatenate([[0], np.cumsum(n_atoms * (n_atoms - 1))]),
        "y": y.astype(np.float32),
        "idx": idx,
        "position": selection.astype(np.int64),
        "bond_method": np.concatenate([r["bond_method"] for r in results]).astype(np.int8),
    }


def _pyg_root(root: str | Path | None) -> Path:
    """``root`` resolved, or a DataError when it is not a PyG QM9 root PyG can load offline."""
    if root is None:
        raise DataError(f"QM9 source 'pyg' needs root=<PyG QM9 root>.\nExpected layout:\n{PYG_LAYOUT}\nHow to get it: {PYG_HOW}")
    path = Path(root).expanduser().resolve()
    processed = path / "processed" / "data_v3.pt"
    raw = [path / "raw" / name for name in ("gdb9.sdf", "gdb9.sdf.csv", "uncharacterized.txt")]
    if not processed.exists() and not all(p.exists() for p in raw):
        problem = "does not exist" if not path.exists() else "has neither processed/data_v3.pt nor the three raw files"
        raise DataError(f"QM9 data at {path}: {problem}.\nExpected layout:\n{PYG_LAYOUT}\nHow to get it: {PYG_HOW}")
    if not processed.exists() and importlib.util.find_spec("rdkit") is None:
        raise DataError(f"QM9 data at {path}: processing raw/ needs RDKit, which is not installed.\nHow to get it: pip install rdkit")
    return path


def _pyg_signature(root: str | Path | None) -> list:
    """The file signature of a PyG root: its processed file, else its three raw files."""
    path = _pyg_root(root)
    files = [path / "processed" / "data_v3.pt"]
    if not files[0].exists():
        files = [path / "raw" / name for name in ("gdb9.sdf", "gdb9.sdf.csv", "uncharacterized.txt")]
    return _file_signature(files)


def _pyg_dataset(root: str | Path | None):
    """``torch_geometric.datasets.QM9(root)``, with load failures turned into one DataError."""
    from torch_geometric.datasets import QM9

    path = _pyg_root(root)
    try:
        return QM9(str(path))
    except Exception as error:  # a corrupt or foreign file: one clear message, not PyG's traceback
        raise DataError(
            f"QM9 data at {path}: torch_geometric.datasets.QM9 cannot load it ({type(error).__name__}: {error}).\n"
            f"Expected layout:\n{PYG_LAYOUT}\nHow to get it: {PYG_HOW}"
        ) from None


def _build_from_pyg(root: str | Path | None, selection: np.ndarray, progress: bool) -> tuple[dict, dict]:
    """(store arrays, metadata) of PyG's own QM9 molecules at ``selection``: PyG's fields taken
    as they are, complete graphs and distances added as for qm9pack."""
    from tqdm import tqdm

    dataset = _pyg_dataset(root)
    results, ys, idx = [], [], []
    for i in tqdm(selection, desc="QM9 (PyG): complete graphs", unit="mol", disable=not progress):
        data = dataset[int(i)]
        n = data.num_nodes
        bond = data.edge_attr.argmax(1).numpy() if data.edge_attr.numel() else np.zeros(0, np.int64)
        pos = data.pos.to(torch.float32).numpy()
        results.append({
            "x": data.x.numpy().astype(np.float32), "z": data.z.numpy().astype(np.int8), "pos": pos,
            "edge_bond": complete_bond_types(n, data.edge_index.numpy(), bond),
            "edge_dist": complete_distances(pos, np.array([n])),
            "n_atoms": np.array([n]), "bond_method": np.array([-1], dtype=np.int8),
        })
        ys.append(data.y.numpy().reshape(-1))
        idx.append(int(data.idx))
    arrays = _assemble(results, np.stack(ys), np.array(idx, dtype=np.int64), selection)
    return arrays, {"n_molecules": len(selection), "bond_methods": {"pyg": len(selection)}}
