"""Run directories protect themselves: an exclusive lock, and SIGTERM stops a run that then resumes."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from genometracks.io.run_lock import LOCK_NAME, RunDirBusy, run_dir_lock
from tests.conftest import TINY, TINY_RUN, cli


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
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from genometracks.io.run_lock import run_dir_lock\n"
            f"with run_dir_lock(pathlib.Path({str(run)!r}), 'train'):\n"
            "    print('locked', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = cli("predict", *TINY, f"run_dir={run}")
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"in use by genometracks train pid {holder.pid} on {socket.gethostname()}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1  # one clear line
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0


@pytest.mark.slow
def test_sigterm_stops_a_run_cleanly_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    proc = _start("run", *TINY_RUN, f"run_dir={run}")
    _wait_for(run / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and "resume" in stderr
    assert not list(run.rglob("*.tmp*")), "temporary files left behind"
    assert not (run / "report.html").exists()
    with run_dir_lock(run, "check"):  # the lock died with the process
        pass
    again = cli("run", *TINY_RUN, f"run_dir={run}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (run / "report.html").is_file() and (run / "tracks" / "tss.plus.bw").is_file()
