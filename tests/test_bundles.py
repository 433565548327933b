"""A browser's JavaScript bundle: the override variable, the cache, and a fetch into a staged folder."""

import pytest

from genometracks.browser import bundles


class BundleError(ValueError):
    pass


def _ensure(tmp_path, fetch):
    return bundles.ensure_bundle(
        env="GT_TEST_BUNDLE",
        name="b.min.js",
        package="b.js",
        folder=tmp_path / "cache" / "1.0",
        relpath="dist/b.min.js",
        error=BundleError,
        fetch=fetch,
    )


def test_a_fetched_bundle_is_published_whole_and_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("GT_TEST_BUNDLE", raising=False)
    monkeypatch.setattr(bundles.shutil, "which", lambda name: f"/opt/{name}")
    calls = []

    def fetch(npm, stage):
        calls.append((npm, stage))
        (stage / "dist").mkdir()
        (stage / "dist" / "b.min.js").write_text("// bundle\n")

    path = _ensure(tmp_path, fetch)
    assert path == tmp_path / "cache" / "1.0" / "dist" / "b.min.js" and path.read_text() == "// bundle\n"
    assert calls[0][0] == "/opt/npm" and calls[0][1] != path.parents[1]  # written into a stage, then published
    assert _ensure(tmp_path, fetch) == path and len(calls) == 1  # cached: nothing fetched again


def test_a_failed_fetch_leaves_no_cache_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("GT_TEST_BUNDLE", raising=False)
    monkeypatch.setattr(bundles.shutil, "which", lambda name: f"/opt/{name}")

    def fetch(npm, stage):
        (stage / "partial.js").write_text("half")
        raise BundleError("npm pack failed")

    with pytest.raises(BundleError, match="npm pack failed"):
        _ensure(tmp_path, fetch)
    assert not (tmp_path / "cache" / "1.0").exists()


def test_override_and_missing_npm_say_what_to_set(tmp_path, monkeypatch):
    given = tmp_path / "mine.js"
    given.write_text("//\n")
    monkeypatch.setenv("GT_TEST_BUNDLE", str(given))
    assert _ensure(tmp_path, None) == given
    monkeypatch.setenv("GT_TEST_BUNDLE", str(tmp_path / "absent.js"))
    with pytest.raises(BundleError, match=r"GT_TEST_BUNDLE=.*absent.js: file not found; point it at b.min.js"):
        _ensure(tmp_path, None)
    monkeypatch.delenv("GT_TEST_BUNDLE")
    monkeypatch.setattr(bundles.shutil, "which", lambda name: None)
    with pytest.raises(BundleError, match=r"b.js is not cached and npm is not installed; .* GT_TEST_BUNDLE=/path/to/b.min.js"):
        _ensure(tmp_path, None)
