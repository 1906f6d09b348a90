"""sccl installs under one namespace: no module of the repository imports the bare top-level
names (they would resolve to other PyPI packages, or to a second copy of our own modules when
run from the repository root), and sccl imports beside PyPI packages that claim those names."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from conftest import REPO

LAYERS = ("motion", "simulators", "generators", "correctors", "metrics", "loop")


def _python_files():
    out = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / f for f in out.split()]


def test_no_module_imports_a_bare_layer_name():
    hits = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            hits += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in LAYERS]
    assert not hits, hits


@pytest.mark.slow
def test_sccl_imports_beside_pypi_packages_of_the_same_names(tmp_path):
    """PyPI's `motion` (a real `motion` package) and `metrics` installed next to sccl: each name
    resolves to its own package (PyPI's motion is located, not imported: it needs boto3)."""
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site),
                          "motion==0.2.0", "metrics"], capture_output=True, text=True, timeout=300)
    if pip.returncode != 0:
        why = f"PyPI not reachable: {pip.stderr.strip().splitlines()[-1:]}"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    probe = (
        "import importlib.metadata as md, importlib.util, sccl.motion.clip, sccl.metrics.fid, sccl.loop.cli\n"
        "origin = importlib.util.find_spec('motion').origin\n"
        f"assert origin.startswith({str(site)!r}), origin\n"
        f"assert sccl.motion.clip.__file__.startswith({str(REPO)!r}), sccl.motion.clip.__file__\n"
        "assert md.version('metrics') and md.version('motion') == '0.2.0'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
