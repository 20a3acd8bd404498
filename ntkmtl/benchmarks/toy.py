"""Toy — a tiny synthetic, deterministic multi-task regression benchmark that runs anywhere.

Three regression tasks on the same inputs x ~ N(0, I₈), deliberately imbalanced in scale and
difficulty so that loss weighting matters (the situation NTKMTL is built for):

- ``linear``:    y = 1.0 · ⟨a, x⟩ / √8                 (easy, unit scale)
- ``wave``:      y = 10.0 · sin(2 ⟨b, x⟩ / √8)         (large scale: dominates an unweighted sum)
- ``quadratic``: y = 0.1 · (x₀ x₁ + x₂²)              (small scale, non-linear)

Each target gets Gaussian noise of ``noise`` × its scale. Directions a, b and every sample come
from ``data_seed`` only, so every training seed sees the same data. Model: an MLP encoder
(8 → 64 → 64, ReLU) whose output is the shared representation z, and one linear head per task;
the model returns z as K views (one per head), so NTKMTL-SR gets every ∂L_k/∂z from one backward.
Loss: squared error per sample; metrics: MAE per task. The Δm "baselines" are the tasks'
generating scales (1.0, 10.0, 0.1), so Δm = mean_k MAE_k / scale_k × 100 − 100: a plain,
scale-free summary (not an STL result). One epoch takes milliseconds: it exists for smoke tests,
sweep tests and trying the tool without any data set.

Test-only option ``nan_targets``: one training target is NaN, so training diverges in the first
epoch (exercises the ``diverged`` path of the trainer and the sweep).
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, TensorDataset

from ntkmtl.benchmarks.base import Benchmark, Metric, MultiTaskModel, TrainDefaults
from ntkmtl.options import HParam

N_FEATURES = 8
HIDDEN = 64
SCALES = {"linear": 1.0, "wave": 10.0, "quadratic": 0.1}
MAX_SAMPLES = 1_000_000  # per split: a smoke-test benchmark, kept far below any memory limit


def make_toy_data(
    n: int, generator: torch.Generator, directions: torch.Tensor, noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x [n, 8], y [n, 3]) for the three tasks of the module docstring."""
    x = torch.randn(n, N_FEATURES, generator=generator)
    projected = x @ directions.T / math.sqrt(N_FEATURES)  # [n, 2]
    clean = torch.stack(
        [
            SCALES["linear"] * projected[:, 0],
            SCALES["wave"] * torch.sin(2.0 * projected[:, 1]),
            SCALES["quadratic"] * (x[:, 0] * x[:, 1] + x[:, 2] ** 2),
        ],
        dim=1,
    )
    scales = torch.tensor(list(SCALES.values()))
    return x, clean + noise * scales * torch.randn(n, len(SCALES), generator=generator)


class ToyNet(MultiTaskModel):
    """MLP encoder (the shared parameters; its output is z) and one linear head per task."""

    def __init__(self, n_tasks: int, n_features: int = N_FEATURES, hidden: int = HIDDEN):
        super().__init__()
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(n_features, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
        )
        self.heads = torch.nn.ModuleList(torch.nn.Linear(hidden, 1) for _ in range(n_tasks))

    def forward(self, batch):
        z = self.encoder(batch[0])
        views = [z.view_as(z) for _ in self.heads]  # head k reads views[k]: ∂L_k/∂z in one backward (NTKMTL-SR)
        return torch.cat([head(v) for head, v in zip(self.heads, views)], dim=1), views

    def shared_parameters(self):
        return list(self.encoder.parameters())

    def task_specific_parameters(self):
        return list(self.heads.parameters())


class Toy(Benchmark):
    name = "toy"
    tasks = tuple(SCALES)
    defaults = TrainDefaults(epochs=10, batch_size=32, lr=3e-3, scheduler="cosine", gpu_fraction=0.0)
    data_options = (
        HParam("n_train", int, 512, "training samples", low=1, high=MAX_SAMPLES),
        HParam("n_val", int, 128, "validation samples", low=1, high=MAX_SAMPLES),
        HParam("n_test", int, 128, "test samples", low=1, high=MAX_SAMPLES),
        HParam("data_seed", int, 0, "seed of the directions and samples (never the training seed)", low=0),
        HParam("noise", float, 0.05, "target noise, as a fraction of each task's scale", low=0.0),
        HParam("nan_targets", bool, False, "test-only: one training target is NaN, so training diverges"),
    )

    def __init__(self, **options):
        super().__init__(**options)
        self._splits = None

    @property
    def metrics(self):
        return tuple(Metric(f"mae_{task}", False, scale) for task, scale in SCALES.items())

    def check_data(self) -> None:
        """Synthetic: nothing on disk to check."""

    def splits(self) -> dict[str, TensorDataset]:
        """The train/val/test data sets, generated once from ``data_seed``."""
        if self._splits is None:
            o = self.options
            generator = torch.Generator().manual_seed(o["data_seed"])
            directions = torch.randn(2, N_FEATURES, generator=generator)
            directions = directions / directions.norm(dim=1, keepdim=True) * math.sqrt(N_FEATURES)
            splits = {}
            for split in ("train", "val", "test"):
                x, y = make_toy_data(o[f"n_{split}"], generator, directions, o["noise"])
                splits[split] = (x, y)
            if o["nan_targets"]:
                splits["train"][1][0, 0] = float("nan")
            self._splits = {name: TensorDataset(x, y) for name, (x, y) in splits.items()}
        return self._splits

    def loaders(self, batch_size: int, seed: int, num_workers: int = 0):
        splits = self.splits()
        generator = torch.Generator().manual_seed(seed)
        train = DataLoader(
            splits["train"], batch_size=batch_size, shuffle=True, generator=generator, num_workers=num_workers
        )
        val = DataLoader(splits["val"], batch_size=batch_size, num_workers=num_workers)
        test = DataLoader(splits["test"], batch_size=batch_size, num_workers=num_workers)
        return train, val, test

    def build_model(self) -> ToyNet:
        return ToyNet(self.n_tasks)

    def loss_terms(self, outputs, batch):
        sums = (outputs - batch[1]) ** 2
        return sums, torch.ones_like(sums)

    @torch.no_grad()
    def evaluate(self, model, loader, device):
        was_training = model.training
        model.eval()
        total = torch.zeros(self.n_tasks, dtype=torch.float64)
        count = 0
        for batch in loader:
            batch = self.batch_to(batch, device)
            outputs, _ = model(batch)
            total += (outputs - batch[1]).abs().sum(0).double().cpu()
            count += outputs.shape[0]
        model.train(was_training)
        return {m.name: float(total[k] / count) for k, m in enumerate(self.metrics)}
