"""``c2s demo`` on a terminal: our own lines and the progress bar, engine logs in a file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

#: the demo's own lines, one per message even when piped (header, log file, the bar's final
#: frame, three summary lines, the held-out line), and room for two warnings; with vLLM's
#: INFO logs it printed about 70, and with vLLM's start-up warnings on the terminal 39
MOST_LINES = 9
INFO_LINE = re.compile(r"\bINFO\b")
HEADER = re.compile(r"c2s demo: \S+ \(\.raw\) with /\S+/c2s-demo-pythia")
OUTPUTS = re.compile(r"outputs in \S+: .*, report\.json")
HELD_OUT = re.compile(r"held-out accuracy: .* were training cells\)")


@pytest.mark.slow
def test_c2s_demo_prints_its_own_lines_and_routes_vllm_logs_to_a_file(tmp_path):
    # the installed entry point, away from the repository root, as `make demo` runs it: the
    # tooling beside the product (models/, benchmarks/) is not importable there
    c2s = Path(sys.executable).parent / "c2s"
    run = subprocess.run(
        [str(c2s), "demo", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) <= MOST_LINES, "\n".join(lines)
    assert not [line for line in lines if INFO_LINE.search(line)]
    # whole messages although piped (rich wraps at 80 columns off a terminal, inside paths)
    for whole in (HEADER, OUTPUTS, HELD_OUT):
        assert any(whole.fullmatch(line) for line in lines), whole.pattern
    assert any(re.search(r"annotating .* 700/700", line) for line in lines)
    assert any(line.startswith("700 cells annotated (700 now, 0 resumed)") for line in lines)
    assert any(line.startswith("accuracy against bulk_labels: ") for line in lines)
    log = (tmp_path / "out" / "engine.log").read_text()
    assert INFO_LINE.search(log) and "vllm" in log
    # the engine core is a child process: its lines land in the same file, and so does what
    # C++ code and progress bars write to its stderr
    assert "EngineCore" in log
    assert "Loading safetensors checkpoint shards" in log
