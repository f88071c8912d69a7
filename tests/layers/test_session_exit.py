"""The suite's own exit (tests/session_exit.py) keeps pytest's status and runs the exit
handlers, with a daemon thread still running as Ray Serve's router loop is."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

SUITE = """
import atexit, pathlib, threading, time

threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()
atexit.register(lambda: pathlib.Path({marker!r}).write_text("ran"))

def test_one():
    assert {outcome}
"""


def run_suite(tmp_path, outcome: str) -> tuple[subprocess.CompletedProcess, str]:
    marker = tmp_path / "atexit-ran"
    (tmp_path / "test_suite.py").write_text(SUITE.format(marker=str(marker), outcome=outcome))
    plugins = ["-p", "no:cacheprovider", "-p", "tests.session_exit"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *plugins, "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, marker.read_text() if marker.exists() else ""


@pytest.mark.parametrize(("outcome", "status"), [("True", 0), ("False", 1)])
def test_the_status_is_pytests_and_exit_handlers_run(tmp_path, outcome, status):
    done, marker = run_suite(tmp_path, outcome)
    assert done.returncode == status, done.stdout + done.stderr
    assert ("1 passed" if status == 0 else "1 failed") in done.stdout
    assert marker == "ran"
