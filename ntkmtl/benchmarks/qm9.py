"""QM9 — 11 molecular-property regressions with an MPNN (the Nash-MTL / FAMO / NTKMTL set-up).

Data: PyTorch Geometric's QM9 (130,831 molecules), built offline from the ``qm9pack`` wheel or
read from a PyG root (``ntkmtl.benchmarks.qm9_source``, ``qm9_data``), as complete graphs with 5-dim edges.
Targets: PyG's y columns [0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11] = mu, alpha, homo, lumo, r2,
zpve, U0, U, H, G (atomisation energies), Cv, trained in PyG's units (eV for energies) and
reported in meV for homo, lumo, zpve, U0, U, H, G, as in the paper.

Split: a permutation of all molecules; test = its first 10,000, val = the next 10,000, train =
the rest. As in the reference trainer (``dataset.shuffle()`` after seeding), the permutation is
drawn from the TRAINING seed by default, so each seed of a sweep sees another test set;
``split_seed: N`` fixes it instead, so that every seed sees the same molecules. (The reference
draws it from the global RNG after the model's initialisation, so for a given seed its molecules
differ from ours; like it, ours change with the seed.) ``train_size``/``val_size``/``test_size`` keep the first
N of each split for quick runs; only those molecules are converted. With ``standardize`` the
model learns targets standardised by the TRAINING subset's mean and std; metrics are always
MAE in real units. Loss: squared error per molecule and task (the MSE of the reference).
Δm uses the paper's STL baselines (docs/REFERENCE_FACTS.md §3).
"""

from __future__ import annotations

import numpy as np
import torch

from ntkmtl.benchmarks import qm9_source
from ntkmtl.benchmarks.base import Benchmark, Metric, TrainDefaults
from ntkmtl.benchmarks.nets.mpnn import MPNN
from ntkmtl.options import HParam

TASKS = ("mu", "alpha", "homo", "lumo", "r2", "zpve", "U0", "U", "H", "G", "Cv")
TARGET_COLUMNS = (0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11)  # PyG's y columns, in TASKS order
MEV_TASKS = ("homo", "lumo", "zpve", "U0", "U", "H", "G")  # eV in PyG, reported in meV
STL_BASELINES = (0.060, 0.156, 60.54, 51.22, 0.419, 3.08, 39.3, 42.9, 41.7, 43.1, 0.061)
TEST_SIZE = VAL_SIZE = 10_000


def report_scale() -> torch.Tensor:
    """Per-task factor from PyG's units to the reported ones (1000 for eV → meV, else 1)."""
    return torch.tensor([1000.0 if t in MEV_TASKS else 1.0 for t in TASKS], dtype=torch.float64)


def split_positions(n_molecules: int, split_seed: int) -> dict[str, np.ndarray]:
    """PyG dataset positions of the test / val / train molecules: a function of ``split_seed`` only."""
    if n_molecules <= TEST_SIZE + VAL_SIZE:
        raise ValueError(
            f"QM9 split needs more than {TEST_SIZE + VAL_SIZE} molecules (test and val take 10,000 each); "
            f"the data set has {n_molecules}"
        )
    order = np.random.default_rng(split_seed).permutation(n_molecules)
    return {
        "test": order[:TEST_SIZE],
        "val": order[TEST_SIZE : TEST_SIZE + VAL_SIZE],
        "train": order[TEST_SIZE + VAL_SIZE :],
    }


