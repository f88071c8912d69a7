"""Where vLLM's and Ray's logs go: a log file (default) or the terminal (``--verbose``).

Called once by each command, at the edge, before an engine starts. vLLM's engine core runs
in a child process, so the routing is set both here (``logging.config``) and in the
environment that child inherits (``VLLM_CONFIGURE_LOGGING`` / ``VLLM_LOGGING_CONFIG_PATH``,
read when vLLM is imported there); Ray workers inherit the same environment. Warnings and
errors always reach the terminal as well.
"""

from __future__ import annotations

import json
import logging.config
import os
from pathlib import Path

#: loggers of the libraries under the engine; their INFO lines go to the log file
LIBRARY_LOGGERS = ("vllm", "ray", "transformers", "torch")
FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def logging_config(log_file: Path) -> dict:
    """A `logging.config.dictConfig` schema: INFO and up to the file, WARNING and up to stderr."""
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
                "level": "WARNING",
            },
        },
        "loggers": {
            name: {"handlers": ["file", "terminal"], "level": "INFO", "propagate": False}
            for name in LIBRARY_LOGGERS
        },
    }


def route_library_logs(log_file: Path, verbose: bool = False) -> Path | None:
    """Send the libraries' logs to ``log_file`` (returned), or leave them on the terminal."""
    if verbose:
        return None
    log_file.parent.mkdir(parents=True, exist_ok=True)
    config = logging_config(log_file)
    config_path = log_file.with_name(log_file.name + ".config.json")
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(config_path.resolve())
    # Ray Serve's own request and replica lines stay in Ray's session log files
    os.environ["RAY_SERVE_LOG_TO_STDERR"] = "0"
    logging.config.dictConfig(config)
    return log_file
