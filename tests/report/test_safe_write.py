"""safe_write / check_target: every way a report path can be wrong is a UsageError before any work,
a full disk (a real one: a tiny tmpfs) is a UsageError without a traceback, SIGTERM/SIGINT during a
write leave no temporary file and exit 143/130, and stale temporary files of a target are removed."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from optimizer.errors import UsageError
from optimizer.report.safe_write import STALE_AFTER_S, check_target, remove_stale_temporaries, safe_write
from tests.conftest import REPO


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    return res.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def readonly_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder no write can go into: a read-only tmpfs as root (root ignores file modes), else 0555."""
    folder = tmp_path / "readonly"
    if os.geteuid() == 0:
        if not _mount_tmpfs(folder, "ro,size=16k"):
            pytest.skip("cannot mount a read-only tmpfs here")
        yield folder
        _umount(folder)
    else:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 12 KiB file system (tmpfs; needs root and mount rights, else the test is skipped)."""
    folder = tmp_path / "full"
    if not _mount_tmpfs(folder, "size=12k"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield folder
    _umount(folder)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- check_target ---------------------------------------------------------------------------


def test_check_target_rejects_each_bad_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist") as e:
        check_target(tmp_path / "missing" / "plan.xlsx", force=False, what="workbook")
    assert "mkdir -p" in e.value.render() and str(tmp_path / "missing") in e.value.render()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        check_target(a_file / "plan.xlsx", force=False)
    with pytest.raises(UsageError, match="is a directory"):
        check_target(tmp_path, force=True)
    with pytest.raises(UsageError, match="already exists") as e:
        check_target(a_file, force=False)
    assert "--force" in e.value.render()
    assert check_target(a_file, force=True) == a_file
    with pytest.raises(UsageError, match=r"must end in \.xlsx"):
        check_target(tmp_path / "plan.csv", force=False, what="workbook", suffix=".xlsx")
    fifo = tmp_path / "pipe.xlsx"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        check_target(fifo, force=True)
    assert _files(tmp_path) == ["file.txt", "pipe.xlsx"]  # the probe left nothing behind


def test_check_target_read_only_folder(readonly_folder: Path) -> None:
    with pytest.raises(UsageError, match="cannot write report") as e:
        check_target(readonly_folder / "plan.md", force=False, what="report")
    assert str(readonly_folder / "plan.md") in e.value.render()
    assert "choose a folder you can write to" in e.value.render()


# --- failed writes ----------------------------------------------------------------------------


def test_full_disk_is_a_usage_error_and_leaves_nothing(full_disk: Path) -> None:
    target = full_disk / "big.md"
    with pytest.raises(UsageError, match="No space left on device") as e:
        safe_write(target, lambda tmp: tmp.write_bytes(random.randbytes(256 * 1024)))
    assert str(target) in e.value.render()
    assert _files(full_disk) == []


OPENPYXL_ON_FULL_DISK = textwrap.dedent("""
    import random, sys
    import openpyxl
    from optimizer.errors import UsageError
    from optimizer.report.safe_write import safe_write

    wb = openpyxl.Workbook()
    rng = random.Random(0)
    for _ in range(400):
        wb.active.append([rng.random() for _ in range(20)])
    try:
        safe_write(sys.argv[1], lambda tmp: wb.save(tmp), what="workbook")
    except UsageError as exc:
        print(exc.render(), file=sys.stderr)
        sys.exit(2)
