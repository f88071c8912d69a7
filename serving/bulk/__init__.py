"""Bulk annotation of ``.h5ad`` atlases with the serving core (``c2s annotate``).

Plain classes, no CLI inside: `AnnotateConfig` is built at the edge, `open_runner` gives
the `TaskRunner` of its execution mode (in-process, Ray Serve, remote gateway), and
`AnnotationJob` checks the input, answers the cells shard by shard (resumable), and writes
Parquet, ``annotated.h5ad``, ``report.json`` and plots.

Examples
--------
>>> config = AnnotateConfig(input=path, out=out, execution=ExecutionConfig(...))  # doctest: +SKIP
>>> result = await annotate(config)  # doctest: +SKIP
"""

from serving.bulk.answer import PipelineRunner
from serving.bulk.backends import open_runner
from serving.bulk.config import AnnotateConfig, ExecutionConfig
from serving.bulk.errors import AnnotateError, InputError, RemoteError, ResumeMismatch
from serving.bulk.job import AnnotationJob, RunResult, annotate
from serving.bulk.progress import NullProgress, ProgressListener, RichProgress
from serving.bulk.remote import GatewayRunner
from serving.bulk.runners import Answer, TaskRunner

__all__ = [
    "AnnotateConfig",
    "AnnotateError",
    "AnnotationJob",
    "Answer",
    "ExecutionConfig",
    "GatewayRunner",
    "InputError",
    "NullProgress",
    "PipelineRunner",
    "ProgressListener",
    "RemoteError",
    "ResumeMismatch",
    "RichProgress",
    "RunResult",
    "TaskRunner",
    "annotate",
    "open_runner",
]
