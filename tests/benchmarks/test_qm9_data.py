"""QM9 from qm9pack equals PyG's QM9 featurisation, checked against PyG's own processing code.

PyG's raw files cannot be downloaded here, so ``pyg_root`` writes the fixture molecules in
MoleculeNet's raw layout (gdb9.sdf written by RDKit from the molecules with their determined
bonds, gdb9.sdf.csv targets in MoleculeNet's units, uncharacterized.txt) and runs
``torch_geometric.datasets.QM9(root).process()`` on it; every field must then match ours after
the reference's transform (complete graph + ``T.Distance(norm=False)``).
"""

from __future__ import annotations

import builtins
import importlib.util
import pickle
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_geometric.datasets.qm9 as pyg_qm9
import torch_geometric.transforms as T
from fixtures.qm9_reference import METHANE_Y
from fixtures.reference_transforms import reference_complete
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from ntkmtl.benchmarks import qm9_build, qm9_source, qm9_store
from ntkmtl.benchmarks.base import DataError
from ntkmtl.benchmarks.qm9 import TARGET_COLUMNS
from ntkmtl.benchmarks.qm9_convert import molecule_with_bonds, parse_coordinates, parse_elements
from ntkmtl.benchmarks.qm9_data import load_qm9
from ntkmtl.benchmarks.qm9_source import n_molecules, read_qm9pack
from ntkmtl.benchmarks.qm9_targets import (
    ATOM_REFERENCE_EV,
    CONVERSION,
    HAR2EV,
    KCALMOL2EV,
    MOLECULENET_COLUMNS,
    QM9PACK_TARGET_COLUMNS,
    moleculenet_targets,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "qm9"
FIXTURE_INDICES = [1, 4, 105, 184, 214, 133885]  # QM9 indices of the fixture rows, in order
CAGE, BENZENE = 2, 4  # fixture positions of bicyclo[1.1.1]pentane and benzene
ALL_FIELDS = ("x", "z", "pos", "edge_index", "edge_attr", "y")


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    return load_qm9(root=FIXTURE, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="module")
def pyg_root(tmp_path_factory):
    """A PyG QM9 root processed by PyG itself from the fixture molecules."""
    from rdkit import Chem

    root = tmp_path_factory.mktemp("pyg")
    (root / "raw").mkdir()
    table = read_qm9pack([FIXTURE / "qm9_part1.csv"], ("Index", "Elements", "XYZ_Ang") + QM9PACK_TARGET_COLUMNS)
    writer = Chem.SDWriter(str(root / "raw" / "gdb9.sdf"))
    for index, elements, xyz in zip(table["Index"], table["Elements"], table["XYZ_Ang"]):
        mol, _ = molecule_with_bonds(parse_elements(elements), parse_coordinates(xyz))
        mol.SetProp("_Name", f"gdb_{index}")
        writer.write(mol)
    writer.close()
    raw = np.array([[table[c][i] for c in QM9PACK_TARGET_COLUMNS] for i in range(len(table["Index"]))])
    columns = moleculenet_targets(raw, [parse_elements(e) for e in table["Elements"]])
    lines = ["mol_id," + ",".join(MOLECULENET_COLUMNS)]
    lines += [f"gdb_{i}," + ",".join(repr(float(v)) for v in row) for i, row in zip(table["Index"], columns)]
    (root / "raw" / "gdb9.sdf.csv").write_text("\n".join(lines) + "\n")
    # MoleculeNet's list of the 3,054 uncharacterized molecules: 9 header lines, one line per
    # molecule (its 1-based SDF position first; none of ours), a footer line and an empty line.
    (root / "raw" / "uncharacterized.txt").write_text("header\n" * 9 + "  9999  C  C\n" + "footer\n")
    pyg_qm9.QM9(str(root))
    return root


@pytest.fixture(scope="module")
def pyg_graphs(pyg_root):
    transform = T.Compose([reference_complete, T.Distance(norm=False)])
    return pyg_qm9.QM9(str(pyg_root), transform=transform)


def test_every_field_equals_pyg_processing_after_the_reference_transform(graphs, pyg_graphs):
    assert len(graphs) == len(pyg_graphs) == len(FIXTURE_INDICES)
    for ours, theirs in zip(graphs, pyg_graphs):
        for field in ALL_FIELDS:
            assert ours[field].dtype == theirs[field].dtype, field
            assert torch.equal(ours[field], theirs[field]), (theirs.name, field)
        assert ours.name == theirs.name
    assert [g.idx for g in graphs] == [i - 1 for i in FIXTURE_INDICES]


def test_methane_hand_checked_against_pyg_documented_values(graphs):
    methane = graphs[0]
    assert methane.name == "gdb_1" and methane.idx == 0
    expected_x = torch.zeros(5, 11)
    expected_x[0, [1, 5, 10]] = torch.tensor([1.0, 6.0, 4.0])  # carbon, Z = 6, four bonded H
    expected_x[1:, [0, 5]] = 1.0  # hydrogens, Z = 1
    assert torch.equal(methane.x, expected_x)
    assert methane.z.tolist() == [6, 1, 1, 1, 1]
    assert methane.pos[0].tolist() == pytest.approx([-0.0127, 1.0858, 0.0080], abs=1e-7)
    assert methane.y.shape == (1, 19)
    assert methane.y[0].tolist() == pytest.approx(METHANE_Y, abs=6e-5)
    # the reference experiment's 11 targets, e.g. HOMO = −0.3877 Ha = −10.5499 eV, U0_atom −17.1722 eV
    assert methane.y[0, list(TARGET_COLUMNS)].tolist() == pytest.approx(
        [0.0, 13.21, -10.5499, 3.1865, 35.3641, 1.2177, -17.1722, -17.2868, -17.3897, -16.1519, 6.469], abs=6e-5
    )
    bonded = methane.edge_attr[:, :4].sum(1) == 1
    assert bonded.sum() == 8  # 4 C–H bonds, both directions
    assert (methane.edge_attr[bonded, 0] == 1).all()  # all single
    assert methane.edge_attr[bonded, 4].tolist() == pytest.approx([1.0919] * 8, abs=2e-4)


def test_complete_graph_has_every_ordered_pair_once_with_distances(graphs):
    for data in graphs:
        n = data.num_nodes
        assert data.edge_index.shape == (2, n * (n - 1)) and data.edge_attr.shape == (n * (n - 1), 5)
        pairs = set(map(tuple, data.edge_index.t().tolist()))
        assert pairs == {(i, j) for i in range(n) for j in range(n) if i != j}
        row, col = data.edge_index
        assert torch.allclose(data.edge_attr[:, 4], (data.pos[row] - data.pos[col]).norm(dim=1))
        assert set(data.edge_attr[:, :4].sum(1).tolist()) <= {0.0, 1.0}
        bond = {(i, j): tuple(a) for (i, j), a in zip(data.edge_index.t().tolist(), data.edge_attr[:, :4].tolist())}
        assert all(bond[(i, j)] == bond[(j, i)] for i, j in bond)


def test_benzene_is_kekule_with_zero_aromatic_and_hybridisation_features(graphs):
    benzene = graphs[BENZENE]
    assert benzene.name == "gdb_214"
    types = benzene.edge_attr[:, :4].sum(0) / 2  # bonds of each type
    assert types.tolist() == [9.0, 3.0, 0.0, 0.0]  # 3 C–C + 6 C–H single, 3 C=C double, no aromatic
    assert (benzene.x[:, 6:10] == 0).all()
    assert benzene.x[benzene.z == 6, 10].tolist() == [1.0] * 6


def test_strained_cage_needs_the_hueckel_fallback(graphs):
    table = read_qm9pack([FIXTURE / "qm9_part1.csv"], ("Elements", "XYZ_Ang"))
    elements, xyz = parse_elements(table["Elements"][CAGE]), parse_coordinates(table["XYZ_Ang"][CAGE])
    with pytest.raises(ValueError, match="vdw"):
        molecule_with_bonds(elements, xyz, methods=("vdw",))
    mol, method = molecule_with_bonds(elements, xyz)
    assert method == "hueckel"
    assert graphs.bond_methods == ["vdw", "vdw", "hueckel", "vdw", "vdw", "hueckel"]
    cage = graphs[CAGE]
    assert cage.name == "gdb_105"
    assert (cage.edge_attr[:, :4].sum(1) == 1).sum() == 2 * 14  # C5H8: 6 C–C + 8 C–H, all single
    bridgeheads = torch.nonzero(cage.x[:, 10] == 1).flatten().tolist()  # the two CH carbons
    assert len(bridgeheads) == 2
    i, j = bridgeheads
    pair = ((cage.edge_index[0] == i) & (cage.edge_index[1] == j)).nonzero().item()
    assert cage.edge_attr[pair, :4].sum() == 0  # no bond across the cage, 1.87 Å apart
    assert cage.edge_attr[pair, 4] == pytest.approx(1.87, abs=0.02)


def test_determined_bonds_reproduce_the_qm9_smiles_graph():
    from rdkit import Chem

    table = read_qm9pack([FIXTURE / "qm9_part1.csv"], ("Elements", "XYZ_Ang", "SMILES"))
    for elements, xyz, smiles in zip(table["Elements"], table["XYZ_Ang"], table["SMILES"]):
        mol, _ = molecule_with_bonds(parse_elements(elements), parse_coordinates(xyz))
        mol = Chem.RemoveAllHs(mol, sanitize=True)
        assert Chem.MolToSmiles(mol, isomericSmiles=False) == Chem.MolToSmiles(
            Chem.MolFromSmiles(smiles), isomericSmiles=False
        ), smiles


def test_constants_are_pygs():
    assert HAR2EV == pyg_qm9.HAR2EV and KCALMOL2EV == pyg_qm9.KCALMOL2EV
    assert torch.equal(torch.from_numpy(CONVERSION), pyg_qm9.conversion)
    assert np.array_equal(ATOM_REFERENCE_EV, np.array([pyg_qm9.atomrefs[t] for t in (7, 8, 9, 10)]))


def test_fast_batches_equal_pyg_collation(graphs):
    items = [5, 0, 2, 4]
    fast = graphs.batch(items)
    slow = Batch.from_data_list([graphs[i] for i in items])
    for field in ALL_FIELDS + ("batch", "ptr", "idx"):
        assert torch.equal(fast[field], slow[field]), field
    assert fast.name == slow.name and fast.num_graphs == slow.num_graphs == 4
    for k, i in enumerate(items):
        example = fast.get_example(k)
        assert all(torch.equal(example[f], graphs[i][f]) for f in ALL_FIELDS)
    via_pyg_loader = next(iter(DataLoader(graphs.subset(items), batch_size=4)))
    assert torch.equal(via_pyg_loader.edge_attr, fast.edge_attr)


def test_loader_covers_every_item_once_and_shuffles_by_generator(graphs):
    def epoch(seed):
        return [b.idx.tolist() for b in graphs.loader(4, shuffle=True, generator=torch.Generator().manual_seed(seed))]

    first = epoch(0)
    assert [len(b) for b in first] == [4, 2]
    assert sorted(sum(first, [])) == [i - 1 for i in FIXTURE_INDICES]
    assert epoch(0) == first and epoch(1) != first
    assert len(graphs.loader(4, drop_last=True)) == 1


def test_subsets_keep_order_and_positions(graphs, tmp_path):
    sub = load_qm9(root=FIXTURE, cache_dir=tmp_path, indices=[4, 0], progress=False)
    assert sub.positions.tolist() == [4, 0] and [g.name for g in sub] == ["gdb_214", "gdb_1"]
    assert torch.equal(sub[0].edge_attr, graphs[4].edge_attr)
    assert torch.equal(sub.y, graphs.y[[4, 0]])
    view = graphs.subset([3, 1])
    assert view.positions.tolist() == [3, 1] and view[1].name == "gdb_4"
    assert graphs[1:3].positions.tolist() == [1, 2] and graphs[[5]][0].name == "gdb_133885"
    with pytest.raises(ValueError, match="subset item 6 is out of range; valid items: 0..5"):
        graphs.subset([0, 6])


def test_worker_processes_convert_exactly_as_in_process(graphs, tmp_path, monkeypatch):
    monkeypatch.setattr(qm9_build, "_CHUNK", 2)  # 3 chunks of 2 molecules over a process pool
    monkeypatch.setattr(qm9_build, "_PARALLEL_FROM", 1)
    monkeypatch.setattr(qm9_build.os, "cpu_count", lambda: 2)
    pooled = load_qm9(root=FIXTURE, cache_dir=tmp_path, progress=False)
    for a, b in zip(pooled, graphs):
        assert all(torch.equal(a[f], b[f]) for f in ALL_FIELDS)
    assert pooled.bond_methods == graphs.bond_methods


def test_cache_round_trip_is_memory_mapped_and_never_reconverts(tmp_path, monkeypatch):
    first = load_qm9(root=FIXTURE, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(qm9_build, "_convert_chunk", lambda chunk: pytest.fail("converted again"))
    again = load_qm9(root=FIXTURE, cache_dir=tmp_path, progress=False)
    subset = load_qm9(root=FIXTURE, cache_dir=tmp_path, indices=[5, 1], progress=False)  # served by the full store
    assert isinstance(again.store.edge_dist, np.memmap) and isinstance(again.store.x, np.memmap)
    for a, b in zip(first, again):
        assert all(torch.equal(a[f], b[f]) for f in ALL_FIELDS)
    assert subset.store.path == again.store.path and [g.name for g in subset] == ["gdb_133885", "gdb_4"]
    assert again.store.meta["n_molecules"] == 6 and again.store.meta["bond_methods"]["hueckel"] == 2


def test_pickling_sends_the_path_not_the_arrays(graphs):
    blob = pickle.dumps(graphs.subset([5, 2]))
    copy = pickle.loads(blob)
    assert len(blob) < 2000 and isinstance(copy.store.edge_dist, np.memmap)
    assert [g.name for g in copy] == ["gdb_133885", "gdb_105"]
    assert torch.equal(copy[0].edge_attr, graphs[5].edge_attr)


def test_a_killed_build_leaves_no_store(tmp_path, monkeypatch):
    saved = []
    real_save = np.save

    def save_then_die(path, array):
        if len(saved) == 3:
            raise KeyboardInterrupt("killed mid-write")
        saved.append(path)
        real_save(path, array)

    monkeypatch.setattr(qm9_store.np, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        load_qm9(root=FIXTURE, cache_dir=tmp_path, progress=False)
    assert not any(qm9_store.store_is_complete(p) for p in tmp_path.iterdir())
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # the temporary directory is gone too
    monkeypatch.setattr(qm9_store.np, "save", real_save)
    assert len(load_qm9(root=FIXTURE, cache_dir=tmp_path, progress=False)) == 6


def test_stale_temporaries_of_killed_builds_are_removed(tmp_path):
    store = load_qm9(root=FIXTURE, cache_dir=tmp_path, indices=[0, 1], progress=False).store.path
    shutil.rmtree(store)  # as if the build had been killed (SIGKILL) before its rename
    stale = tmp_path / f".{store.name}.tmp-dead"
    stale.mkdir()
    (stale / "x.npy").write_bytes(b"half a file")
    assert len(load_qm9(root=FIXTURE, cache_dir=tmp_path, indices=[0, 1], progress=False)) == 2
    assert not stale.exists() and qm9_store.store_is_complete(store)


def test_concurrent_loads_build_once(tmp_path, monkeypatch):
    builds = []
    real_build = qm9_build._build_from_qm9pack

    def counted(*args):
        builds.append(1)
        time.sleep(0.3)  # let the other thread reach the lock while this one builds
        return real_build(*args)

    monkeypatch.setattr(qm9_build, "_build_from_qm9pack", counted)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(load_qm9(root=FIXTURE, cache_dir=tmp_path, progress=False)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and [len(r) for r in results] == [6, 6]


def test_a_molecule_that_cannot_be_converted_is_named(tmp_path, monkeypatch):
    def fail(elements, coords):
        raise ValueError("no bonds")

    monkeypatch.setattr(qm9_build, "convert_molecule", fail)
    with pytest.raises(DataError, match=r"QM9 molecule 1 .*no bonds"):
        load_qm9(root=FIXTURE, cache_dir=tmp_path, progress=False)


def test_pyg_source_reads_a_pyg_root_into_the_same_graphs(graphs, pyg_root, tmp_path):
    from_pyg = load_qm9(source="pyg", root=pyg_root, cache_dir=tmp_path, progress=False)
    assert n_molecules("pyg", pyg_root) == 6
    for ours, theirs in zip(graphs, from_pyg):
        assert all(torch.equal(ours[f], theirs[f]) for f in ALL_FIELDS)
    assert from_pyg.bond_methods == ["pyg"] * 6


def test_n_molecules_counts_without_converting(tmp_path):
    assert n_molecules(root=FIXTURE) == 6
    assert not list(tmp_path.iterdir())


def test_n_molecules_of_the_real_wheel():
    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("the qm9pack wheel is not installed")
    assert n_molecules() == qm9_source.N_QM9 == 130_831


def test_the_real_wheel_positions_are_pyg_positions(graphs, tmp_path):
    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("the qm9pack wheel is not installed")
    real = load_qm9(cache_dir=tmp_path, indices=[130_830, 0], progress=False)
    assert [g.name for g in real] == ["gdb_133885", "gdb_1"]
    for ours, fixture in zip(real, [graphs[5], graphs[0]]):
        assert all(torch.equal(ours[f], fixture[f]) for f in ALL_FIELDS)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"source": "sdf"}, ValueError, "valid sources: qm9pack, pyg"),
        ({"indices": [0, 6]}, ValueError, "index 6 .*valid positions: 0..5"),
        ({"indices": [0.5]}, ValueError, "integers"),
        ({"indices": [-1]}, ValueError, "index -1 .*valid positions: 0 or more"),
        ({"indices": []}, ValueError, "indices is empty"),
    ],
)
def test_bad_arguments_name_the_value_and_the_valid_ones(kwargs, error, match, tmp_path):
    with pytest.raises(error, match=match):
        load_qm9(**{"root": FIXTURE, "cache_dir": tmp_path, "progress": False, **kwargs})


