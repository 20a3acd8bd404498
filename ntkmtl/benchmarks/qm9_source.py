"""Where QM9's molecules come from: the qm9pack CSV files or a PyG QM9 root, found and read.

Sources (``SOURCES``):

- ``"qm9pack"`` (default): the CSVs of the PyPI wheel ``qm9pack`` 1.0.3 (located without
  importing it). ``root`` may name another folder of ``qm9_part*.csv`` files in the same format
  (the tests use ``tests/fixtures/qm9``). Rows are sorted by QM9 index, so row i is PyG's
  ``dataset[i]``.
- ``"pyg"``: ``root`` is a ``torch_geometric.datasets.QM9`` root (``processed/data_v3.pt``, or
  ``raw/`` with gdb9.sdf, gdb9.sdf.csv, uncharacterized.txt); it is read by PyG itself.

Everything a missing or malformed source can go wrong with becomes one ``DataError`` that names
the path, the expected layout and how to get the data. ``source_signature`` (path, size and
mtime of the source files) keys the cache: a store is reused only for unchanged files.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Sequence

from ntkmtl.benchmarks.base import DataError
from ntkmtl.benchmarks.qm9_targets import QM9PACK_TARGET_COLUMNS

SOURCES = ("qm9pack", "pyg")
N_QM9 = 130_831  # molecules of PyG's QM9 and of qm9pack (QM9's 133,885 minus 3,054 uncharacterized)
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
PYG_RAW_FILES = ("gdb9.sdf", "gdb9.sdf.csv", "uncharacterized.txt")
CSV_COLUMNS = ("Index", "Elements", "XYZ_Ang") + QM9PACK_TARGET_COLUMNS
_N_CACHE: dict[str, int] = {}  # molecules per source signature, filled by every CSV read


def check_source(source: str) -> str:
    """``source`` if it is one of ``SOURCES``, else a ValueError listing them."""
    if source not in SOURCES:
        raise ValueError(f"unknown QM9 source {source!r}; valid sources: {', '.join(SOURCES)}")
    return source


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


def read_qm9pack(files: Sequence[Path], columns: Sequence[str] = CSV_COLUMNS) -> dict[str, list]:
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
    _N_CACHE[json.dumps(file_signature(files))] = len(out[columns[0]])
    return out


def n_molecules(source: str = "qm9pack", root: str | Path | None = None) -> int:
    """Number of molecules of the source (130,831 for the real QM9), without converting any."""
    source = check_source(source)
    if source == "pyg":
        return len(pyg_dataset(root))
    files = qm9pack_files(root)
    key = json.dumps(file_signature(files))
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


def file_signature(files: Sequence[Path]) -> list:
    """Path, size and mtime of each source file: a store is reused only for unchanged files."""
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def source_signature(source: str, root: str | Path | None) -> list:
    """The file signature of a source: qm9pack's CSV files, or a PyG root's processed file
    (else its three raw files)."""
    if source != "pyg":
        return file_signature(qm9pack_files(root))
    path = pyg_root(root)
    files = [path / "processed" / "data_v3.pt"]
    if not files[0].exists():
        files = [path / "raw" / name for name in PYG_RAW_FILES]
    return file_signature(files)


def pyg_root(root: str | Path | None) -> Path:
    """``root`` resolved, or a DataError when it is not a PyG QM9 root PyG can load offline."""
    if root is None:
        raise DataError(
            f"QM9 source 'pyg' needs root=<PyG QM9 root>.\nExpected layout:\n{PYG_LAYOUT}\nHow to get it: {PYG_HOW}"
        )
    path = Path(root).expanduser().resolve()
    processed = path / "processed" / "data_v3.pt"
    raw = [path / "raw" / name for name in PYG_RAW_FILES]
    if not processed.exists() and not all(p.exists() for p in raw):
        problem = "does not exist" if not path.exists() else "has neither processed/data_v3.pt nor the three raw files"
        raise DataError(f"QM9 data at {path}: {problem}.\nExpected layout:\n{PYG_LAYOUT}\nHow to get it: {PYG_HOW}")
    if not processed.exists() and importlib.util.find_spec("rdkit") is None:
        raise DataError(
            f"QM9 data at {path}: processing raw/ needs RDKit, which is not installed.\nHow to get it: pip install rdkit"
        )
    return path


def pyg_dataset(root: str | Path | None):
    """``torch_geometric.datasets.QM9(root)``, with load failures turned into one DataError."""
    from torch_geometric.datasets import QM9

    path = pyg_root(root)
    try:
        return QM9(str(path))
    except Exception as error:  # a corrupt or foreign file: one clear message, not PyG's traceback
        raise DataError(
            f"QM9 data at {path}: torch_geometric.datasets.QM9 cannot load it ({type(error).__name__}: {error}).\n"
            f"Expected layout:\n{PYG_LAYOUT}\nHow to get it: {PYG_HOW}"
        ) from None