""")


def test_full_disk_inside_openpyxl_prints_no_traceback(full_disk: Path) -> None:
    """A subprocess, as a user runs it: pytest would swallow the "Exception ignored in ZipFile.__del__"
    traceback that Python prints when the failed ZipFile is collected."""
    target = full_disk / "book.xlsx"
    res = subprocess.run([sys.executable, "-c", OPENPYXL_ON_FULL_DISK, str(target)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert f"cannot write workbook {target}: No space left on device" in res.stderr
    assert "Exception ignored" not in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert _files(full_disk) == []


def test_os_error_under_another_exception_is_a_usage_error(tmp_path: Path) -> None:
    """A writer whose own clean-up raises something else while an ENOSPC unwinds (zipfile does)."""
    target = tmp_path / "book.xlsx"
    target.write_text("old")

    def writer(tmp: Path) -> None:
        tmp.write_text("half")
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise ValueError("Can't close the ZIP file while there is an open writing handle on it") from None

    with pytest.raises(UsageError, match="No space left on device"):
        safe_write(target, writer, force=True)
    assert target.read_text() == "old" and _files(tmp_path) == ["book.xlsx"]


def test_a_bug_in_the_writer_is_not_disguised(tmp_path: Path) -> None:
    def writer(tmp: Path) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        safe_write(tmp_path / "x.md", writer)
    assert _files(tmp_path) == []


# --- stale temporary files --------------------------------------------------------------------


def test_stale_temporaries_removed_others_kept(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        old = time.time() - STALE_AFTER_S - 60
        names = {
            "dead_pid": ".plan.xlsx.999999999.abcdefgh.tmp",     # its process is gone: stale at once
            "old_style_old": ".plan.xlsx.k2j3h4g5.tmp",           # no pid, untouched for > 10 min
            "live_old": f".plan.xlsx.{sleeper.pid}.zzzzzzzz.tmp",  # pid runs but untouched for > 10 min
            "old_style_new": ".plan.xlsx.q1w2e3r4.tmp",           # kept: could be a running write
            "live_new": f".plan.xlsx.{sleeper.pid}.a1b2c3d4.tmp",  # kept: its process runs
            "other_target": ".plan.xlsx.bak.999999999.abcdefgh.tmp",
            "other_file": "notes.tmp",
        }
        for key, name in names.items():
            (tmp_path / name).write_text(key)
        for key in ("old_style_old", "live_old", "other_target"):
            os.utime(tmp_path / names[key], (old, old))
        (tmp_path / "link").mkdir()
        os.symlink(tmp_path / "link", tmp_path / ".plan.xlsx.999999998.symlink1.tmp")
        safe_write(tmp_path / "plan.xlsx", lambda tmp: tmp.write_text("new"))
        kept = set(_files(tmp_path))
        for key in ("dead_pid", "old_style_old", "live_old"):
            assert names[key] not in kept, key
        for key in ("old_style_new", "live_new", "other_target", "other_file"):
            assert names[key] in kept, key
        assert {"plan.xlsx", "link", ".plan.xlsx.999999998.symlink1.tmp"} <= kept
        assert remove_stale_temporaries(tmp_path / "plan.xlsx") == []
    finally:
        sleeper.kill()
        sleeper.wait()


# --- signals ----------------------------------------------------------------------------------

SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from optimizer.report.safe_write import safe_write

    target, ready = Path(sys.argv[1]), Path(sys.argv[2])

    def slow(tmp):
        tmp.write_text("half")
        ready.write_text(tmp.name)          # tell the test the temporary file exists
        time.sleep(30)

    safe_write(target, slow, force=True)
    print("finished")
""")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_write_removes_temporary(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target, ready = out / "plan.xlsx", tmp_path / "ready"
    target.write_text("old")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target), str(ready)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the writer never started"
            time.sleep(0.02)
        tmp_name = ready.read_text()
        assert (out / tmp_name).exists()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, stderr
    assert "finished" not in stdout and "Traceback" not in stderr, stderr
    assert _files(out) == ["plan.xlsx"] and target.read_text() == "old"


def test_handlers_restored_and_threads_work(tmp_path: Path) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    safe_write(tmp_path / "a.md", lambda tmp: tmp.write_text("a"))
    assert {s: signal.getsignal(s) for s in before} == before
    errors: list[BaseException] = []

    def in_thread() -> None:  # a web server's worker thread cannot install signal handlers
        try:
            safe_write(tmp_path / "b.md", lambda tmp: tmp.write_text("b"))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert errors == [] and (tmp_path / "b.md").read_text() == "b"
    assert _files(tmp_path) == ["a.md", "b.md"]
