"""Shared test set-up: every test starts from the same seeds and writes only under tmp_path."""

from __future__ import annotations

import os
import random

# The suite's models are tiny: one thread per process avoids thread hand-offs that cost more
# than the work, and keeps parallel test processes from fighting over the two cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed_everything():
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def add_data():
    """The tutorial's add-two-numbers data (§2.1)."""
    import torch

    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    return x, x.sum(1, keepdim=True)
