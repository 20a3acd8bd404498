"""The QM9 benchmark on real molecules (qm9pack): split, subsets, targets and units, standardisation,
the factorised MPNN, one epoch, and a recipe test locking the first losses of seeded runs."""

import math

import numpy as np
import pytest
import torch
from fixtures.qm9_reference import METHANE_Y
from torch_geometric.data import Batch, Data
from torch_geometric.nn import NNConv

from ntkmtl.benchmarks.base import DataError
from ntkmtl.benchmarks.nets.mpnn import MPNN
from ntkmtl.benchmarks.qm9 import QM9, TARGET_COLUMNS, split_positions
from ntkmtl.benchmarks.qm9_data import load_qm9
from ntkmtl.train import Trial, TrialConfig, main

SIZES = {"train_size": 48, "val_size": 24, "test_size": 24}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("qm9_cache"))


@pytest.fixture(scope="module")
def qm9(cache_dir):
    """48/24/24 real molecules, converted once for the whole module."""
    benchmark = QM9(cache_dir=cache_dir, progress=False, **SIZES)
    benchmark.datasets()
    return benchmark


class ZeroModel(torch.nn.Module):
    def forward(self, batch):
        return torch.zeros(batch.num_graphs, 11), torch.zeros(batch.num_graphs, 64)


def test_split_is_a_fixed_function_of_split_seed():
    a, b, c = split_positions(130_831, 0), split_positions(130_831, 0), split_positions(130_831, 1)
    assert [len(a[s]) for s in ("test", "val", "train")] == [10_000, 10_000, 110_831]
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert not np.array_equal(a["test"], c["test"])
    together = np.concatenate([a["test"], a["val"], a["train"]])
    assert np.array_equal(np.sort(together), np.arange(130_831))  # disjoint and complete
    with pytest.raises(ValueError, match="needs more than 20000 molecules"):
        split_positions(20_000, 0)


def test_by_default_the_split_follows_the_training_seed_as_in_the_reference(qm9):
    # the reference shuffles the whole data set with the training seed: each seed another test set
    for seed in (0, 1):
        full = split_positions(130_831, seed)
        data = qm9.datasets(seed)
        for split in ("train", "val", "test"):
            assert np.array_equal(data[split].positions, full[split][: SIZES[f"{split}_size"]])
    assert not np.array_equal(qm9.datasets(0)["test"].positions, qm9.datasets(1)["test"].positions)
    train, _, _ = qm9.loaders(16, 1)
    (everything,) = qm9.datasets(1)["train"].loader(SIZES["train_size"])
    assert sorted(torch.cat([batch.idx for batch in train]).tolist()) == sorted(everything.idx.tolist())


def test_a_split_seed_fixes_the_split_for_every_training_seed(cache_dir):
    fixed = QM9(cache_dir=cache_dir, progress=False, split_seed=0, **SIZES)
    full = split_positions(130_831, 0)
    orders = []
    for seed in (0, 1):
        assert np.array_equal(fixed.datasets(seed)["test"].positions, full["test"][: SIZES["test_size"]])
        train, _, _ = fixed.loaders(16, seed)
        orders.append(torch.cat([batch.idx for batch in train]))
    assert sorted(orders[0].tolist()) == sorted(orders[1].tolist())  # same molecules
    assert not torch.equal(orders[0], orders[1])  # shuffled by the training seed


def test_default_batch_is_the_reference_qm9_trainers_60(cache_dir):
    # the reference's QM9 trainer overrides the common parser's batch 120 with set_defaults(batch_size=60)
    assert QM9.defaults.batch_size == 60
    data = {"cache_dir": cache_dir, "progress": False, "train_size": 70, "val_size": 61, "test_size": 2}
    trial = Trial(TrialConfig(benchmark="qm9", data=data, method="ls", epochs=1, device="cpu"))
    assert trial.config.batch_size == 60
    assert sorted(batch.num_graphs for batch in trial.train_loader) == [10, 60]
    assert [batch.num_graphs for batch in trial.val_loader] == [60, 1]


