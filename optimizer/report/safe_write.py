"""Write a report file safely: into a temporary file beside the target, then an atomic rename.

A reader (Excel holding the old file, a mail client attaching it) never sees a half-written file, and
a failure leaves the old file as it was and no temporary file behind. Problems the user can fix (a
missing folder, an unwritable path, a file that exists, a full disk) are :class:`UsageError` (exit 2)
naming the path and the fix; :func:`check_target` finds all but the full disk before any work is done.

Temporary files are named ``.{target name}.{pid}.{random}.tmp``. While a write runs in the main thread,
SIGTERM and SIGINT remove the temporary file and exit with 143 and 130 (128 + the signal), and the
previous handlers come back afterwards. A process killed outright (SIGKILL, power loss) cannot clean
up, so every write first removes *stale* temporary files of its own target, in its folder:

- ``.{name}.{pid}.{random}.tmp`` whose process ``pid`` no longer runs on this machine, and
- any ``.{name}.*.tmp`` of that shape (including the older ``.{name}.{random}.tmp``) last modified
  more than :data:`STALE_AFTER_S` (10 minutes) ago: a live write keeps its file fresh, and a report
  takes seconds to write.

Nothing else is touched: other targets' temporary files, symbolic links and folders are left alone.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import re
import secrets
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from optimizer.errors import UsageError

STALE_AFTER_S = 600.0  # a temporary file untouched for this long belongs to no running write
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_target(path: Path, *, force: bool, what: str = "file", suffix: str | None = None) -> Path:
    """Raise UsageError unless ``path`` can be (re)written; return it (``~`` expanded).

    Checks the name (``suffix``, e.g. ``.xlsx``), that it is not a folder or some other non-file, that
    its folder exists and takes a new file (by creating and removing one: this also catches read-only
    file systems and root-owned folders), and that it does not exist unless ``force``.
    """
    path = Path(path).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{what} path {path} is a directory",
                         hint=f"give a file name, e.g. {path / ('report' + (suffix or path.suffix or '.xlsx'))}")
    if suffix is not None and path.suffix.lower() != suffix:
        raise UsageError(f"{what} path {path} must end in {suffix}", hint=f"use {path.with_suffix(suffix)}")
    if not parent.exists():
        raise UsageError(f"cannot write {what} {path}: folder {parent} does not exist",
                         hint=f"create it (mkdir -p {parent}) or choose another path")
    if not parent.is_dir():
        raise UsageError(f"cannot write {what} {path}: {parent} is not a folder",
                         hint="choose a path inside an existing folder")
    if path.exists() and not path.is_file():
        raise UsageError(f"cannot write {what} {path}: it exists and is not a regular file",
                         hint="choose another path")
    if path.exists() and not force:
        raise UsageError(f"{what} {path} already exists",
                         hint="pass --force to replace it, or choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {what} {path}: folder {parent} is not writable",
                         hint="choose a folder you can write to")
    holder: list[Path] = []
    try:
        with _cleanup_on_signal(holder):
            _create_temporary(path, holder).unlink()
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: folder {parent}: {exc.strerror or exc}",
                         hint="choose a folder you can write to") from exc
    return path


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: beyond any pid
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


def remove_stale_temporaries(path: Path, *, now: float | None = None) -> list[Path]:
    """Remove the stale temporary files of ``path`` (see the module docstring); return them."""
    name = re.escape(path.name)
    shape = re.compile(rf"\.{name}\.(?:(?P<pid>[0-9]+)\.)?[A-Za-z0-9_]{{6,}}\.tmp")
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent if str(path.parent) else "."))
    except OSError:
        return removed
    for entry in entries:
        m = shape.fullmatch(entry.name)
        if m is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            pid = int(m["pid"]) if m["pid"] else 0
            dead = 0 < pid != os.getpid() and not _pid_running(pid)
            if dead or now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def _cleanup_on_signal(holder: list[Path]) -> Iterator[list[int]]:
    """While inside: SIGTERM/SIGINT remove the file in ``holder`` and exit with 128 + the signal.

    Yields a list that receives the signal number, so that the caller can keep the exit code if the
    writer's own clean-up raises something else while the SystemExit unwinds it. Outside the main
    thread (a web server's worker) signals cannot be handled, and nothing is installed.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        for tmp in holder:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise SystemExit(128 + signum)

    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in SIGNALS:
            old = signal.getsignal(sig)
            if old is signal.SIG_IGN:  # e.g. SIGINT in a background job: keep ignoring it
                continue
            previous[sig] = old
            signal.signal(sig, handler)
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc`` (itself, or what it was raised from or while handling), if any."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, OSError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _discard(exc: BaseException) -> None:
    """Finalise now, silently, what a failed writer left in its frames.

    A ZipFile (openpyxl) that failed on a full disk tries to flush again when it is collected, and
    Python prints that second failure as "Exception ignored in ZipFile.__del__" with a traceback.
    """
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    seen: set[int] = set()
    cur: BaseException | None = exc
    try:
        while cur is not None and id(cur) not in seen:
            seen.add(id(cur))
            traceback.clear_frames(cur.__traceback__)
            cur = cur.__cause__ or cur.__context__
        gc.collect()
    finally:
        sys.unraisablehook = hook


def _create_temporary(path: Path, holder: list[Path]) -> Path:
    """Create ``.{name}.{pid}.{random}.tmp`` beside ``path`` (mode 0600), named in ``holder`` *before*
    it exists, so that a signal arriving at any moment finds it there to remove."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        holder.append(tmp)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            holder.remove(tmp)
            continue
        except OSError:
            holder.remove(tmp)
            raise
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


def safe_write(path: Path, write: Callable[[Path], object], *, force: bool = False, what: str = "file",
               suffix: str | None = None) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then rename it onto ``path``.

    Returns ``path``. The new file gets the usual permissions (0666 less the umask), not the
    0600 of a temporary file. Any OSError while writing (ENOSPC included, also one raised deep inside
    openpyxl or zipfile) is a UsageError naming the path; the old file stays as it was.
    """
    path = check_target(path, force=force, what=what, suffix=suffix)
    remove_stale_temporaries(path)
    holder: list[Path] = []
    with _cleanup_on_signal(holder) as received:
        try:
            try:
                tmp = _create_temporary(path, holder)
            except OSError as exc:
                raise UsageError(f"cannot write {what} {path}: {exc.strerror or exc}",
                                 hint="choose a folder you can write to") from exc
            try:
                write(tmp)
                os.chmod(tmp, 0o666 & ~_umask())
                os.replace(tmp, path)
            except Exception as exc:
                if received:
                    raise SystemExit(128 + received[0]) from None
                cause = _os_error(exc)
                if cause is None:
                    raise
                _discard(exc)
                raise UsageError(f"cannot write {what} {path}: {cause.strerror or cause}",
                                 hint="check the free disk space and the permissions of the folder") from exc
        finally:
            for tmp in holder:
                with contextlib.suppress(OSError):
                    tmp.unlink()
    return path
