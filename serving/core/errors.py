"""Typed errors raised by the serving core.

The core never knows about HTTP: the gateway maps these classes to status codes in
one place. Each error carries what a caller needs to fix the request.
"""

from __future__ import annotations


class C2SError(Exception):
    """Base of every error the core raises on purpose."""

    #: the request field at fault, mirrored into the OpenAI envelope's ``param``
    param: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param

    def __reduce__(self):
        # Subclasses take other constructor arguments; rebuild from state so that errors
        # cross process boundaries (Ray Serve replicas) intact.
        return (_rebuild_error, (type(self), self.args, self.__dict__))


def _rebuild_error(cls: type[C2SError], args: tuple, state: dict) -> C2SError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class InvalidRequest(C2SError):
    """The caller's input cannot be served as given."""


class PromptTooLong(InvalidRequest):
    """A prompt does not fit the model's context window."""

    param = "input_tokens"

    def __init__(self, prompt_tokens: int, max_model_len: int, *, detail: str = "") -> None:
        self.prompt_tokens = prompt_tokens
        self.max_model_len = max_model_len
        # vLLM needs one free position for the first generated token
        message = (
            f"The prompt has {prompt_tokens} tokens, but this model's maximum context "
            f"length is {max_model_len} tokens, and at least one token must be left for "
            f"the output. Shorten the prompt to at most {max_model_len - 1} tokens"
            f"{' (' + detail + ')' if detail else ''}."
        )
        super().__init__(message)


class BatchItemError(InvalidRequest):
    """One item of a batch is invalid; the message names its index."""

    def __init__(self, index: int, error: C2SError) -> None:
        self.index = index
        self.cause = error
        super().__init__(f"inputs[{index}]: {error.message}", param=f"inputs[{index}]")


class ConfigError(C2SError, ValueError):
    """A component configuration is inconsistent with what it configures."""


class EngineUnavailable(C2SError):
    """The engine is not running or has died; retrying later may succeed."""


class UnknownTask(InvalidRequest):
    """A task name that the registry does not declare."""

    param = "task"

    def __init__(self, name: str, valid: tuple[str, ...]) -> None:
        self.name = name
        self.valid = valid
        super().__init__(f"Unknown task {name!r}. Valid tasks: {', '.join(valid)}.")


class InvalidTaskInput(InvalidRequest):
    """A task's input fails its model's validation, or names a template that does not exist.

    ``errors`` holds pydantic-style error dicts (``loc``, ``msg``, ``type``) so that a
    gateway can report every problem at once.
    """

    def __init__(
        self, task: str, message: str, *, errors: tuple[dict, ...] = (), param: str | None = None
    ) -> None:
        self.task = task
        self.errors = errors
        super().__init__(f"Invalid input for task {task!r}: {message}", param=param)
