"""git_commit: the commit of the checkout genometracks runs from, never that of a repository around it."""

from __future__ import annotations

import subprocess

from genometracks.io.provenance import git_commit


def _git(folder, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


def _repo(folder):
    folder.mkdir(parents=True, exist_ok=True)
    _git(folder, "init", "-q")
    (folder / "f.txt").write_text("one\n")
    _git(folder, "add", "f.txt")
    _git(folder, "-c", "user.email=a@b", "-c", "user.name=u", "commit", "-q", "-m", "x")
    return _git(folder, "rev-parse", "HEAD")


def test_the_checkouts_own_commit_and_dirty_mark(tmp_path):
    head = _repo(tmp_path / "checkout")
    assert git_commit(tmp_path / "checkout") == head
    (tmp_path / "checkout" / "f.txt").write_text("two\n")
    assert git_commit(tmp_path / "checkout") == head + "+dirty"


def test_an_installed_package_inside_a_users_repository_records_no_commit(tmp_path):
    # a wheel installed in the user's project's .venv: site-packages lies inside the user's repository
    _repo(tmp_path / "project")
    site = tmp_path / "project" / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    assert git_commit(site) is None
    assert git_commit(tmp_path / "nowhere") is None  # not a repository, not even a folder
