"""Serving-engine profiles: one module per engine and version family (see docs/sizing.md,
"Engine profiles"). :func:`profile_for` picks the profile of an (engine, version) pair;
:func:`check_engine_gpu` refuses an NPU-only engine (vLLM-Ascend, MindIE) on a non-Ascend GPU.
"""

from __future__ import annotations

from collections.abc import Iterable

from optimizer.engines import mindie, sglang, trtllm, vllm_ascend, vllm_v0, vllm_v1
from optimizer.engines.base import EngineDefaults, EngineProfile, kv_account

PROFILES: tuple[EngineProfile, ...] = (vllm_v0.PROFILE, vllm_v1.PROFILE, sglang.PROFILE, trtllm.PROFILE,
                                      vllm_ascend.PROFILE, mindie.PROFILE)
#: Default release per engine (the first profile of that engine, its first version).
DEFAULT_VERSION = {p.engine: p.default_version for p in reversed(PROFILES)}
def _release_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


#: Releases with a profile, per engine, oldest first.
KNOWN = {p.engine: tuple(sorted((v for q in PROFILES if q.engine == p.engine for v in q.versions), key=_release_key))
         for p in PROFILES}


def known_combinations() -> str:
    return "; ".join(f"{e}: {', '.join(vs)}" for e, vs in KNOWN.items())


#: Engines that run on Ascend NPUs only (their memory rules read the NPU runtime's figures).
ASCEND_ONLY = ("vllm-ascend", "mindie")


def is_ascend(gpu: object) -> bool:
    """An Ascend NPU of the catalog (``architecture`` "Da Vinci ...", or vendor Huawei)."""
    arch = str(getattr(gpu, "architecture", "") or "")
    return arch.startswith("Da Vinci") or str(getattr(gpu, "vendor", "") or "").lower() == "huawei"


def check_engine_gpu(engine: str, gpu: object | None, *, field: str = "--engine") -> None:
    """UsageError (exit 2) when ``engine`` runs on Ascend NPUs only and ``gpu`` is not one
    (``None``: memory given as a number, nothing to check)."""
    from optimizer.errors import UsageError

    if gpu is None or engine not in ASCEND_ONLY or is_ascend(gpu):
        return
    raise UsageError(f"{engine} runs on Ascend NPUs only, not on {getattr(gpu, 'name', gpu)}", field=field,
                     hint="pick an Ascend GPU (e.g. Ascend-910B-64GB) or --engine vllm, sglang or trtllm")


def check_engine_gpus(engine: str, gpus: Iterable[object], *, field: str = "serving.engine") -> None:
    """UsageError (exit 2) when ``engine`` runs on Ascend NPUs only and a scenario allows another
    GPU: the plan would size that GPU with the NPU runtime's figures."""
    from optimizer.errors import UsageError

    if engine not in ASCEND_ONLY:
        return
    others = sorted(str(getattr(g, "name", g)) for g in gpus if not is_ascend(g))
    if others:
        raise UsageError(f"{engine} runs on Ascend NPUs only; the scenario also allows {', '.join(others[:3])}"
                         + (f" and {len(others) - 3} more" if len(others) > 3 else ""), field=field,
                         hint="set constraints.gpus to Ascend GPUs (e.g. [Ascend-910B-64GB]) or use --engine "
                              "vllm, sglang or trtllm")


def profile_for(engine: str, version: str | None = None) -> EngineProfile:
    """The profile of ``engine`` at ``version`` (its default release when None); UsageError
    naming the known combinations otherwise."""
    from optimizer.errors import UsageError

    if engine not in KNOWN:
        raise UsageError(f"unknown engine {engine!r}", field="engine",
                         hint=f"use one of {', '.join(KNOWN)}")
    version = version or DEFAULT_VERSION[engine]
    for p in PROFILES:
        if p.engine == engine and version in p.versions:
            return p
    raise UsageError(f"unknown {engine} version {version!r}", field="engine_version",
                     hint=f"known engine versions: {known_combinations()}")


__all__ = ["ASCEND_ONLY", "DEFAULT_VERSION", "KNOWN", "PROFILES", "EngineDefaults", "EngineProfile",
           "check_engine_gpu", "check_engine_gpus", "is_ascend", "known_combinations", "kv_account", "profile_for"]
