"""What a measurement ran on: CPU, cores and library versions (no TensorFlow import).

Accuracies of quantized models and every timing depend on the CPU: LiteRT and XNNPACK pick
different integer kernels (AVX2, AVX-512 VNNI, AMX) that round differently. Results carry
this record so that a figure is never read without the machine it came from.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from importlib import metadata
from typing import Any

# Instruction-set extensions that change which kernels LiteRT, XNNPACK and oneDNN run.
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
PACKAGES = ("mobilenet-v2", "ai-edge-litert", "numpy", "pillow", "tensorflow", "keras")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which containers narrow), not the
    machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@cache
def machine_info() -> dict[str, Any]:
    """CPU model and ISA flags, core counts, Python and the installed versions of PACKAGES
    (read from package metadata, so nothing heavy is imported)."""
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    usable = usable_cpus()
    return {
        "cpu": cpu.get("model name") or platform.processor() or platform.machine(),
        "cpu_id": {k: cpu[k] for k in ("vendor_id", "cpu family", "model") if k in cpu},
        "cpu_flags": [f for f in KERNEL_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in PACKAGES if _version(name)},
    }


def describe(info: dict[str, Any] | None = None) -> str:
    """One line for the foot of a table: CPU, flags, cores, key library versions."""
    info = info or machine_info()
    flags = ", ".join(info["cpu_flags"]) or "no AVX2"
    cpu_id = info["cpu_id"]
    family, model = cpu_id.get("cpu family"), cpu_id.get("model")
    ident = f" (family {family} model {model})" if family and model else ""
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if k != "mobilenet-v2")
    return f"{info['cpu']}{ident}; {flags}; {info['usable_cores']} cores; {versions}"


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty elsewhere than Linux)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def package_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    """The installed version of each package, None where it is not installed (read from the
    installation's metadata: nothing is imported)."""
    return {name: _version(name) for name in packages}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
