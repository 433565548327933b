"""Build hook only (metadata lives in pyproject.toml): ship the Hydra config tree `conf/` and the hub's
static pages `hub/` inside the package as `genometracks/_data/{conf,hub}`, so a wheel or `pip install .`
finds them (genometracks.io.paths.conf_dir / hub_static_dir). A source checkout reads them in place."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PACKAGE_DATA = ("conf", "hub")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads conf/ and hub/ in place
            return
        target = Path(self.build_lib) / "genometracks" / "_data"
        for name in PACKAGE_DATA:
            if target.joinpath(name).exists():
                shutil.rmtree(target / name)
            shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
