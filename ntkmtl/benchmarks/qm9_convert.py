"""One QM9 molecule from qm9pack's CSV row to PyTorch Geometric's QM9 featurisation, offline.

PyG's ``torch_geometric.datasets.QM9.process()`` reads MoleculeNet's ``gdb9.sdf`` (written by
RDKit: Kekulé bonds, coordinates with 4 decimals) unsanitised and the targets from
``gdb9.sdf.csv``. Offline there is no SDF, so the bonds are determined from the geometry:

1. ``rdDetermineBonds.DetermineBonds(charge=0)``: van der Waals connectivity + bond orders
   (124,021 of the 130,831 molecules);
2. when that finds no valid bond orders (strained cages, where vdW radii bond atoms that are
   not bonded, e.g. the bridgeheads of bicyclo[1.1.1]pentane): the same with extended-Hückel
   connectivity (``useHueckel=True``; 6,808 molecules, 5.2%);
3. when that fails too, the Hückel connectivity alone, every bond single (2 molecules: QM9
   133831 and 133850).

The molecule is then Kekulised with aromatic flags cleared, as RDKit's SDF writer stores it,
so PyG's aromatic / sp / sp2 / sp3 atom features and aromatic bond features are zero exactly as
in PyG's unsanitised loader. Node features (PyG, after Gilmer et al. 2017):
x = [one-hot H,C,N,O,F | atomic number | aromatic, sp, sp2, sp3 (all 0) | number of bonded H].
Positions are the SDF's: the coordinates printed with 4 decimals, read back as float32.

What is exact and what is not: given the same molecules, every field equals what PyG's own
``process()`` produces (the tests run it on an SDF written from these molecules). The bonds
themselves are RDKit's reading of the geometry, not MoleculeNet's file; the full build records
the method of every molecule (``QM9Graphs.bond_methods``) and has 18.03 atoms and 37.31
directed bond edges per molecule, as PyG's QM9 (~18.0, ~37.3). The 19 targets are computed from
qm9pack's columns in ``qm9_targets``.

This module needs numpy and RDKit only (it runs in the build's worker processes).
"""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager

import numpy as np

# PyG's atom types (one-hot index) and atomic numbers of QM9's five elements.
ATOM_TYPES = {"H": 0, "C": 1, "N": 2, "O": 3, "F": 4}
ATOMIC_NUMBERS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
# How the bonds of a molecule were found (stored per molecule in the cache).
BOND_METHODS = ("vdw", "hueckel", "hueckel_connectivity")
N_NODE_FEATURES = 11
N_BOND_TYPES = 4


def parse_elements(text: str) -> list[str]:
    """qm9pack's ``Elements`` cell, e.g. ``['C','H','H']``, as a list of symbols."""
    return [s.strip().strip("'\"") for s in text.strip("[]").split(",")]


def parse_coordinates(text: str) -> np.ndarray:
    """qm9pack's ``XYZ_Ang`` cell, ``[[x,y,z],...]`` in Å, as a float64 array [N, 3]."""
    flat = text.replace("[", "").replace("]", "").split(",")
    return np.array(flat, dtype=np.float64).reshape(-1, 3)


def xyz_block(elements: list[str], coords: np.ndarray) -> str:
    """An XYZ block with fixed-decimal coordinates (RDKit's XYZ parser rejects e.g. ``1e-05``)."""
    lines = [f"{e} {x:.10f} {y:.10f} {z:.10f}" for e, (x, y, z) in zip(elements, coords)]
    return f"{len(elements)}\n\n" + "\n".join(lines) + "\n"


@contextmanager
def _quiet_c_output():
    """Silence C-level stdout and stderr (YAeHMOP prints Hückel warnings) for the enclosed call."""
    libc = ctypes.CDLL(None)
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        libc.fflush(None)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        libc.fflush(None)
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [devnull]:
            os.close(fd)


