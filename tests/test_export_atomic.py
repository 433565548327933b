"""Atomic writing: an interrupted write leaves the previous output, never a partial one."""

from __future__ import annotations

import os

import pytest

from genometracks.io.atomic import atomic_path, staged_dir, write_text_atomic


def test_interrupted_file_write_keeps_previous(tmp_path):
    target = tmp_path / "track.bw"
    write_text_atomic(target, "old contents")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed midway")
    assert target.read_text() == "old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["track.bw"]  # no temporary left


def test_atomic_path_keeps_suffix_and_replaces(tmp_path):
    target = tmp_path / "peaks.bb"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".bb" and not tmp.exists()
        tmp.write_bytes(b"\x01\x02")
    assert target.read_bytes() == b"\x01\x02"


def test_writer_that_writes_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="produced no file"):
        with atomic_path(tmp_path / "x.txt"):
            pass
    assert not (tmp_path / "x.txt").exists()


def test_staged_dir_swaps_whole_folder(tmp_path):
    hub = tmp_path / "hub"
    with staged_dir(hub) as stage:
        (stage / "a.txt").write_text("1")
    with staged_dir(hub) as stage:
        (stage / "b.txt").write_text("2")
    assert sorted(p.name for p in hub.iterdir()) == ["b.txt"]  # old contents gone, new in
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]


def test_staged_dir_is_not_private(tmp_path):
    previous = os.umask(0o022)
    try:
        with staged_dir(tmp_path / "hub") as stage:
            (stage / "a.txt").write_text("1")
    finally:
        os.umask(previous)
    assert (tmp_path / "hub").stat().st_mode & 0o777 == 0o755  # readable by a web server


def test_staged_dir_exception_keeps_previous(tmp_path):
    hub = tmp_path / "hub"
    with staged_dir(hub) as stage:
        (stage / "hub.txt").write_text("hub old")
    with pytest.raises(KeyError):
        with staged_dir(hub) as stage:
            (stage / "hub.txt").write_text("hub new")
            raise KeyError("crash")
    assert (hub / "hub.txt").read_text() == "hub old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]


def test_stale_staging_of_dead_process_removed(tmp_path):
    hub = tmp_path / "hub"
    stale = tmp_path / ".hub.staging-999999999-abc"  # no such pid
    stale.mkdir()
    (stale / "partial.bw").write_text("x")
    with staged_dir(hub) as stage:
        (stage / "hub.txt").write_text("hub new")
    assert not stale.exists()
