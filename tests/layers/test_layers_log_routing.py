"""Where output goes once a command routes the libraries' logs to a file."""

from __future__ import annotations

import subprocess
import sys
import textwrap

#: a command's process: our lines on Python's streams, a library's logger, a C-level write to
#: fd 2 (as vLLM's C++ kernels do) and a child process (as vLLM's engine core is)
SCRIPT = textwrap.dedent(
    """
    import logging, os, subprocess, sys
    from pathlib import Path
    from serving.cli.logs import route_library_logs

    route_library_logs(Path(sys.argv[1]))
    print("our line")
    print("our warning", file=sys.stderr)
    logging.getLogger("vllm.config").info("library info")
    logging.getLogger("vllm.config").warning("library warning")
    logging.getLogger("vllm.engine").error("library error")
    os.write(2, b"c-level warning\\n")
    subprocess.run([sys.executable, "-c", "import sys; print('child out'); "
                    "print('child err', file=sys.stderr)"], check=True)
    """
)


def test_our_lines_stay_on_the_terminal_and_the_rest_goes_to_the_file(tmp_path):
    log = tmp_path / "engine.log"
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log)], capture_output=True, text=True, check=True
    )
    assert run.stdout.splitlines() == ["our line"]
    terminal_err = run.stderr.splitlines()
    assert terminal_err[0] == "our warning"
    assert len(terminal_err) == 2 and terminal_err[1].endswith("vllm.engine: library error")
    logged = log.read_text()
    for line in (
        "library info",
        "library warning",
        "library error",
        "c-level warning",
        "child out",
        "child err",
    ):
        assert line in logged
    assert "our line" not in logged and "our warning" not in logged
    # the engine core child reads this config: only the file, so no line lands there twice
    child_config = (tmp_path / "engine.log.config.json").read_text()
    assert '"terminal"' not in child_config.split('"loggers"')[1]


def test_verbose_leaves_everything_on_the_terminal(tmp_path):
    verbose = SCRIPT.replace(
        "route_library_logs(Path(sys.argv[1]))",
        "route_library_logs(Path(sys.argv[1]), verbose=True)",
    )
    run = subprocess.run(
        [sys.executable, "-c", verbose, str(tmp_path / "x.log")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "child err" in run.stderr and "c-level warning" in run.stderr
    assert not (tmp_path / "x.log").exists()
