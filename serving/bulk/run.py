"""`annotate`: open the configured runner, run the job, close the runner."""

from __future__ import annotations

from serving.bulk.backends import open_runner
from serving.bulk.config import AnnotateConfig
from serving.bulk.job import AnnotationJob, RunResult, preflight
from serving.bulk.progress import ProgressListener


async def annotate(config: AnnotateConfig, progress: ProgressListener | None = None) -> RunResult:
    """Run ``config`` end to end in its execution mode (local, Ray Serve or endpoint).

    The input is checked before the engine starts or a cluster is reached.
    """
    source = preflight(config)
    async with open_runner(config.execution) as runner:
        return await AnnotationJob(config, runner, progress=progress).run(source)
