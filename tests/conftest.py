"""Shared fixtures: where the read-only `../shared` material is, skipping visibly without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one core per parallel worker (make test runs one per core): torch in the worker and
    # in the runs it starts uses one thread, so workers do not contend for the cores
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        # each worker (and the runs it starts) on a core of its own: no migrations
        cores = sorted(os.sched_getaffinity(0))
        worker = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw") or 0)
        os.sched_setaffinity(0, {cores[worker % len(cores)]})
# glibc keeps freed memory for reuse instead of returning it and page-faulting it in
# again (the float64 locksteps allocate large temporaries every step); for the workers
# and every process they start, which read these variables when they begin
for name, value in (("MALLOC_MMAP_THRESHOLD_", 2**30), ("MALLOC_TRIM_THRESHOLD_", 2**31)):
    os.environ.setdefault(name, str(value))

from tests.helpers import SHARED  # noqa: E402
from tests.helpers.extract_models import HF_CACHE  # noqa: E402

# the extractors' tiny weights (tests/helpers/extract_models.py): huggingface_hub reads
# its cache folder when first imported, and nothing may be downloaded
os.environ["HF_HUB_CACHE"] = str(HF_CACHE)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


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


# the longest tests first, so that parallel workers finish together (make test runs one
# worker per core): the two float64 locksteps, then every other test marked slow
LONGEST_FIRST = ("test_train_lockstep.py", "test_resume.py")


def pytest_collection_modifyitems(config, items) -> None:
    def rank(item) -> int:
        if item.path.name in LONGEST_FIRST:
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)


@pytest.fixture(scope="session")
def tiny_extractor_weights():
    """The ``--weights`` folder of tiny random CLIP, CLAP and R(2+1)D (built once per
    worker, removed at the end of the session)."""
    import shutil

    from tests.helpers.extract_models import WEIGHTS, tiny_weights

    yield tiny_weights()
    shutil.rmtree(WEIGHTS, ignore_errors=True)