def test_methane_targets_and_mev_units(cache_dir):
    graphs = load_qm9(indices=[0], cache_dir=cache_dir, progress=False)
    benchmark = QM9(cache_dir=cache_dir)
    batch = graphs.batch([0])
    expected = [METHANE_Y[c] for c in TARGET_COLUMNS]
    assert benchmark.targets(batch)[0].tolist() == pytest.approx(expected, rel=1e-4, abs=1e-4)
    mae = benchmark.evaluate(ZeroModel(), graphs.loader(1), torch.device("cpu"))
    assert mae["mae_mu"] == pytest.approx(0.0, abs=1e-4)
    assert mae["mae_alpha"] == pytest.approx(13.21, rel=1e-4)
    assert mae["mae_homo"] == pytest.approx(10549.9, rel=1e-4)  # eV → meV
    assert mae["mae_r2"] == pytest.approx(35.3641, rel=1e-4)  # not an energy: no ×1000
    assert mae["mae_zpve"] == pytest.approx(1217.7, rel=1e-4)
    assert mae["mae_U0"] == pytest.approx(17172.2, rel=1e-4)  # atomisation energy, meV
    assert mae["mae_Cv"] == pytest.approx(6.469, rel=1e-4)


def test_standardisation_uses_training_statistics_only(qm9, cache_dir):
    standardized = QM9(cache_dir=cache_dir, progress=False, standardize=True, **SIZES)
    data = standardized.datasets()
    train_y = data["train"].y[:, list(TARGET_COLUMNS)].double()
    assert torch.allclose(standardized.mean, train_y.mean(0))
    assert torch.allclose(standardized.std, train_y.std(0))
    everything = torch.cat([data[s].y[:, list(TARGET_COLUMNS)].double() for s in data])
    assert not torch.allclose(standardized.mean, everything.mean(0))
    # Predicting 0 in standardised space = predicting the training mean; metrics stay in real units.
    mae = standardized.evaluate(ZeroModel(), data["val"].loader(16), torch.device("cpu"))
    val_y = data["val"].y[:, list(TARGET_COLUMNS)].double()
    expected = (val_y - train_y.mean(0)).abs().mean(0) * torch.tensor([1, 1, 1e3, 1e3, 1, 1e3, 1e3, 1e3, 1e3, 1e3, 1])
    assert [mae[m.name] for m in standardized.metrics] == pytest.approx(expected.tolist(), rel=1e-5)
    assert qm9.mean.eq(0).all() and qm9.std.eq(1).all()  # off by default, as in the reference


def _random_graphs(sizes, generator):
    graphs = []
    for n in sizes:
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
        edge_index = torch.tensor(pairs).T
        graphs.append(
            Data(
                x=torch.randn(n, 11, generator=generator),
                edge_index=edge_index,
                edge_attr=torch.randn(edge_index.shape[1], 5, generator=generator),
            )
        )
    return Batch.from_data_list(graphs)


def test_factorised_conv_equals_pyg_nnconv_values_and_gradients():
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = MPNN(n_tasks=11)
    reference = NNConv(64, 64, model.conv.nn, aggr="mean")
    reference.load_state_dict(model.conv.state_dict())  # same parameters, same names
    batch = _random_graphs([3, 9, 2, 5], generator)
    x = torch.randn(batch.num_nodes, 64, generator=generator, requires_grad=True)
    shuffle = torch.randperm(batch.edge_index.shape[1], generator=generator)  # edges in any order
    ours = model.conv(x, batch.edge_index[:, shuffle], model.conv.edge_hidden(batch.edge_attr[shuffle]))
    theirs = reference(x, batch.edge_index, batch.edge_attr)
    assert torch.allclose(ours, theirs, atol=1e-5)
    shared = [x, model.conv.nn[2].weight, model.conv.nn[0].weight]  # the edge network is the same module
    grads_ours = torch.autograd.grad(ours.square().sum(), shared + [model.conv.lin.weight, model.conv.bias])
    grads_theirs = torch.autograd.grad(theirs.square().sum(), shared + [reference.lin.weight, reference.bias])
    for a, b in zip(grads_ours, grads_theirs):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_mpnn_shapes_and_parameter_split():
    model = MPNN(n_tasks=11)
    batch = _random_graphs([4, 6], torch.Generator().manual_seed(1))
    outputs, views = model(batch)
    assert outputs.shape == (2, 11) and len(views) == 11
    assert all(v.shape == (2, 64) and torch.equal(v, views[0]) for v in views)
    shared, heads = model.shared_parameters(), model.task_specific_parameters()
    assert len(heads) == 22 and sum(p.numel() for p in heads) == 11 * 65
    assert len(shared) + len(heads) == len(list(model.parameters()))


