"""A tiny seeded two-task regression problem on which every method can take real steps."""

import pytest
import torch

from ntkmtl.methods import get_method
from ntkmtl.training.step import Forward, train_step


class TwoTaskProblem:
    """Shared encoder Linear(6→12)+tanh, one Linear(12→1) head per task, fixed data.

    Task 1's targets are 10× task 0's scale, so the raw gradients are imbalanced.
    """

    def __init__(self, seed: int = 0, n_tasks: int = 2, batch: int = 16):
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.n_tasks = n_tasks
        self.encoder = torch.nn.Linear(6, 12)
        self.heads = torch.nn.ModuleList(torch.nn.Linear(12, 1) for _ in range(n_tasks))
        self.x = torch.randn(batch, 6, generator=gen)
        true_w = torch.randn(6, n_tasks, generator=gen)
        scales = torch.tensor([10.0**k for k in range(n_tasks)])
        self.y = torch.tanh(self.x @ true_w) * scales

    @property
    def shared(self):
        return list(self.encoder.parameters())

    @property
    def head_params(self):
        return [p for head in self.heads for p in head.parameters()]

    def forward(self):
        z = torch.tanh(self.encoder(self.x))
        out = torch.cat([head(z) for head in self.heads], dim=1)
        return out, z

    def per_sample_losses(self):
        out, z = self.forward()
        return (out - self.y) ** 2, z

    def losses(self, method=None):
        """[K] batch losses, or the [n, K] chunk losses of ``method.requirements.batch_chunks``."""
        per_sample, z = self.per_sample_losses()
        slices = method.requirements.batch_chunks(len(per_sample)) if method is not None else None
        if slices is None:
            return per_sample.mean(0), z
        return torch.stack([per_sample[s].mean(0) for s in slices]), z

    def zero_grad(self):
        for p in self.shared + self.head_params:
            p.grad = None

    def loss_terms(self) -> Forward:
        """The per-sample squared errors as loss terms (each sample counts once) and z."""
        per_sample, z = self.per_sample_losses()
        return Forward(per_sample, torch.ones_like(per_sample), z)

    def step(self, method, optimizer):
        """One training step with the trainer's own ``train_step``; returns the method's StepResult."""
        return train_step(method, self.loss_terms, optimizer, self.shared, self.head_params).result

    def optimizer(self, method, lr=0.03):
        return torch.optim.Adam(
            [{"params": self.shared + self.head_params}, {"params": method.parameters(), "lr": 0.025}], lr=lr
        )


@pytest.fixture(autouse=True)
def one_thread():
    """These tests use tiny tensors: one intra-op thread avoids waiting on busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def problem():
    return TwoTaskProblem


@pytest.fixture
def make_method():
    def make(name, n_tasks=2, **hparams):
        return get_method(name, n_tasks, **hparams)

    return make
