"""A wheel that installs: build it, install it into a fresh virtual environment (no editable install;
torch and the other dependencies reused from the system site), then run the console script from an
unrelated folder: `data summary data=synthetic` and a tiny `run`. conf/ and hub/ must come from the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TINY_RUN

pytestmark = pytest.mark.slow  # builds a wheel and a venv (~30 s)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((root / "dist").glob("genometracks-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "genometracks/_data/conf/config.yaml" in names and "genometracks/_data/hub/tss_signal.html" in names
    assert "genometracks/model/band_attention.cpp" in names  # the attention kernel's source, built on first use
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)], check=True, timeout=300)
    install = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return env_dir, root


def in_venv(env_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    # the wheel's kernel builds in a cache of its own: in the shared one, under the same name, it would replace
    # the checkout's build and the next run from the checkout would compile again (found: 25 s in a main job)
    env["TORCH_EXTENSIONS_DIR"] = str(cwd / "torch_extensions")
    for name in ("IGV_JS", "JBROWSE_JS"):  # the run's igv.js and JBrowse bundle: stand-ins, no npm here
        env[f"GENOMETRACKS_{name}"] = str(cwd / f"{name.lower()}.js")
        (cwd / f"{name.lower()}.js").write_text("// stand-in\n")
    return subprocess.run([str(env_dir / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_wheel_imports_its_own_copy(venv):
    env_dir, root = venv
    done = in_venv(
        env_dir,
        root,
        "python",
        "-c",
        "import genometracks, genometracks.io.paths as p, genometracks.model.kernel as k; print(genometracks.__file__);"
        " print(p.conf_dir()); print(p.hub_static_dir()); print(k.SOURCE.is_file() and k.compiled() is not None)",
    )
    assert done.returncode == 0, done.stderr
    module, conf, hub, kernel_built = done.stdout.split()
    assert kernel_built == "True"  # the compiled attention kernel builds from the wheel's own source
    assert str(env_dir) in module and str(REPO) not in module  # not the checkout, not an editable install
    assert Path(conf).joinpath("config.yaml").is_file() and Path(hub).joinpath("tss_signal.html").is_file()


def test_wheel_runs_data_summary_and_a_tiny_run(venv):
    env_dir, root = venv
    done = in_venv(env_dir, root, "genometracks", "data", "summary", "data=synthetic")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["contigs"]
    run_dir = root / "tiny"
    done = in_venv(
        env_dir, root, "genometracks", "run", *TINY_RUN, "stages=[data,train,predict,peaks,export,validate]", f"run_dir={run_dir}"
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert (run_dir / "hub" / "hub.txt").is_file() and (run_dir / "tracks" / "tss.plus.bw").is_file()
    assert next((run_dir / "hub").glob("*/html/tss_signal.html")).is_file()  # hub/ pages came from the wheel
