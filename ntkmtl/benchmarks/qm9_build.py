"""Building a QM9 store: the selected molecules of a source converted to complete graphs, once.

``build_store(path, source, root, selection, signature, progress)`` holds the store's build lock
(``qm9_store.build_lock``), so concurrent trials on a node build it once; the others wait and
then memory-map it. qm9pack molecules are converted with RDKit (``qm9_convert`` explains how
bonds are found and why the result equals PyG's featurisation), in one worker process per core
for large selections; a PyG root's molecules are taken as PyG processed them. Both get the
complete graph and its distances added exactly as the reference's ``Complete`` +
``T.Distance(norm=False)`` transform computes them.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ntkmtl.benchmarks.base import DataError
from ntkmtl.benchmarks.qm9_convert import (
    BOND_METHODS,
    complete_bond_types,
    complete_graph,
    convert_molecule,
    parse_coordinates,
    parse_elements,
)
from ntkmtl.benchmarks.qm9_source import pyg_dataset, qm9pack_files, read_qm9pack
from ntkmtl.benchmarks.qm9_store import build_lock, remove_stale_temporaries, store_is_complete, write_store
from ntkmtl.benchmarks.qm9_targets import QM9PACK_TARGET_COLUMNS, moleculenet_targets, pyg_targets

_CHUNK = 2000
_PARALLEL_FROM = 10_000  # smaller selections convert in-process (a few seconds; no fork inside a Ray worker)


def build_store(
    path: Path, source: str, root: str | Path | None, selection: np.ndarray, signature: list, progress: bool
) -> None:
    """Write the store of the molecules at dataset positions ``selection`` (sorted, unique) of
    ``source`` to ``path``, unless a finished one is there or another process finishes it first."""
    with build_lock(path):
        remove_stale_temporaries(path)
        if store_is_complete(path):
            return
        started = time.perf_counter()
        if source == "pyg":
            arrays, meta = _build_from_pyg(root, selection, progress)
        else:
            arrays, meta = _build_from_qm9pack(qm9pack_files(root), selection, progress)
        meta.update(source=source, signature=signature, build_seconds=time.perf_counter() - started)
        write_store(path, arrays, meta)


def _convert_chunk(chunk: tuple[list[int], list[str], list[str]]) -> dict[str, np.ndarray]:
    """Worker (numpy + RDKit only): molecules (QM9 indices, Elements cells, XYZ_Ang cells) →
    concatenated store arrays."""
    parts: dict[str, list] = {k: [] for k in ("x", "z", "pos", "edge_bond", "n_atoms", "bond_method")}
    for index, elements_cell, xyz_cell in zip(*chunk):
        try:
            elements = parse_elements(elements_cell)
            molecule = convert_molecule(elements, parse_coordinates(xyz_cell))
        except ValueError as error:
            raise DataError(
                f"QM9 molecule {index} (Elements {elements_cell!r:.80}) cannot be converted: {error}"
            ) from None
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
    chunks = [
        (index[s : s + _CHUNK], elements[s : s + _CHUNK], xyz[s : s + _CHUNK]) for s in range(0, len(selection), _CHUNK)
    ]
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


def _build_from_pyg(root: str | Path | None, selection: np.ndarray, progress: bool) -> tuple[dict, dict]:
    """(store arrays, metadata) of PyG's own QM9 molecules at ``selection``: PyG's fields taken
    as they are, complete graphs and distances added as for qm9pack."""
    from tqdm import tqdm

    dataset = pyg_dataset(root)
    results, ys, idx = [], [], []
    for i in tqdm(selection, desc="QM9 (PyG): complete graphs", unit="mol", disable=not progress):
        data = dataset[int(i)]
        n = data.num_nodes
        bond = data.edge_attr.argmax(1).numpy() if data.edge_attr.numel() else np.zeros(0, np.int64)
        pos = data.pos.to(torch.float32).numpy()
        results.append(
            {
                "x": data.x.numpy().astype(np.float32),
                "z": data.z.numpy().astype(np.int8),
                "pos": pos,
                "edge_bond": complete_bond_types(n, data.edge_index.numpy(), bond),
                "edge_dist": complete_distances(pos, np.array([n])),
                "n_atoms": np.array([n]),
                "bond_method": np.array([-1], dtype=np.int8),
            }
        )
        ys.append(data.y.numpy().reshape(-1))
        idx.append(int(data.idx))
    arrays = _assemble(results, np.stack(ys), np.array(idx, dtype=np.int64), selection)
    return arrays, {"n_molecules": len(selection), "bond_methods": {"pyg": len(selection)}}
