"""A run directory protects itself: one genometracks process at a time (an exclusive lock naming the
holder's pid and host), and SIGTERM / SIGINT end a command cleanly so that it resumes afterwards."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from genometracks.io.run_config import ConfigError

LOCK_NAME = ".genometracks.lock"
UNSUPPORTED = frozenset({errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL})  # no such lock here
log = logging.getLogger(__name__)
# lock files this process holds with POSIX record locks (lockf) → the holder text: such a lock is the
# process's, not a handle's, and closing any handle on the file drops it, so `lock_holder` must not open
# the file of a lock its own process holds
_HELD_POSIX: dict[str, str] = {}


class RunDirBusy(ConfigError):
    """Another live process holds the run directory's lock; the message names it and the fix."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived: unwind (temporary files are removed, outputs so far kept) and exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def run_dir_lock(folder: Path, command: str) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if missing) while the block runs.

    flock on DIR/.genometracks.lock: the kernel releases it when the holder exits, even by SIGKILL,
    so a stale file never blocks. The file records the holder ("<command> pid N on HOST since T")
    for the message a second process gets (RunDirBusy)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        kind = _lock(handle, folder)
    except BlockingIOError:
        holder = os.read(handle, 300).decode(errors="replace").strip() or "another process"
        os.close(handle)
        raise RunDirBusy(
            f"{folder}: in use by genometracks {holder}; wait for it to finish or stop it (it resumes later), or choose another run_dir"
        ) from None
    key = str(path.resolve())
    try:
        os.ftruncate(handle, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        text = f"{command} pid {os.getpid()} on {socket.gethostname()} since {stamp}"
        os.write(handle, f"{text}\n".encode())
        if kind == "lockf":
            _HELD_POSIX[key] = text
        yield
    finally:
        _HELD_POSIX.pop(key, None)
        if kind == "flock":
            fcntl.flock(handle, fcntl.LOCK_UN)
        elif kind == "lockf":
            fcntl.lockf(handle, fcntl.LOCK_UN)
        os.close(handle)


def lock_holder(folder: Path) -> str | None:
    """Who holds `folder`'s run-directory lock now ("<command> pid N on HOST since T"), or None when no
    live process does (the lock is tried without waiting and let go at once; no file is created). Locks
    taken with POSIX record locks (`run_dir_lock` on a file system without flock) are seen too."""
    path = folder / LOCK_NAME
    own = _HELD_POSIX.get(str(path.resolve()))
    if own is not None:
        return own
    try:
        handle = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder_text(handle)
        except OSError as err:
            if err.errno not in UNSUPPORTED:
                return None
        else:
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None
        try:  # no flock on this file system: the holder took a POSIX record lock
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            return _holder_text(handle) if err.errno in (errno.EACCES, errno.EAGAIN) else None
        fcntl.lockf(handle, fcntl.LOCK_UN)
        return None
    finally:
        os.close(handle)


def _holder_text(handle: int) -> str:
    os.lseek(handle, 0, os.SEEK_SET)
    return os.read(handle, 300).decode(errors="replace").strip() or "another process"


def _lock(handle: int, folder: Path) -> str:
    """Lock the open lock file exclusively without waiting: 'flock', else (a file system without BSD
    locks, such as Lustre mounted without -o flock, or some NFS) 'lockf' (POSIX record locks), else ''
    with one warning (no lock available: the run goes on unprotected). Busy: BlockingIOError."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return "flock"
    except BlockingIOError:
        raise
    except OSError as err:
        if err.errno not in UNSUPPORTED:
            raise
        bsd = os.strerror(err.errno or 0)
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until the process closes any handle on the file
        return "lockf"
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EAGAIN):
            raise BlockingIOError(err.errno, err.strerror) from None
        if err.errno not in UNSUPPORTED:
            raise
        posix = os.strerror(err.errno or 0)
    log.warning(
        "%s: the file system supports no file locks (flock: %s; fcntl: %s); running without the run-directory "
        "lock, so start one genometracks process per run_dir",
        folder,
        bsd,
        posix,
    )
    return ""


@contextmanager
def stop_cleanly_on_signals() -> Iterator[None]:
    """Turn SIGTERM (and SIGINT) into `Interrupted` raised in the main thread while the block runs,
    so `finally` clauses run: temporary outputs are removed and finished ones kept. Restores the
    previous handlers afterwards. A no-op outside the main thread. Lightning chains this handler
    behind its own and answers the KeyboardInterrupt with exit(1); that exit becomes `Interrupted`."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise Interrupted(signum)

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    except SystemExit:
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
