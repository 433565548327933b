"""The browsers' JavaScript bundles (igv.js, JBrowse 2's linear genome view): a file named by an
environment variable, else the copy in the user cache (`$GENOMETRACKS_CACHE` or ~/.cache/genometracks),
fetched there with npm when absent. Never committed; nothing is fetched when the bundle is cached or
the variable is set."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from genometracks.io.atomic import staged_dir


def cache_root() -> Path:
    """$GENOMETRACKS_CACHE, else ~/.cache/genometracks."""
    return Path(os.environ.get("GENOMETRACKS_CACHE", Path.home() / ".cache" / "genometracks"))


def ensure_bundle(
    *, env: str, name: str, package: str, folder: Path, relpath: str, error: type[Exception], fetch: Callable[[str, Path], None]
) -> Path:
    """Path of a bundle: $`env` if set (`error` when that file is missing; `name` is the file it should
    be), else `folder`/`relpath` in the cache, filled when absent by fetch(npm executable, stage), which
    writes `relpath` into a staged copy of `folder` (published whole, or not at all, when fetch returns);
    `error` when npm is not installed (`package`: the bundle's name in the message)."""
    override = os.environ.get(env)
    if override:
        if not Path(override).is_file():
            raise error(f"{env}={override}: file not found; point it at {name}")
        return Path(override)
    script = folder / relpath
    if script.is_file():
        return script
    npm = shutil.which("npm")
    if npm is None:
        raise error(
            f"{package} is not cached and npm is not installed; install Node.js/npm (apt-get install npm) or set {env}=/path/to/{name}"
        )
    with staged_dir(folder) as stage:
        fetch(npm, stage)
    return script


def npm_pack_fetcher(package: str, version: str, bundle: str, env: str, error: type[Exception]) -> Callable[[str, Path], None]:
    """An `ensure_bundle` fetch: `npm pack package@version` into the stage, then the tarball's
    dist/`bundle`, its .LICENSE.txt and package.json extracted beside it and the tarball removed;
    `error` (naming `env`, the way round) when npm fails."""

    def unpack(npm: str, stage: Path) -> None:
        result = subprocess.run(
            [npm, "pack", f"{package}@{version}", "--pack-destination", str(stage), "--silent"],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=stage,
        )
        tarballs = list(stage.glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise error(
                f"npm pack {package}@{version} failed (exit {result.returncode}): "
                f"{result.stderr.strip()[-800:]}; check access to the npm registry or set {env}"
            )
        with tarfile.open(tarballs[0]) as archive:
            for name in (bundle, bundle + ".LICENSE.txt"):
                member = archive.getmember(f"package/dist/{name}")
                with archive.extractfile(member) as src, open(stage / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            with archive.extractfile(archive.getmember("package/package.json")) as src:
                (stage / "package.json").write_bytes(src.read())
        tarballs[0].unlink()

    return unpack


def npm_dist_bundle(package: str, version: str, bundle: str, env: str, folder: Path, error: type[Exception]) -> Path:
    """`ensure_bundle` of an npm package's dist/`bundle`: $`env` if set, else `folder`/`bundle`, fetched
    there with `npm pack` when absent (`npm_pack_fetcher`)."""
    return ensure_bundle(
        env=env,
        name=bundle,
        package=package,
        folder=folder,
        relpath=bundle,
        error=error,
        fetch=npm_pack_fetcher(package, version, bundle, env, error),
    )
