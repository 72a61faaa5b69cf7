"""Shared fixtures: where the read-only `../shared` material is, skipping visibly without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")

from tests.helpers import SHARED  # noqa: E402


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (the read-only shared/ folder beside the checkout)")
    return path


@pytest.fixture(scope="session")
def llp_dir() -> Path:
    """The real LLP annotation folder, `../shared/llp`."""
    return _require(SHARED / "llp")


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """Outputs of the original implementations, `../shared/golden`."""
    return _require(SHARED / "golden")


@pytest.fixture
def one_torch_thread():
    """Small tensors: one thread avoids OpenMP hand-offs (slow on a busy 2-core machine) and
    fixes the reduction order the tolerances were set with. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic tiny datasets, generated once for the whole session."""
    return tmp_path_factory.mktemp("data")
