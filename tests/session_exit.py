"""End the test process once pytest has reported, without the interpreter's teardown.

Ray Serve starts a router event loop in a daemon thread of every process that calls a
deployment handle (the driver here), and ``serve.shutdown`` / ``ray.shutdown`` leave it
running, beside Ray's own driver threads. CPython's finalization racing those threads
segfaulted the CI run of stop 29 after all 906 tests had passed, which turned a green
run into exit 2. So the process exits here, with pytest's status, after the exit
handlers (``atexit``: Ray's, multiprocessing's, pytest's temporary-folder locks) have run.
"""

from __future__ import annotations

import atexit
import os
import sys

import pytest

EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    status = config.stash.get(EXIT_STATUS, None)
    if status is None:  # no session ran (--help, --version)
        return
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
