"""`TaskRegistry`: look tasks up by name; swap a task's templates for a user's file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path

from serving.core.errors import UnknownTask
from serving.core.tasks.spec import TaskSpec
from serving.core.tasks.templates import load_template_file


class TaskRegistry:
    """An immutable, ordered set of task declarations.

    Parameters
    ----------
    specs
        The declarations; names must be unique.
    """

    def __init__(self, specs: Iterable[TaskSpec]) -> None:
        self._specs: dict[str, TaskSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"task {spec.name!r} is declared twice")
            self._specs[spec.name] = spec

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def get(self, name: str) -> TaskSpec:
        """The task called ``name``; raises `UnknownTask` listing the valid names."""
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownTask(name, self.names) from None

    def __getitem__(self, name: str) -> TaskSpec:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def with_templates(self, overrides: Mapping[str, str | Path]) -> TaskRegistry:
        """A registry in which each named task uses the template file given for it.

        Each file has C2S's shape, ``{"model_input": [...], "response": [...]}``, and may
        only use placeholders its task fills (`TemplateError` otherwise).
        """
        replaced = {
            name: self.get(name).with_templates(load_template_file(path))
            for name, path in overrides.items()
        }
        return TaskRegistry(replaced.get(spec.name, spec) for spec in self)


@cache
def default_registry() -> TaskRegistry:
    """The twelve built-in tasks with their packaged templates (loaded once)."""
    from serving.core.tasks.declarations import builtin_tasks

    return TaskRegistry(builtin_tasks())
