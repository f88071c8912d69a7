"""The one place that reads environment variables: ``C2S_*`` settings for the CLI edge."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class C2SSettings(BaseSettings):
    """Defaults that operators set in the environment (e.g. from a Kubernetes Secret).

    Attributes
    ----------
    api_key
        ``C2S_API_KEY``: the gateway's bearer key.
    model
        ``C2S_MODEL``: checkpoint path or Hugging Face id.
    """

    model_config = SettingsConfigDict(env_prefix="C2S_", extra="ignore")

    api_key: SecretStr | None = None
    model: str | None = None
