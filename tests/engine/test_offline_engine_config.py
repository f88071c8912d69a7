"""The offline job's engine settings: every core, chunked prefill on, options win."""

from __future__ import annotations

from serving.engine import EngineConfig


def test_an_offline_job_owns_the_cores_and_chunks_prefill():
    config = EngineConfig.for_offline_job("m")
    assert (config.model, config.cpu_cores) == ("m", "all")
    assert config.chunked_prefill(on_cpu=True) is True
    assert EngineConfig(model="m").chunked_prefill(on_cpu=True) is False  # the server's


def test_options_override_the_offline_defaults():
    config = EngineConfig.for_offline_job("m", cpu_cores="server", enable_chunked_prefill=None)
    assert config.cpu_cores == "server" and config.chunked_prefill(on_cpu=True) is False
