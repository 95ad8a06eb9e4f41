"""The README's commands, as a user runs them: a bare ``pytest`` (the console script does not
put the working directory on ``sys.path``, unlike ``python -m pytest``) and ``.ci/run`` running
the README's test command literally, so CI can never pass where a user fails."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("Run the tests", 1)[1]
    block = re.search(r"```bash\n(.*?)\n```", section, re.S)
    assert block is not None, "README has no test command block after 'Run the tests'"
    return block.group(1).strip()


def test_ci_runs_the_readme_test_command_literally():
    command = readme_test_command()
    assert command.endswith("pytest"), command
    lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.lstrip().startswith("#")]
    assert command in lines, f".ci/run does not run the README's test command {command!r} literally: {lines}"
    assert not any("python3 -m pytest" in l or "python -m pytest" in l for l in lines)


def test_bare_pytest_collects_tests_that_import_the_repository(tmp_path):
    # -P: the working directory is not put on sys.path, exactly as for the ``pytest`` console script.
    out = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/test_benchmarks.py", "tests/test_experiments.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "ModuleNotFoundError" not in out.stdout + out.stderr
    assert re.search(r"\d+ tests? collected", out.stdout), out.stdout[-2000:]
