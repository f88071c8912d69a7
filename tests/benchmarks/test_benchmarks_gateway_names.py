"""The benchmarks' task requests name the model `c2s serve` serves for their checkpoint."""

from __future__ import annotations

from benchmarks.paths.gateway_load import served_model, task_request
from serving.ray_serve.config import AppConfig

PARAMS = {"min_tokens": 16, "max_tokens": 16, "temperature": 0.0, "top_p": 1.0, "top_k": 0}


def test_requests_name_the_served_checkpoint_and_task(tmp_path):
    for name in ("pythia-410m-random", "c2s-demo-pythia"):
        checkpoint = tmp_path / name
        checkpoint.mkdir()
        served = AppConfig(engine={"model": str(checkpoint)}).gateway.model_name
        assert served_model(checkpoint) == served == name
        request = task_request(served, "cell_type_prediction", PARAMS, {"cell": "CD3D"})
        assert request["model"] == f"{name}/cell_type_prediction"
        assert request["extra_body"] == {
            "inputs": {"cell": "CD3D"},
            "min_tokens": 16,
            "ignore_eos": True,
        }
