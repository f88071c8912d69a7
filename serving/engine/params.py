"""`GenerationParams`: engine-neutral sampling settings for one request."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class GenerationParams(BaseModel):
    """Sampling settings, in OpenAI's vocabulary, that the adapter maps to vLLM's.

    ``max_tokens=None`` fills the rest of the context. An explicit ``max_tokens`` larger
    than the room left after the prompt is clamped to that room, as vLLM's engine does.
    ``top_k=None`` disables top-k; ``temperature=0`` is greedy.
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

    @model_validator(mode="after")
    def _several_choices_need_sampling(self) -> GenerationParams:
        if self.n > 1 and self.temperature == 0.0:
            raise ValueError(
                f"n={self.n} asks for several choices, but temperature=0 is greedy and "
                "would return the same text each time: set temperature > 0 or n=1."
            )
        return self

    @classmethod
    def greedy(cls, max_tokens: int | None, **overrides: object) -> GenerationParams:
        return cls(max_tokens=max_tokens, temperature=0.0, **overrides)