def test_missing_or_malformed_data_gives_one_data_error(tmp_path):
    with pytest.raises(DataError, match=r"(?s)holds no qm9_part\*.csv.*Expected layout.*pip install qm9pack"):
        load_qm9(root=tmp_path, cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="needs root"):
        load_qm9(source="pyg", cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match=rf"(?s){tmp_path}.*neither processed/data_v3.pt.*gdb9.sdf"):
        load_qm9(source="pyg", root=tmp_path, cache_dir=tmp_path / "c")
    (tmp_path / "processed").mkdir()
    (tmp_path / "processed" / "data_v3.pt").write_text("not a torch file")
    with pytest.raises(DataError, match="cannot load it"):
        load_qm9(source="pyg", root=tmp_path, cache_dir=tmp_path / "c")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "qm9_part1.csv").write_text("Index,SMILES\n1,C\n")
    with pytest.raises(DataError, match="cannot read the columns"):
        load_qm9(root=bad, cache_dir=tmp_path / "c")


def test_missing_packages_give_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setattr(qm9_source.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"(?s)qm9pack is not installed.*pip install"):
        load_qm9(cache_dir=tmp_path)
    monkeypatch.undo()
    real_import = builtins.__import__

    def no_rdkit(name, *args, **kwargs):
        if name.split(".")[0] == "rdkit":
            raise ImportError("No module named 'rdkit'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rdkit)
    with pytest.raises(DataError, match=r"(?s)needs RDKit.*pip install rdkit"):
        load_qm9(root=FIXTURE, cache_dir=tmp_path)
