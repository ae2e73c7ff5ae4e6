"""The layout shows the data flow: a stage imports only the stages before it (DESIGN.md), so, for
example, loading a run never pulls in evaluation code and nothing below the service imports it."""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "penchant"
# Lowest first. Top-level modules (errors) sit below everything.
STAGES = ["data", "text", "models", "interests", "explore", "explain", "runs", "evaluate", "serve", "cli"]


def stage_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "penchant" or len(parts) < 2 or parts[1] not in STAGES:
        return None
    return STAGES.index(parts[1])


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
    return out


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = stage_of("penchant." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        if own is None:
            continue
        for module in imports_of(path):
            other = stage_of(module)
            if other is not None and other > own:
                found.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    return found


def test_no_stage_imports_a_later_one():
    assert violations() == []


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
    # Guard the guard: a models module importing the service must be reported.
    fake = tmp_path / "penchant" / "models"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from penchant.serve.app import create_app\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "penchant")
    assert violations() == ["penchant/models/bad.py imports penchant.serve.app"]


@pytest.mark.parametrize("stage", ["runs", "serve"])
def test_runs_and_the_service_load_models_without_evaluation(stage):
    for path in (PACKAGE / stage).rglob("*.py"):
        assert not [m for m in imports_of(path) if m.startswith("penchant.evaluate")], path
