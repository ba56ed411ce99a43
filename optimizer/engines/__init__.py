"""Serving-engine profiles: one module per engine and version family (see docs/sizing.md,
"Engine profiles"). :func:`profile_for` picks the profile of an (engine, version) pair.

vLLM-Ascend and MindIE are not modelled yet.
"""

from __future__ import annotations

from optimizer.engines import sglang, trtllm, vllm_v0, vllm_v1
from optimizer.engines.base import EngineDefaults, EngineProfile, kv_account

PROFILES: tuple[EngineProfile, ...] = (vllm_v0.PROFILE, vllm_v1.PROFILE, sglang.PROFILE, trtllm.PROFILE)
#: Default release per engine (the first profile of that engine, its first version).
DEFAULT_VERSION = {p.engine: p.default_version for p in reversed(PROFILES)}
def _release_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


#: Releases with a profile, per engine, oldest first.
KNOWN = {p.engine: tuple(sorted((v for q in PROFILES if q.engine == p.engine for v in q.versions), key=_release_key))
         for p in PROFILES}


def known_combinations() -> str:
    return "; ".join(f"{e}: {', '.join(vs)}" for e, vs in KNOWN.items())


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


__all__ = ["DEFAULT_VERSION", "KNOWN", "PROFILES", "EngineDefaults", "EngineProfile", "known_combinations",
           "kv_account", "profile_for"]
