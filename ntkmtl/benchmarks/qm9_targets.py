"""QM9's 19 regression targets, from qm9pack's CSV columns to PyTorch Geometric's ``y``, offline.

Targets (PyG order and units): mu (D), alpha (a0^3), HOMO, LUMO, gap, r2 (a0^2), ZPVE, U0, U,
H, G (eV), Cv (cal/mol/K), U0/U/H/G atomisation energies (eV), A, B, C (GHz). They are computed
as PyG does it: MoleculeNet's column values (energies in Hartree, atomisation energies in
kcal/mol = (E · HAR2EV − Σ atom reference energies) / KCALMOL2EV) as float32, times PyG's
conversion vector in float32. Atomisation energies follow PyG's atom reference table;
MoleculeNet's kcal/mol column may differ in the last float32 digit.

This module needs numpy only.
"""

from __future__ import annotations

import numpy as np

from ntkmtl.benchmarks.qm9_convert import ATOM_TYPES

# PyG's constants (torch_geometric/datasets/qm9.py; a test checks they are equal).
HAR2EV = 27.211386246
KCALMOL2EV = 0.04336414
# Reference energies (eV) of the isolated atoms H, C, N, O, F for U0, U, H, G (PyG's atomrefs[7..10]).
ATOM_REFERENCE_EV = np.array(
    [
        [-13.61312172, -1029.86312267, -1485.30251237, -2042.61123593, -2713.48485589],
        [-13.5745904, -1029.82456413, -1485.26398105, -2042.5727046, -2713.44632457],
        [-13.54887564, -1029.79887659, -1485.2382935, -2042.54701705, -2713.42063702],
        [-13.90303183, -1030.25891228, -1485.71166277, -2043.01812778, -2713.88796536],
    ]
)
# PyG's unit conversion of its 19 targets (index order of ``TARGET_NAMES``).
CONVERSION = np.array(
    [
        1.0,
        1.0,
        HAR2EV,
        HAR2EV,
        HAR2EV,
        1.0,
        HAR2EV,
        HAR2EV,
        HAR2EV,
        HAR2EV,
        HAR2EV,
        1.0,
        KCALMOL2EV,
        KCALMOL2EV,
        KCALMOL2EV,
        KCALMOL2EV,
        1.0,
        1.0,
        1.0,
    ],
    dtype=np.float32,
)
TARGET_NAMES = (
    "mu",
    "alpha",
    "homo",
    "lumo",
    "gap",
    "r2",
    "zpve",
    "U0",
    "U",
    "H",
    "G",
    "Cv",
    "U0_atom",
    "U_atom",
    "H_atom",
    "G_atom",
    "A",
    "B",
    "C",
)
# qm9pack columns in MoleculeNet's gdb9.sdf.csv order (A, B, C, mu, alpha, homo, lumo, gap, r2,
# zpve, u0, u298, h298, g298, cv); the four atomisation energies are derived from u0..g298.
QM9PACK_TARGET_COLUMNS = (
    "RotA_GHz",
    "RotB_GHz",
    "RotC_GHz",
    "Dipole_debye",
    "Polarizability_bohr3",
    "HOMO_au",
    "LUMO_au",
    "HOMO_LUMO_gap_au",
    "R2_bohr2",
    "ZPVE_au",
    "InternalEnergy_0K_au",
    "InternalEnergy_298K_au",
    "Enthalphy_298K_au",
    "GibbsFreeEnergy_298K_au",
    "Heatcapacity_Cv_cal_mol_K",
)
MOLECULENET_COLUMNS = (
    "A",
    "B",
    "C",
    "mu",
    "alpha",
    "homo",
    "lumo",
    "gap",
    "r2",
    "zpve",
    "u0",
    "u298",
    "h298",
    "g298",
    "cv",
    "u0_atom",
    "u298_atom",
    "h298_atom",
    "g298_atom",
)


def moleculenet_targets(raw: np.ndarray, elements_list: list[list[str]]) -> np.ndarray:
    """MoleculeNet's 19 gdb9.sdf.csv columns (``MOLECULENET_COLUMNS``) in float64 from qm9pack's
    15 target columns (``QM9PACK_TARGET_COLUMNS``, [M, 15]) and each molecule's elements."""
    raw = np.asarray(raw, dtype=np.float64)
    counts = np.zeros((len(elements_list), 5))
    for i, elements in enumerate(elements_list):
        for e in elements:
            counts[i, ATOM_TYPES[e]] += 1
    reference = counts @ ATOM_REFERENCE_EV.T  # [M, 4] Σ atom energies for U0, U, H, G
    atomisation_kcal = (raw[:, 10:14] * HAR2EV - reference) / KCALMOL2EV
    return np.concatenate([raw, atomisation_kcal], axis=1)


def pyg_targets(moleculenet: np.ndarray) -> np.ndarray:
    """PyG's y [M, 19] (float32, ``TARGET_NAMES`` order and units) from MoleculeNet's columns,
    computed exactly as PyG's ``process()``: float32 values, reordered, times ``CONVERSION``."""
    y = np.asarray(moleculenet, dtype=np.float64).astype(np.float32)
    y = np.concatenate([y[:, 3:], y[:, :3]], axis=1)
    return y * CONVERSION[None, :]
