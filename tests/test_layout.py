"""The package layout keeps its promises: imports point inward, and the command-line
shells are imported by nothing (every import is read, also those inside functions)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import avvp_lit

PACKAGE = Path(avvp_lit.__file__).parent
# role -> the roles it must never import (a role is a subpackage or a top-level module)
FORBIDDEN: dict[str, set[str]] = {
    "utils": {"classes", "data", "models", "losses", "metrics", "inference", "engine", "viz",
              "analysis", "extract", "cli", "bench"},
    "classes": {"data", "models", "losses", "metrics", "inference", "engine", "viz",
                "analysis", "extract", "cli", "bench"},
    "data": {"models", "losses", "inference", "engine", "viz", "analysis", "extract", "cli",
             "bench"},
    "models": {"losses", "inference", "engine", "viz", "analysis", "extract", "cli", "bench"},
    "losses": {"inference", "engine", "viz", "analysis", "extract", "cli", "bench"},
    "metrics": {"models", "losses", "inference", "engine", "viz", "analysis", "extract", "cli",
                "bench"},
    "inference": {"engine", "viz", "analysis", "cli", "bench"},
    "viz": {"engine", "analysis", "extract", "cli", "bench"},
    "engine": {"analysis", "cli", "bench"},
    "analysis": {"engine", "extract", "cli", "bench"},
    # video files to feature arrays: reads the data declarations, never a network of ours
    "extract": {"models", "losses", "metrics", "inference", "engine", "viz", "analysis", "cli",
                "bench"},
    "bench": {"cli"},
    "cli": set(),  # the shells may use every role
}  # fmt: skip


def role(module: str) -> str | None:
    """``avvp_lit.engine.run`` -> ``engine``; None outside the package."""
    parts = module.split(".")
    return parts[1] if parts[0] == "avvp_lit" and len(parts) > 1 else None


@cache
def imported_modules(path: Path) -> frozenset[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}:{node.lineno}: a relative import; write it absolute")
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(found)


def source_files() -> dict[str, Path]:
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        files[".".join(("avvp_lit", *relative.parts)).removesuffix(".__init__")] = path
    return files


def test_every_module_has_a_known_role() -> None:
    roles = {role(name) for name in source_files()} - {None}
    assert roles <= set(FORBIDDEN) | {"__init__"}, roles - set(FORBIDDEN)


def test_imports_point_inward() -> None:
    wrong = []
    for name, path in source_files().items():
        own = role(name)
        for target in imported_modules(path):
            if role(target) in FORBIDDEN.get(own, set()):
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_nothing_imports_the_command_line_shells() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, path in source_files().items()
        if role(name) != "cli"
        for target in imported_modules(path)
        if role(target) == "cli"
    ]
    assert not wrong, "\n".join(wrong)
    shells = [name for name in source_files() if role(name) == "cli" and name != "avvp_lit.cli"]
    for name in shells:
        importers = [
            other
            for other, path in source_files().items()
            if other != name and name in imported_modules(path)
        ]
        assert not importers, f"{name} is imported by {importers}"


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from avvp_lit.engine.run import build_trainer\n")
    assert "avvp_lit.engine.run" in imported_modules(sample)


# composing the packaged Hydra config has one home; the models never compose the app config
CONFIG_COMPOSER = "avvp_lit.engine.config"
HYDRA_COMPOSE = ("hydra.compose", "hydra.initialize_config_module", "hydra.initialize",
                 "hydra.initialize_config_dir", "hydra.main")  # fmt: skip


def test_viz_and_analysis_import_each_other_one_way_only() -> None:
    """analysis may draw with viz; viz draws from plain data and never reads analysis."""
    wrong = [
        f"{name} imports {target}"
        for name, path in source_files().items()
        if role(name) == "viz"
        for target in imported_modules(path)
        if role(target) == "analysis"
    ]
    assert not wrong, "\n".join(wrong)


def test_only_one_module_composes_the_packaged_config() -> None:
    wrong = []
    for name, path in source_files().items():
        composes = [t for t in imported_modules(path) if t in HYDRA_COMPOSE]
        if composes and name != CONFIG_COMPOSER and role(name) != "cli":
            wrong.append(f"{name} imports {', '.join(composes)}")
        if role(name) == "models":
            text = path.read_text()
            if "avvp_lit.conf" in text or CONFIG_COMPOSER in imported_modules(path):
                wrong.append(f"{name} reaches the app config")
    assert not wrong, "\n".join(wrong)


def test_the_config_check_sees_a_model_that_composes(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from hydra import compose, initialize_config_module\n")
    assert {"hydra.compose", "hydra.initialize_config_module"} <= imported_modules(sample)


STORED = Path(__file__).parent / "helpers" / "stored"


def test_network_configs_stored_by_the_earlier_layout_still_load(tmp_path: Path) -> None:
    """Checkpoints written before the layout changed name their blocks by the `_target_`
    paths of that time; the reader must still build them and load their weights."""
    import hydra
    import torch
    import yaml

    from avvp_lit.models.loading import read_network

    for stored in sorted(STORED.glob("*_network_config.yaml")):
        config = yaml.safe_load(stored.read_text())
        network = hydra.utils.instantiate(config)
        state = {f"network.{k}": v for k, v in network.state_dict().items()}
        path = tmp_path / f"{stored.stem}.ckpt"
        torch.save(
            {"avvp_lit": {"network_config": config, "metrics": {}}, "state_dict": state}, path
        )
        loaded = read_network(path)
        assert type(loaded.network).__name__ == config["_target_"].rsplit(".", 1)[1]
        for key, value in loaded.network.state_dict().items():
            assert torch.equal(value, network.state_dict()[key]), (stored.name, key)
