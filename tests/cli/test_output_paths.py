"""Output paths of `solve` (-o, --markdown), `compare` (-o) and `calibrate` (-o) are checked before any
sizing or solving: exit 2 naming the file, what is wrong and what to do. The scenario used here has no
feasible plan, so a command that solved before checking would exit 1 instead."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, assert_user_error, run_cli

MEASURED = ("model,gpu,tp,precision,input_tokens,output_tokens,output_tokens_per_s,tpot_ms\n"
            "Llama-3.1-8B,H100 SXM,1,fp8,1000,1000,5000,40\n")


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.fixture
def readonly_folder(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs as root (root ignores file modes), else a 0555 folder."""
    folder = tmp_path / "readonly"
    if os.geteuid() == 0:
        if not _mount_tmpfs(folder, "ro,size=16k"):
            pytest.skip("cannot mount a read-only tmpfs here")
        yield folder
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
    else:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


@pytest.fixture
def infeasible(write_scenario: Callable[[Any], Path], base_scenario: dict[str, Any]) -> str:
    base_scenario["constraints"]["budget"] = 1000
    path = write_scenario(base_scenario)
    res = run_cli("solve", str(path), "--no-workbook", "--format", "json")
    assert res.exit_code == 1, res.output  # solving it fails: the checks below must come first
    return str(path)


@pytest.fixture
def measured(tmp_path: Path) -> str:
    path = tmp_path / "measured.csv"
    path.write_text(MEASURED)
    return str(path)


def test_solve_workbook_path_checked_before_solving(infeasible: str, tmp_path: Path,
                                                   readonly_folder: Path) -> None:
    missing = tmp_path / "no-such-folder" / "plan.xlsx"
    assert_user_error(["solve", infeasible, "-o", str(missing)], str(missing), "does not exist", "mkdir -p")
    assert_user_error(["solve", infeasible, "-o", str(tmp_path)], str(tmp_path), "is a directory")
    assert_user_error(["solve", infeasible, "-o", str(tmp_path / "plan.csv")], "must end in .xlsx")
    target = readonly_folder / "plan.xlsx"
    assert_user_error(["solve", infeasible, "-o", str(target)], str(target), "cannot write workbook",
                      "choose a folder you can write to")
    existing = tmp_path / "plan.xlsx"
    existing.write_text("keep")
    assert_user_error(["solve", infeasible, "-o", str(existing)], str(existing), "already exists", "--force")
    assert existing.read_text() == "keep"


def test_solve_markdown_path_checked_before_solving(infeasible: str, tmp_path: Path,
                                                   readonly_folder: Path) -> None:
    common = ["solve", infeasible, "--no-workbook", "--markdown"]
    missing = tmp_path / "nope" / "plan.md"
    assert_user_error([*common, str(missing)], str(missing), "does not exist")
    assert_user_error([*common, str(readonly_folder / "plan.md")], str(readonly_folder / "plan.md"),
                      "cannot write Markdown summary")
    existing = tmp_path / "plan.md"
    existing.write_text("keep")
    assert_user_error([*common, str(existing)], "already exists", "--force")
    assert_user_error(["solve", infeasible, "-o", str(tmp_path / "same.xlsx"), "--markdown",
                       str(tmp_path / "same.xlsx")], "also the workbook path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.md", "readonly", "scenario.yaml"]


def test_compare_workbook_path_checked_before_solving(infeasible: str, tmp_path: Path,
                                                     readonly_folder: Path) -> None:
    common = ["compare", infeasible, "--budget", "2e6", "--jobs", "1", "-o"]
    missing = tmp_path / "nope" / "cmp.xlsx"
    assert_user_error([*common, str(missing)], str(missing), "does not exist")
    assert_user_error([*common, str(readonly_folder / "cmp.xlsx")], "cannot write workbook")
    assert_user_error([*common, str(tmp_path)], "is a directory")


def test_calibrate_output_checked_before_fitting(measured: str, tmp_path: Path, readonly_folder: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = readonly_folder / "calibration.yaml"
    assert_user_error(["calibrate", measured, "-o", str(target)], str(target), "cannot write calibration file",
                      "choose a folder you can write to")
    missing = tmp_path / "nope" / "c.yaml"
    assert_user_error(["calibrate", measured, "-o", str(missing)], str(missing), "does not exist")
    assert not missing.parent.exists()
    # checked before the measurements are read: a bad output wins over an unreadable input
    assert_user_error(["calibrate", str(tmp_path / "absent.csv"), "-o", str(missing)], "does not exist")
    out = tmp_path / "c.yaml"
    out.write_text("keep")
    assert_user_error(["calibrate", measured, "-o", str(out)], str(out), "already exists", "--force")
    assert out.read_text() == "keep"
    res = run_cli("calibrate", measured, "-o", str(out), "--force")
    assert res.exit_code == 0, res.output
    assert "measured:" in out.read_text()
    # the default ./calibration.yaml is replaced, as before
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        res = run_cli("calibrate", measured)
        assert res.exit_code == 0, res.output
    assert (tmp_path / "calibration.yaml").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_full_disk_workbook_is_a_clear_error(tmp_path: Path) -> None:
    """The real command on a real 12 KiB file system: exit 2, the path, no traceback, nothing left."""
    full = tmp_path / "full"
    if not _mount_tmpfs(full, "size=12k"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        target = full / "plan.xlsx"
        res = subprocess.run([sys.executable, "-m", "optimizer", "solve", str(REPO / "scenarios" / "startup-api.yaml"),
                              "-o", str(target)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert f"cannot write workbook {target}: No space left on device" in res.stderr
        assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
        assert list(full.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(full)], capture_output=True)


def test_sigterm_while_solve_writes_leaves_no_temporary(tmp_path: Path) -> None:
    """The real command, signalled the moment its temporary file appears (5 tries: the write is fast,
    so a try may miss it and exit 0; either way nothing but a complete workbook may remain)."""
    import signal
    import time

    signalled = 0
    for attempt in range(5):
        out = tmp_path / f"try{attempt}"
        out.mkdir()
        cmd = [sys.executable, "-m", "optimizer", "solve", str(REPO / "scenarios" / "startup-api.yaml"),
               "-o", str(out / "plan.xlsx")]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        sent = False
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if any(p.name.endswith(".tmp") for p in out.iterdir()):
                proc.send_signal(signal.SIGTERM)
                sent = True
                break
            time.sleep(0.0005)
        _, stderr = proc.communicate(timeout=60)
        left = sorted(p.name for p in out.iterdir())
        assert not [n for n in left if n.endswith(".tmp")], (left, stderr)
        assert "Traceback" not in stderr, stderr
        if proc.returncode == 0:
            assert left == ["plan.xlsx"], left
        else:  # 143: caught by safe_write's handler; -15: signalled just outside it (between probe and write)
            assert sent and proc.returncode in (143, -signal.SIGTERM), (proc.returncode, stderr)
            signalled += proc.returncode == 143
    if not signalled:
        pytest.skip("no try caught the write in progress (the machine wrote faster than it was polled)")
