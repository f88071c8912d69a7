"""Where vLLM's and Ray's logs go: a log file (default) or the terminal (``--verbose``).

Called once by each command, at the edge, before an engine starts. vLLM's engine core runs
in a child process, so the routing is set both here (``logging.config``) and in the
environment that child inherits (``VLLM_CONFIGURE_LOGGING`` / ``VLLM_LOGGING_CONFIG_PATH``,
read when vLLM is imported there); Ray workers inherit the same environment. Child
processes and C++ code write to file descriptors 1 and 2, not to Python's streams, so those
descriptors point at the log file while ``sys.stdout``/``sys.stderr`` keep the terminal: our
own lines, progress bars and warnings stay visible, the libraries' start-up chatter (vLLM's
warnings about Triton, NUMA binding, shard loading bars) does not. Library errors still reach
the terminal.
"""

from __future__ import annotations

import json
import logging.config
import os
import sys
from pathlib import Path
from typing import TextIO

#: loggers of the libraries under the engine; their INFO lines go to the log file
LIBRARY_LOGGERS = ("vllm", "ray", "transformers", "torch")
FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def logging_config(log_file: Path, terminal: bool = True) -> dict:
    """A `logging.config.dictConfig` schema: INFO and up to the file, ERROR and up to stderr.

    Without ``terminal`` (the engine core child, whose stderr is the log file already) the
    file is the only handler, so no line is written there twice.
    """
    handlers = ["file", "terminal"] if terminal else ["file"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_file.resolve()),
                "formatter": "plain",
                "level": "INFO",
            },
            "terminal": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "plain",
                "level": "ERROR",
            },
        },
        "loggers": {
            name: {"handlers": handlers, "level": "INFO", "propagate": False}
            for name in LIBRARY_LOGGERS
        },
    }


def route_library_logs(log_file: Path, verbose: bool = False) -> Path | None:
    """Send the libraries' logs to ``log_file`` (returned), or leave them on the terminal."""
    if verbose:
        return None
    log_file.parent.mkdir(parents=True, exist_ok=True)
    config_path = log_file.with_name(log_file.name + ".config.json")
    child_config = logging_config(log_file, terminal=False)
    config_path.write_text(json.dumps(child_config, indent=2) + "\n")
    os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(config_path.resolve())
    # Ray Serve's own request and replica lines stay in Ray's session log files
    os.environ["RAY_SERVE_LOG_TO_STDERR"] = "0"
    _descriptors_to_file(log_file)
    logging.config.dictConfig(logging_config(log_file))  # after: its stderr is the terminal
    return log_file


def _descriptors_to_file(log_file: Path) -> None:
    """Point fds 1 and 2 at ``log_file``; rebind ``sys.stdout``/``sys.stderr`` to the terminal.

    Only when Python's streams are the process's own descriptors: under pytest's capture or
    Typer's test runner they are not, and those must keep what they capture.
    """
    if not (_is_descriptor(sys.stdout, 1) and _is_descriptor(sys.stderr, 2)):
        return
    log_fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        sys.stdout = _moved_stream(sys.stdout, 1, log_fd)
        sys.stderr = _moved_stream(sys.stderr, 2, log_fd)
    finally:
        os.close(log_fd)


def _is_descriptor(stream: TextIO, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):
        return False


def _moved_stream(stream: TextIO, fd: int, log_fd: int) -> TextIO:
    """A new stream on a copy of ``fd`` (the terminal), after ``fd`` itself is the log file."""
    stream.flush()
    terminal = os.fdopen(
        os.dup(fd), "w", buffering=1, encoding=stream.encoding, errors=stream.errors
    )
    os.dup2(log_fd, fd)
    return terminal