class QM9(Benchmark):
    name = "qm9"
    tasks = TASKS
    defaults = TrainDefaults(epochs=300, batch_size=60, lr=1e-3, scheduler="plateau", gpu_fraction=0.25)
    data_options = (
        HParam(
            "source",
            str,
            "qm9pack",
            "qm9pack (the real QM9 from PyPI, converted offline) or pyg (a PyG QM9 root)",
            choices=qm9_source.SOURCES,
        ),
        HParam("root", str, None, "PyG QM9 root directory (source pyg)"),
        HParam(
            "cache_dir",
            str,
            None,
            "where converted molecules are cached (default ~/.cache/ntkmtl/qm9 or $NTKMTL_CACHE)",
        ),
        HParam(
            "split_seed",
            int,
            None,
            "seed of a fixed test/val/train permutation shared by every training seed "
            "(default: none, the permutation follows the training seed, as in the reference)",
            low=0,
        ),
        HParam("train_size", int, None, "keep the first N training molecules (default: all ~110,831)", low=1),
        HParam(
            "val_size", int, None, "keep the first N validation molecules (default: all 10,000)", low=1, high=VAL_SIZE
        ),
        HParam("test_size", int, None, "keep the first N test molecules (default: all 10,000)", low=1, high=TEST_SIZE),
        HParam("standardize", bool, False, "train on targets standardised with training-set statistics"),
        HParam("progress", bool, True, "show a progress bar while molecules are converted"),
    )

    def __init__(self, **options):
        super().__init__(**options)
        self._datasets: dict[int, dict] = {}
        self.mean = torch.zeros(len(TASKS), dtype=torch.float64)
        self.std = torch.ones(len(TASKS), dtype=torch.float64)

    @property
    def metrics(self):
        return tuple(Metric(f"mae_{t}", False, b) for t, b in zip(TASKS, STL_BASELINES))

    # -- data --------------------------------------------------------------------------------
    def check_data(self) -> None:
        """The source is readable (qm9pack's CSVs, or a PyG root); raises DataError otherwise."""
        qm9_source.n_molecules(self.options["source"], self.options["root"])

    def split_seed(self, seed: int) -> int:
        """The seed of the split a trial with training seed ``seed`` uses."""
        return seed if self.options["split_seed"] is None else self.options["split_seed"]

    def split_positions(self, seed: int = 0) -> dict[str, np.ndarray]:
        """PyG positions of the train / val / test molecules of training seed ``seed``, after the subset options."""
        n = qm9_source.n_molecules(self.options["source"], self.options["root"])
        full = split_positions(n, self.split_seed(seed))
        return {s: full[s][: self.options[f"{s}_size"]] for s in ("train", "val", "test")}

    def datasets(self, seed: int = 0) -> dict:
        """train / val / test ``QM9Graphs`` of training seed ``seed`` (converted or memory-mapped
        once per split and benchmark object); also makes that split's target statistics current."""
        key = self.split_seed(seed)
        if key not in self._datasets:
            from ntkmtl.benchmarks import qm9_data

            o = self.options
            positions = self.split_positions(seed)
            wanted = np.concatenate([positions[s] for s in ("train", "val", "test")])
            graphs = qm9_data.load_qm9(
                source=o["source"], root=o["root"], cache_dir=o["cache_dir"], indices=wanted, progress=o["progress"]
            )
            datasets, start = {}, 0
            for split in ("train", "val", "test"):
                stop = start + len(positions[split])
                datasets[split] = graphs.subset(np.arange(start, stop))
                start = stop
            self._datasets[key] = datasets
        self._set_statistics(self._datasets[key]["train"].y[:, list(TARGET_COLUMNS)].double())
        return self._datasets[key]

    def _set_statistics(self, train_targets: torch.Tensor) -> None:
        """Mean and std of the training targets [N, 11] (used only when ``standardize``)."""
        if self.options["standardize"]:
            self.mean = train_targets.mean(0)
            std = train_targets.std(0) if len(train_targets) > 1 else torch.ones(len(TASKS), dtype=torch.float64)
            self.std = torch.where(std > 0, std, torch.ones_like(std))

    def loaders(self, batch_size: int, seed: int, num_workers: int = 0):
        """The loaders of training seed ``seed``'s split (see ``datasets``). Batches are assembled straight from the memory-mapped store in this process
        (``num_workers`` is not needed: that is faster than collating in worker processes)."""
        data = self.datasets(seed)
        train = data["train"].loader(batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return train, data["val"].loader(batch_size), data["test"].loader(batch_size)

    # -- model, loss, metrics ----------------------------------------------------------------
    def build_model(self) -> MPNN:
        return MPNN(n_tasks=len(TASKS))

    def targets(self, batch) -> torch.Tensor:
        """The 11 targets [B, 11] the model learns: PyG units, standardised when enabled."""
        y = batch.y[:, list(TARGET_COLUMNS)]
        if self.options["standardize"]:
            y = (y - self.mean.to(y)) / self.std.to(y)
        return y

    def to_real_units(self, outputs: torch.Tensor) -> torch.Tensor:
        """Model outputs → PyG units (undoes the standardisation)."""
        if self.options["standardize"]:
            return outputs * self.std.to(outputs) + self.mean.to(outputs)
        return outputs

    def loss_terms(self, outputs, batch):
        sums = (outputs - self.targets(batch)) ** 2
        return sums, torch.ones_like(sums)

    @torch.no_grad()
    def evaluate(self, model, loader, device):
        was_training = model.training
        model.eval()
        total = torch.zeros(len(TASKS), dtype=torch.float64)
        count = 0
        for batch in loader:
            batch = self.batch_to(batch, device)
            outputs, _ = model(batch)
            error = (self.to_real_units(outputs) - batch.y[:, list(TARGET_COLUMNS)]).abs()
            total += error.double().sum(0).cpu()
            count += error.shape[0]
        model.train(was_training)
        mae = total / max(count, 1) * report_scale()
        return {m.name: float(v) for m, v in zip(self.metrics, mae)}
