"""The shape of the code, checked like behaviour: the one-way layers of pyproject's
import-linter contracts (with a circle put back, they must fail), short functions, and
ruff's complexity rules.

import-linter finds modules by walking the root package's folder; the links
orchestrator/{lightning_modules,datasets,tuning} -> ../ let it see the sibling folders
that the install mounts there.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = ["orchestrator", "lightning_modules", "datasets", "tuning", "benchmarks"]
MAX_FUNCTION_LINES = 60
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` as a developer runs it, in `root` (the repo, or a copy of it)."""
    environment = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=environment,
                          capture_output=True, text=True, check=False)


def test_import_contracts_are_kept():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize("module, imports", [
    # the circle the architecture pass removed: the worker loop reaching back to a door
    ("worker/circle.py", "from orchestrator.launch import launch"),
    # models never import the orchestration layer
    ("lightning_modules/circle.py", "from orchestrator.config import ExperimentConfig"),
])
def test_an_import_against_the_layers_breaks_the_contract(tmp_path, module, imports):
    root = tmp_path
    # the package as imports see it (the linked folders followed), every file a link
    shutil.copytree(REPO / "orchestrator", root / "orchestrator", copy_function=os.symlink,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root)
    (root / "orchestrator" / module).write_text(imports + "\n")
    done = lint_imports(root)
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout


def test_no_function_is_longer_than_60_lines():
    long = []
    for folder in SOURCE_FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} "
                                    f"({lines} lines)")
    assert not long, "functions over 60 lines: " + ", ".join(long)


def test_ruff_is_clean_complexity_rules_included():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
