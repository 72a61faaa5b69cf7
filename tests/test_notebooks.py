"""The notebooks: stored without outputs, one parameter cell, and executed headless on tiny
data (nbclient with the venv's own ``python3`` kernel; inputs through the environment)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from avvp_lit.analysis import runs as nh
from avvp_lit.analysis.ablation import build_report, mean_std_text
from avvp_lit.cli.report import main as report_main
from avvp_lit.engine.tasks import train_and_test as train
from tests.helpers.sweeps import make_sweep
from tests.helpers.training import run_config

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_dataset", "02_run", "03_ablation")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One smoke training run (tiny synthetic data, one epoch) with its result files."""
    base = tmp_path_factory.mktemp("notebook_run")
    data_dir = base / "data"
    overrides = ["experiment=smoke", "logger=csv", "model.num_layers=1"]
    # the dashboard still writes the test per-class F1 table; no validation figures
    overrides.append("callbacks.dashboard.num_videos=0")
    cfg = run_config("train", overrides, base / "run", data_dir)
    train(cfg)
    return base / "run"


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def execute(name: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list:
    """Run every cell in a fresh kernel started in notebooks/; returns the code cells."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    book = _read(name)
    client = NotebookClient(
        book, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    cells = [cell for cell in book.cells if cell.cell_type == "code"]
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors
    return cells


def _images(cells: list) -> int:
    return sum("image/png" in o.get("data", {}) for c in cells for o in c.outputs)


@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs_and_one_parameter_cell(name: str) -> None:
    book = _read(name)
    nbformat.validate(book)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    # paths and environment are read in the parameter cell only
    assert all("os.environ" not in cell.source for cell in code[1:])
    assert all("import avvp_lit" in c.source or "from avvp_lit" in c.source for c in code[1:2])


def test_dataset_notebook(tiny_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tiny_run.parent / "data" / "synthetic_valor_tiny"
    cells = execute("01_dataset", {"AVVP_NB_DATASET": str(root)}, monkeypatch)
    assert _images(cells) == 4


def test_run_notebook(tiny_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"AVVP_NB_RUN": str(tiny_run), "AVVP_NB_VIDEOS": "0,3"}
    cells = execute("02_run", env, monkeypatch)
    text = "".join(o.get("text", "") for c in cells for o in c.outputs)
    assert "protocol: gating" in text
    assert _images(cells) == 2 + 2 + 1  # F1 seg/evt, two timelines, SECM maps


def test_class_f1_is_recomputed_without_the_dashboard_table(tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    stored = nh.run_class_f1(nh.load_run(copy))
    (copy / "figures" / "test" / "class_f1.csv").unlink()
    recomputed = nh.run_class_f1(nh.load_run(copy))
    for key, values in stored.items():
        np.testing.assert_allclose(recomputed[key], values, atol=0.005)


def test_ablation_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = make_sweep(tmp_path / "sweep")
    assert report_main([str(sweep), "--resamples", "500"]) == 0
    full = build_report(sweep, resamples=500).variant("full")
    cells = execute("03_ablation", {"AVVP_NB_REPORT": str(sweep)}, monkeypatch)
    html = "".join(o.get("data", {}).get("text/html", "") for c in cells for o in c.outputs)
    assert mean_std_text(full, "seg_type") in html and "no_cafd" in html
    assert "-20.50* [-21.00, -20.00]" in html  # han's Δ with its interval, marked
    assert _images(cells) == 1
