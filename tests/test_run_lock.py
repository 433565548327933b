"""Run directories protect themselves: an exclusive lock, and SIGTERM stops a run that then resumes."""

import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from genometracks.io.run_lock import LOCK_NAME, RunDirBusy, lock_holder, run_dir_lock
from tests.conftest import TINY, TINY_RUN, cli, run_dir_held


def test_second_holder_is_refused_with_pid_and_host(tmp_path):
    with run_dir_lock(tmp_path / "run", "train"):
        text = (tmp_path / "run" / LOCK_NAME).read_text()
        assert text.startswith(f"train pid {os.getpid()} on {socket.gethostname()} since ")
        with pytest.raises(
            RunDirBusy, match=f"in use by genometracks train pid {os.getpid()} on {socket.gethostname()}.*choose another run_dir"
        ):
            with run_dir_lock(tmp_path / "run", "predict"):
                pass
    with run_dir_lock(tmp_path / "run", "predict"):  # released on exit
        assert (tmp_path / "run" / LOCK_NAME).read_text().startswith("predict pid")


def _unsupported(*args):
    raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))


def test_without_flock_posix_locks_guard_the_run_dir(tmp_path, monkeypatch):
    # Lustre mounted without -o flock answers flock() with ENOSYS: POSIX record locks take over
    monkeypatch.setattr(fcntl, "flock", _unsupported)
    taken = []
    real_lockf = fcntl.lockf
    monkeypatch.setattr(fcntl, "lockf", lambda fd, op: (taken.append(op), real_lockf(fd, op))[1])
    with run_dir_lock(tmp_path / "run", "train"):
        # a second process is refused (POSIX locks do not conflict inside one process, and closing any
        # handle on the file drops them: the holder's text is read after the probe)
        probe = (
            "import fcntl, os, sys; h = os.open(sys.argv[1], os.O_RDWR)\n"
            "try:\n    fcntl.lockf(h, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(3)"
        )
        done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "run" / LOCK_NAME)])
        assert done.returncode == 3
        assert (tmp_path / "run" / LOCK_NAME).read_text().startswith("train pid")
    assert taken == [fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN]


@pytest.mark.parametrize("flock", [True, False])
def test_lock_holder_names_another_process_with_or_without_flock(tmp_path, monkeypatch, flock):
    """A collection's status asks who holds each genome's run directory: on a file system without flock
    (POSIX record locks instead) the holder was reported as nobody, and a running job as failed."""
    run = tmp_path / "run"
    if not flock:
        monkeypatch.setattr(fcntl, "flock", _unsupported)
    with run_dir_held(run, "predict", without_flock=not flock) as holder:
        assert lock_holder(run).startswith(f"predict pid {holder.pid} on {socket.gethostname()} since ")
    assert lock_holder(run) is None


def test_lock_holder_in_the_holding_process_keeps_a_posix_lock(tmp_path, monkeypatch):
    """Asking about a lock this very process holds with lockf must not drop it (closing any handle on
    the file releases a process's POSIX locks)."""
    monkeypatch.setattr(fcntl, "flock", _unsupported)
    run = tmp_path / "run"
    probe = (
        "import fcntl, os, sys; h = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.lockf(h, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(3)"
    )
    with run_dir_lock(run, "train"):
        assert lock_holder(run).startswith(f"train pid {os.getpid()}")
        assert subprocess.run([sys.executable, "-c", probe, str(run / LOCK_NAME)]).returncode == 3  # still held
    assert lock_holder(run) is None


def test_a_file_system_without_locks_runs_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(fcntl, "flock", _unsupported)
    monkeypatch.setattr(fcntl, "lockf", _unsupported)
    with caplog.at_level("WARNING", logger="genometracks.io.run_lock"):
        with run_dir_lock(tmp_path / "run", "predict"):
            assert (tmp_path / "run" / LOCK_NAME).read_text().startswith("predict pid")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "supports no file locks" in lines[0] and "one genometracks process per run_dir" in lines[0]
    assert str(tmp_path / "run") in lines[0]


def test_an_unexpected_lock_error_is_not_hidden(tmp_path, monkeypatch):
    def denied(*args):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    monkeypatch.setattr(fcntl, "flock", denied)
    with pytest.raises(OSError, match="Bad file descriptor"):
        with run_dir_lock(tmp_path / "run", "predict"):
            pass


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "genometracks.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=600):
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} never appeared"


@pytest.mark.slow
def test_a_second_process_on_a_busy_run_dir_is_refused(tmp_path):
    # another process holds the run directory (as a running `genometracks train` does) until told to stop
    run = tmp_path / "run"
    with run_dir_held(run, "train") as holder:
        second = cli("predict", *TINY, f"run_dir={run}")
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"in use by genometracks train pid {holder.pid} on {socket.gethostname()}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1  # one clear line


@pytest.mark.slow
def test_sigterm_stops_a_run_cleanly_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    proc = _start("run", *TINY_RUN, f"run_dir={run}")
    _wait_for(run / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and "Run the same command again to resume" in stderr and "resume=true" not in stderr
    assert not list(run.rglob("*.tmp*")), "temporary files left behind"
    assert not (run / "report.html").exists()
    with run_dir_lock(run, "check"):  # the lock died with the process
        pass
    again = cli("run", *TINY_RUN, f"run_dir={run}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (run / "report.html").is_file() and (run / "tracks" / "tss.plus.bw").is_file()