def molecule_with_bonds(elements: list[str], coords: np.ndarray, methods: tuple[str, ...] = BOND_METHODS):
    """(RDKit Mol with Kekulé bonds and no aromatic flags, name of the method that found them).

    ``methods`` restricts the fallback chain (tests use it to show why the fallback is needed).
    """
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdDetermineBonds

    unknown = [m for m in methods if m not in BOND_METHODS]
    if unknown:
        raise ValueError(f"unknown bond method {unknown[0]!r}; valid methods: {', '.join(BOND_METHODS)}")
    RDLogger.DisableLog("rdApp.*")
    block = xyz_block(elements, coords)
    errors = []
    for method in methods:
        mol = Chem.MolFromXYZBlock(block)
        if mol is None:
            raise ValueError(f"RDKit cannot read the XYZ block of a molecule with elements {elements}")
        try:
            if method == "vdw":
                rdDetermineBonds.DetermineBonds(mol, charge=0)
            elif method == "hueckel":
                with _quiet_c_output():
                    rdDetermineBonds.DetermineBonds(mol, charge=0, useHueckel=True)
            else:
                with _quiet_c_output():
                    rdDetermineBonds.DetermineConnectivity(mol, useHueckel=True, charge=0)
        except (ValueError, RuntimeError) as error:
            errors.append(f"{method}: {error}")
            continue
        Chem.Kekulize(mol, clearAromaticFlags=True)
        return mol, method
    raise ValueError(f"no bond method found bonds for a molecule with elements {elements}: {'; '.join(errors)}")


def sdf_positions(coords: np.ndarray) -> np.ndarray:
    """Coordinates as PyG reads them from the SDF: printed with 4 decimals, then float32."""
    return np.array([[float(f"{v:.4f}") for v in row] for row in coords], dtype=np.float64).astype(np.float32)


def bond_list(mol) -> tuple[np.ndarray, np.ndarray]:
    """(edge_index [2, 2B] in PyG's order (sorted by row·N + col), bond type [2B] in 0..3)."""
    from rdkit.Chem.rdchem import BondType

    types = {BondType.SINGLE: 0, BondType.DOUBLE: 1, BondType.TRIPLE: 2, BondType.AROMATIC: 3}
    rows, cols, kinds = [], [], []
    for bond in mol.GetBonds():
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        rows += [a, b]
        cols += [b, a]
        kinds += 2 * [types[bond.GetBondType()]]
    n = mol.GetNumAtoms()
    edge_index = np.array([rows, cols], dtype=np.int64).reshape(2, -1)
    kinds = np.array(kinds, dtype=np.int64)
    order = np.argsort(edge_index[0] * n + edge_index[1], kind="stable")
    return edge_index[:, order], kinds[order]


def node_features(elements: list[str], edge_index: np.ndarray) -> np.ndarray:
    """PyG's x [N, 11]: type one-hot, atomic number, 4 zero columns (unsanitised), bonded H count."""
    n = len(elements)
    x = np.zeros((n, N_NODE_FEATURES), dtype=np.float32)
    x[np.arange(n), [ATOM_TYPES[e] for e in elements]] = 1.0
    z = np.array([ATOMIC_NUMBERS[e] for e in elements])
    x[:, 5] = z
    is_h = (z == 1).astype(np.float32)
    np.add.at(x[:, 10], edge_index[1], is_h[edge_index[0]])
    return x


def complete_graph(n: int) -> np.ndarray:
    """edge_index [2, N(N−1)] of all ordered pairs i ≠ j, row-major, as the reference's
    ``Complete`` transform (full N×N grid, self-loops removed) orders them."""
    row = np.repeat(np.arange(n), n)
    col = np.tile(np.arange(n), n)
    keep = row != col
    return np.stack([row[keep], col[keep]])


def complete_bond_types(n: int, edge_index: np.ndarray, bond_type: np.ndarray) -> np.ndarray:
    """Bond type (−1 for no bond) of every complete-graph edge, in ``complete_graph(n)`` order."""
    grid = np.full(n * n, -1, dtype=np.int8)
    grid[edge_index[0] * n + edge_index[1]] = bond_type
    return grid[(np.arange(n * n) // n) != (np.arange(n * n) % n)]


def convert_molecule(elements: list[str], coords: np.ndarray) -> dict:
    """PyG's per-molecule fields except the targets: x, z, pos, bond edge_index / type, method."""
    unknown = sorted(set(elements) - set(ATOM_TYPES))
    if unknown:
        raise ValueError(f"element {unknown[0]!r} is not in QM9; valid elements: {', '.join(ATOM_TYPES)}")
    mol, method = molecule_with_bonds(elements, coords)
    edge_index, bond_type = bond_list(mol)
    return {
        "x": node_features(elements, edge_index),
        "z": np.array([ATOMIC_NUMBERS[e] for e in elements], dtype=np.int64),
        "pos": sdf_positions(coords),
        "edge_index": edge_index,
        "bond_type": bond_type,
        "method": method,
        "mol": mol,
    }
