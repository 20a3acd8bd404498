"""Fixtures shared by the whole test suite."""

import pytest
import torch

from ntkmtl.benchmarks.toy import Toy

# Two cores are shared by every test run: one intra-op thread keeps timings stable and
# results independent of the machine's thread count.
torch.set_num_threads(1)


@pytest.fixture
def toy():
    """A small toy benchmark (128 training samples): one epoch takes a few milliseconds."""
    return Toy(n_train=128, n_val=64, n_test=64)
