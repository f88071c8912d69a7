"""The logical call stacks of the product's files while some code runs, across asyncio tasks.

`sys.setprofile` sees every Python call; a coroutine run as its own task (``gather``,
``ensure_future``) starts from the event loop, so the task factory here records, for each
task, the stack of the code that created it, and a call inside the task is read as that
stack plus its own frames. Only frames of ``serving/`` and ``tokenizer_ext/`` are kept,
and a run of frames in one file counts as one step.

What a reviewer follows is the *spine*: the stacks at the moments the work reaches a
boundary (the engine, the tokenizer's token ids, a task's answer parser...). Helpers
called on the way (a registry lookup, a config, an error type) return at once and are
read only if wanted.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("serving/", "tokenizer_ext/")
#: where the event loop steps a task: a task's own frames end here, and what is above it
#: (the code that runs the loop) is not the task's caller; its creator's stack is
_LOOP_STEP = asyncio.base_events.BaseEventLoop._run_once.__code__

#: one frame: (file relative to the repository, qualified name of its function)
Frame = tuple[str, str]


def _product_frames(frame: FrameType | None) -> list[Frame]:
    frames = []
    while frame is not None and frame.f_code is not _LOOP_STEP:
        name = frame.f_code.co_filename
        if name.startswith(str(ROOT)):
            relative = name[len(str(ROOT)) + 1 :]
            if relative.startswith(PRODUCT):
                frames.append((relative, frame.f_code.co_qualname))
        frame = frame.f_back
    frames.reverse()
    return frames


@dataclass
class CallPaths:
    """Every logical stack seen while `trace` ran, those that reached a boundary, and how
    often each function was called.

    Parameters
    ----------
    is_boundary
        Whether a frame (file, qualified name) is a boundary of the walk.
    """

    is_boundary: Callable[[Frame], bool]
    stacks: set[tuple[Frame, ...]] = field(default_factory=set)
    spine: list[tuple[Frame, ...]] = field(default_factory=list)
    calls: Counter[Frame] = field(default_factory=Counter)
    _creators: dict[int, list[Frame]] = field(default_factory=dict)
    _thread: threading.local = field(default_factory=threading.local)

    def _logical(self, frame: FrameType | None) -> list[Frame]:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # a worker thread: the stack that handed it the work
            task = None
        if task is None:
            base = getattr(self._thread, "stack", [])
        else:
            base = self._creators.get(id(task), [])
        return base + _product_frames(frame)

    def _on_call(self, frame: FrameType, event: str, arg: object) -> None:
        if event != "call" or not frame.f_code.co_filename.startswith(str(ROOT)):
            return
        stack = tuple(self._logical(frame))
        if not stack:
            return
        self.stacks.add(stack)
        self.calls[stack[-1]] += 1
        if self.is_boundary(stack[-1]) and not any(self.is_boundary(f) for f in stack[:-1]):
            self.spine.append(stack)

    def _task_factory(self, loop, coro, **kwargs):
        task = asyncio.Task(coro, loop=loop, **kwargs)
        self._creators[id(task)] = self._logical(sys._getframe(1))
        return task

    def _in_executor(self, run_in_executor: Callable) -> Callable:
        def run(executor, func, *args):
            stack = self._logical(sys._getframe(1))

            def in_thread(*values):
                self._thread.stack = stack
                try:
                    return func(*values)
                finally:
                    self._thread.stack = []

            return run_in_executor(executor, in_thread, *args)

        return run

    @contextmanager
    def trace(self, loop: asyncio.AbstractEventLoop) -> Iterator[CallPaths]:
        """Record the calls made meanwhile in this thread, the tasks of ``loop`` and the
        threads it starts for ``asyncio.to_thread``."""
        previous = loop.get_task_factory()
        loop.set_task_factory(self._task_factory)
        loop.run_in_executor = self._in_executor(loop.run_in_executor)
        threading.setprofile(self._on_call)
        sys.setprofile(self._on_call)
        try:
            yield self
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
            del loop.run_in_executor
            loop.set_task_factory(previous)

    def walk(self, start: Frame) -> list[str]:
        """The files of the spine below ``start`` (a frame of the route or command), in the
        order they are first reached."""
        files: list[str] = []
        for stack in self.spine:
            if start not in stack:
                continue
            for path, _ in stack[stack.index(start) :]:
                if path not in files:
                    files.append(path)
        return files

    def returns_to_a_caller(self) -> list[tuple[str, ...]]:
        """Stacks that leave a file and come back into it further down (A -> B -> A).

        A callable that a caller handed down (a closure or lambda of another file, such as
        a ``params_for`` or the job's per-shard ``answer``) starts a new run of the stack:
        calling it is the receiver's job, not a return to the caller.
        """
        found = []
        for stack in self.stacks:
            runs: list[list[str]] = [[]]
            for i, (path, name) in enumerate(stack):
                if "<locals>" in name and i > 0 and stack[i - 1][0] != path:
                    runs.append([])
                files = runs[-1]
                if not files or files[-1] != path:
                    files.append(path)
            found += [tuple(files) for files in runs if len(files) != len(set(files))]
        return sorted(set(found))
