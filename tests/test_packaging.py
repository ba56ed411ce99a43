"""A wheel (what `pip install .` and pipx install) carries the catalogs and works outside the repository.

The wheel is built from a copy of the build inputs (no build/ or egg-info left in the checkout); the
test is skipped when no wheel can be built (offline without setuptools>=68 in the environment).
`.ci/run` additionally installs the wheel into a fresh virtual environment and plans from /tmp.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from optimizer.loaders import load_catalog
from tests.conftest import REPO

BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "optimizer", "catalogs", "scenarios")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        if not (REPO / name).exists():
            continue
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    errors = []
    for extra in (["--no-build-isolation"], []):  # the environment's setuptools first: fast and offline
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *extra, "-w", str(out), str(src)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        wheels = list(out.glob("procure-*.whl"))
        if res.returncode == 0 and wheels:
            return wheels[0]
        errors.append(res.stderr[-2000:])
    pytest.skip("cannot build a wheel here:\n" + "\n".join(errors))


def test_wheel_carries_every_catalog_file_and_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    catalogs = [p.relative_to(REPO / "catalogs").as_posix() for p in (REPO / "catalogs").rglob("*")
                if p.is_file() and p.suffix in (".yaml", ".json", ".csv")]
    assert {"gpus.yaml", "servers.yaml", "cloud.yaml", "models/sources.yaml"} <= set(catalogs)
    assert any(c.startswith("calibration/") for c in catalogs)
    missing = [c for c in catalogs if f"optimizer/_catalogs/{c}" not in names]
    assert not missing, f"catalog files missing from {wheel.name}: {missing}"
    packages = [p.parent.relative_to(REPO).as_posix() for p in (REPO / "optimizer").rglob("__init__.py")
                if "__pycache__" not in p.parts]
    assert not [p for p in packages if f"{p}/__init__.py" not in names], "a subpackage is missing from the wheel"
    assert not [n for n in names if n.startswith(("catalogs/", "tests/", "scenarios/"))], "stray top-level files"
    # procure serve: the page's own files (no external assets) and the shipped scenarios it offers
    static = [p.relative_to(REPO).as_posix() for p in (REPO / "optimizer" / "web" / "static").iterdir() if p.is_file()]
    assert {"optimizer/web/static/index.html", "optimizer/web/static/app.js"} <= set(static)
    assert not [f for f in static if f not in names], "a web page file is missing from the wheel"
    shipped = [f"optimizer/_scenarios/{p.name}" for p in (REPO / "scenarios").glob("*.yaml")]
    assert shipped and not [f for f in shipped if f not in names], "a shipped scenario is missing from the wheel"


def test_unpacked_wheel_finds_its_catalogs_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PROCURE_CATALOG"}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install of the checkout
    probe = ("import optimizer, optimizer.loaders as l; print(optimizer.__file__); print(l.catalog_root()); "
             "print(len(l.load_catalog().gpus)); print(len(l.load_catalog().cloud))")
    res = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    module, root, gpus, cloud = res.stdout.split()
    assert Path(module).is_relative_to(site) and Path(root) == site / "optimizer" / "_catalogs"
    assert int(gpus) > 0
    assert int(cloud) == len(load_catalog().cloud)  # the shipped cloud.yaml, read from the wheel
    scenario = tmp_path / "api.yaml"
    shutil.copy(REPO / "scenarios" / "startup-api.yaml", scenario)
    res = subprocess.run([sys.executable, "-m", "optimizer", "validate", str(scenario)], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
