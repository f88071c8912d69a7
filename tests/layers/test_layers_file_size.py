"""No module of the product or its benchmarks is longer than a reader can hold: 400 lines."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400


def test_no_file_is_over_400_lines():
    too_long = {
        str(path.relative_to(ROOT)): n
        for folder in ("serving", "tokenizer_ext", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(path.read_text("utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}
