"""Atomic outputs: a file is written under a temporary name in its own folder and renamed into place;
a whole folder (a hub, an IGV session) is built in a staging folder beside it and swapped in.

A crash or kill at any moment leaves either the previous output or none, never a truncated file.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import resource
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from genometracks.io.faults import kill_point

_RENAME_EXCHANGE = 2  # Linux renameat2 flag: swap two paths atomically
_AT_FDCWD = -100


def _fsync_path(path: Path) -> None:
    """Flush a written file to disk (so a power cut cannot leave a renamed but empty file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(path: Path) -> None:
    """Remove temporary files of `path` left by a killed or crashed writer (its pid no longer runs)."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\..*\.tmp")
    for leftover in path.parent.iterdir():
        match = pattern.match(leftover.name)
        if match and leftover.is_file() and not _pid_alive(int(match.group(1))):
            leftover.unlink(missing_ok=True)


def check_space(path: str | Path, expected_bytes: int) -> None:
    """Raise OSError(ENOSPC) naming `path` when its file system has less than `expected_bytes` free,
    or when the process's file-size limit (ulimit -f) is below it: some C writers (libBigWig) crash
    or write a truncated file when a write fails, so refuse before starting."""
    path = Path(path)
    free = shutil.disk_usage(path.parent).free
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if free < expected_bytes:
        raise OSError(
            errno.ENOSPC,
            f"{path}: needs about {expected_bytes / 2**20:.1f} MiB but its file system "
            f"has {free / 2**20:.1f} MiB free; free space or choose another run_dir",
        )
    if limit != resource.RLIM_INFINITY and limit < expected_bytes:
        raise OSError(
            errno.EFBIG,
            f"{path}: needs about {expected_bytes / 2**20:.1f} MiB but the file-size limit "
            f"(ulimit -f) is {limit / 2**20:.2f} MiB; raise the limit",
        )


@contextmanager
def atomic_path(path: str | Path, expected_bytes: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so libraries that read the extension work);
    on normal exit the temporary file is flushed and renamed onto `path`, on an exception it is removed.
    `expected_bytes` > 0: check the space first (see check_space). Temporary files left by a killed
    writer of the same path are removed first (they carry the writer's pid)."""
    path = Path(path)
    if path.is_dir():  # os.replace would name the temporary file in its error
        raise IsADirectoryError(
            f"{path}: is a folder, and a file of that name is to be written; give a file path (e.g. {path / path.name})"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    if expected_bytes:
        check_space(path, expected_bytes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp" + "".join(path.suffixes[-1:]), dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers (pyBigWig, pybigtools) create the file themselves
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: the writer produced no file for {path}")
        replace_into(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def replace_into(tmp: str | Path, path: str | Path) -> None:
    """Flush the finished temporary file `tmp` to disk, pass the kill point `write:<name>`, and
    rename it onto `path` (same folder): the last step of every atomic file write."""
    _fsync_path(Path(tmp))
    kill_point(f"write:{Path(path).name}")
    os.replace(tmp, path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link `src` to a new path `dst`, falling back to a byte copy across file systems.

    A hard link is a snapshot: our writers replace files by rename, so the linked inode never changes."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(rc == 0)


def _remove_stale(final: Path) -> None:
    """Remove staging/old folders left beside `final` by a killed process (its pid no longer runs)."""
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(staging|old)-(\d+)-")
    for leftover in final.parent.iterdir():
        match = pattern.match(leftover.name)
        if match and leftover.is_dir() and not _pid_alive(int(match.group(2))):
            shutil.rmtree(leftover, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def staged_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside `final`; on normal exit it replaces `final` whole.

    The swap is one atomic rename-exchange on Linux (else two renames, where a kill between them
    leaves no folder, never a mixed one). On an exception the staging folder is removed and `final`
    is untouched. Folders left by killed runs are cleaned up on the next call."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(final)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-{os.getpid()}-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private; the output folder should not be
    try:
        yield stage
        kill_point(f"stage:{final.name}")
        if final.is_dir() and not final.is_symlink() and _exchange(stage, final):
            shutil.rmtree(stage, ignore_errors=True)  # `stage` now holds the previous output
            return
        if final.exists() or final.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-{os.getpid()}-", dir=final.parent))
            os.replace(final, old / "previous")
            os.replace(stage, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, final)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
