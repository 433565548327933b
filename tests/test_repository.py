"""What the repository promises about itself: the README's test command is the one CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command_last():
    readme = (ROOT / "README.md").read_text().splitlines()
    heading = next(i for i, line in enumerate(readme) if line.startswith("# 2. the tests"))
    command = readme[heading + 1].strip()
    assert command.startswith("bash scripts/install.sh --test && python3 -m pytest"), command
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert ci_lines[-1] == command  # the script's exit status is the tests'
