"""``python -m models.training``: train the demo checkpoint, then evaluate it.

Any training flag may be given (``--out``, ``--validation-cells`` for a pilot, ...); the
evaluation then reads the same folder and, for a pilot, the same validation cells.
"""

from __future__ import annotations

import sys

from models.training import evaluate, train


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    out, settings = train.parse_args(argv)
    train.main(argv)
    evaluation = ["--model", str(out)]
    if settings.validation_cells:
        evaluation += ["--validation-cells", str(settings.validation_cells)]
    evaluate.main(evaluation)


if __name__ == "__main__":
    main()
