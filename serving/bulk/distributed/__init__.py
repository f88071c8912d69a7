"""Bulk annotation spread over a Ray cluster (``c2s annotate --mode distributed``).

The driver (`DistributedJob`) plans and commits exactly as a local run does; Ray tasks
(`worker.answer_range`) each read, rank, build and decode their own row ranges of the
file; the engines are the Serve application's replicas or actors the job starts
(`engines`). `ranges` says what a task needs to make the sentences a local run makes.
"""

from serving.bulk.distributed.driver import DistributedJob, Engines, open_engines

__all__ = ["DistributedJob", "Engines", "open_engines"]