def test_one_epoch_on_real_molecules_every_metric_finite(qm9):
    config = TrialConfig(
        benchmark="qm9",
        data={"cache_dir": qm9.options["cache_dir"], "progress": False, **SIZES},
        method="ntkmtl_sr",
        epochs=1,
        batch_size=24,
        device="cpu",
    )
    (record,) = Trial(config, benchmark=qm9).run()
    assert record["status"] == "completed"
    numbers = {k: v for k, v in record.items() if isinstance(v, float)}
    assert len([k for k in numbers if k.startswith(("val_mae_", "test_mae_"))]) == 22
    assert all(math.isfinite(v) for v in numbers.values()), numbers


# Recipe: seeded 2-epoch runs on the first 48/24/24 molecules of the default split, batch 24,
# torch 2.13 CPU, one thread. Locked: per-task training loss of each epoch and val Δm.
RECIPE = {
    "ls": [
        [
            11.09992758433024,
            5715.380859375,
            43.67632293701172,
            1.2785429954528809,
            1493202.1666666667,
            18.34896723429362,
            5880.268880208333,
            5933.5654296875,
            6011.049153645833,
            5077.767252604167,
            1012.6570638020834,
            116642.65030882553,
        ],
        [
            10.799407958984375,
            5696.9267578125,
            44.04559326171875,
            1.3196202516555786,
            1492174.75,
            18.0447514851888,
            5890.5009765625,
            5934.150716145833,
            6009.745768229167,
            5081.0986328125,
            1008.3249918619791,
            116542.3720510413,
        ],
    ],
    "ntkmtl": [
        [
            11.03173033396403,
            5716.004231770833,
            43.088671366373696,
            1.2761515378952026,
            1493585.25,
            18.170430501302082,
            5874.513346354167,
            5920.7822265625,
            6005.290690104167,
            5068.531412760417,
            1015.4261881510416,
            116359.80458739294,
        ],
        [
            10.663742065429688,
            5678.376953125,
            41.7841911315918,
            1.2665372292200725,
            1493394.6666666667,
            17.762406667073567,
            5878.171875,
            5900.484049479167,
            5985.828776041667,
            5058.458984375,
            1010.01513671875,
            116153.9778892845,
        ],
    ],
}


@pytest.mark.parametrize("method", ["ls", "ntkmtl"])
def test_recipe_first_losses_of_a_seeded_two_epoch_run(qm9, method):
    config = TrialConfig(
        benchmark="qm9",
        data={"cache_dir": qm9.options["cache_dir"], "progress": False, **SIZES},
        method=method,
        seed=0,
        epochs=2,
        batch_size=24,
        device="cpu",
    )
    records = list(Trial(config, benchmark=qm9).run())
    observed = [[r[f"train_loss_{t}"] for t in qm9.tasks] + [r["val_delta_m"]] for r in records]
    assert [r["status"] for r in records] == ["running", "completed"]
    for got, want in zip(observed, RECIPE[method]):
        assert got == pytest.approx(want, rel=1e-4)


def test_missing_data_is_a_data_error_and_cli_exit_2(capsys, tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        QM9(source="pyg", root=str(tmp_path / "nope")).check_data()
    assert (
        main(["--benchmark", "qm9", "--data", "source=pyg", "--data", f"root={tmp_path / 'nope'}", "--no-progress"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith(f"error: QM9 data at {tmp_path / 'nope'}") and "Traceback" not in err
