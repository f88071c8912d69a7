"""`GenerationParams`: engine-neutral sampling settings for one request."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: the most ids one request may ask ``logprob_token_ids`` for (vLLM's limit)
MAX_LOGPROB_TOKEN_IDS = 128


class GenerationParams(BaseModel):
    """Sampling settings, in OpenAI's vocabulary, that the adapter maps to vLLM's.

    ``max_tokens=None`` fills the rest of the context. An explicit ``max_tokens`` larger
    than the room left after the prompt is clamped to that room, as vLLM's engine does.
    ``top_k=None`` disables top-k; ``temperature=0`` is greedy.

    ``choices`` restricts the output to exactly one of the given strings, and ``regex`` to
    text matching a regular expression (structured outputs). ``logprob_token_ids`` asks
    for the raw log-probabilities of exactly these next-token ids at every step (in
    ``TokenLogprob.top``); one step with them scores a set of continuations' next tokens.
    ``forced_token_ids`` makes the output exactly these tokens (``max_tokens`` of them at
    most); with ``logprobs=0`` every step reports the model's raw log-probability of its
    forced token, so one request scores a whole continuation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int | None = Field(default=16, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1)
    min_tokens: int = Field(default=0, ge=0)
    n: int = Field(default=1, ge=1, le=64)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    logprobs: int | None = Field(default=None, ge=0, le=20)
    repetition_penalty: float = Field(default=1.0, gt=0.0, le=2.0)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    ignore_eos: bool = False
    choices: tuple[str, ...] = ()
    regex: str | None = Field(default=None, min_length=1)
    logprob_token_ids: tuple[int, ...] = Field(default=(), max_length=MAX_LOGPROB_TOKEN_IDS)
    forced_token_ids: tuple[int, ...] = ()

    @model_validator(mode="after")
    def _several_choices_need_sampling(self) -> GenerationParams:
        if self.n > 1 and self.temperature == 0.0:
            raise ValueError(
                f"n={self.n} asks for several choices, but temperature=0 is greedy and "
                "would return the same text each time: set temperature > 0 or n=1."
            )
        return self

    @model_validator(mode="after")
    def _one_output_constraint(self) -> GenerationParams:
        if self.choices and self.regex is not None:
            raise ValueError("choices and regex both constrain the output: set one of them.")
        if any(not c for c in self.choices):
            raise ValueError("choices must be non-empty strings.")
        if any(t < 0 for t in self.logprob_token_ids):
            raise ValueError("logprob_token_ids must be token ids (>= 0).")
        if any(t < 0 for t in self.forced_token_ids):
            raise ValueError("forced_token_ids must be token ids (>= 0).")
        if self.forced_token_ids and (self.choices or self.regex is not None or self.n > 1):
            raise ValueError("forced_token_ids fix the one output: no choices, regex or n > 1.")
        return self

    @classmethod
    def greedy(cls, max_tokens: int | None, **overrides: object) -> GenerationParams:
        return cls(max_tokens=max_tokens, temperature=0.0, **overrides)
