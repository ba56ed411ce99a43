"""Name resolution: aliases, HF ids, paths and dropped-in config.json files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from optimizer.errors import CatalogError
from optimizer.loaders import field_path, load_catalog, resolve_gpu, resolve_model
from tests.conftest import REPO


def test_aliases_and_hf_ids_resolve() -> None:
    cat = load_catalog()
    assert resolve_gpu("h20", cat).name == "H20-96GB"
    assert resolve_gpu("910B", cat).name == "Ascend-910B-64GB"
    assert resolve_model("Qwen/Qwen1.5-110B-Chat", cat).name == "Qwen1.5-110B"
    assert resolve_model("meta-llama/Llama-2-7b-chat-hf", cat).config["hidden_size"] == 4096


@pytest.mark.parametrize("typo", ["H2O-96GB", "H2O"])
def test_unknown_gpu_suggests_closest(typo: str) -> None:
    """Typos match canonical names and aliases ("H2O" is near the alias "H20")."""
    with pytest.raises(CatalogError) as exc:
        resolve_gpu(typo, load_catalog())
    assert exc.value.hint == "did you mean 'H20-96GB'?"


def test_dropped_in_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config.json dropped into catalogs/models/ is found by its name, without a registry entry."""
    root = tmp_path / "catalogs"
    shutil.copytree(REPO / "catalogs", root)
    (root / "models" / "My-7B").mkdir()
    shutil.copy(root / "models" / "Qwen2-7B.json", root / "models" / "My-7B" / "config.json")
    shutil.copy(root / "models" / "Mistral-7B.json", root / "models" / "Other-7B.json")
    monkeypatch.setenv("PROCURE_CATALOG", str(root))
    cat = load_catalog()
    mine = resolve_model("My-7B", cat)
    assert mine.name == "My-7B" and mine.source is None and mine.config["num_key_value_heads"] == 4
    assert resolve_model("Other-7B", cat).config["sliding_window"] == 4096


def test_config_path_relative_to_scenario(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    shutil.copy(REPO / "catalogs" / "models" / "Llama-2-7B.json", tmp_path / "cfg" / "config.json")
    assert resolve_model("cfg/config.json", load_catalog(), base=tmp_path).name == "cfg"
    assert resolve_model("cfg", load_catalog(), base=tmp_path).name == "cfg"


def test_field_path_hides_union_tags() -> None:
    assert field_path(["workloads", 1, "inference", "slo", "tpot_ms"]) == "workloads[1].slo.tpot_ms"


def test_consumer_gpus_need_opt_in() -> None:
    """GeForce cards are not licensed for datacenters (driver EULA 2.1.3): left out unless asked for."""
    from optimizer.loaders import resolve_scenario
    from optimizer.schema.scenario import Scenario
    from tests.conftest import BASE_SCENARIO

    def allowed(constraints: dict[str, object]) -> set[str]:
        data = {**BASE_SCENARIO, "constraints": constraints}
        return set(resolve_scenario(Scenario.model_validate(data), Path("s.yaml"), load_catalog()).gpus)

    assert "RTX-4090-24GB" not in allowed({})
    assert "H100-SXM-80GB" in allowed({})
    assert "RTX-4090-24GB" in allowed({"allow_consumer_gpus": True})
    assert allowed({"gpus": ["RTX-4090-24GB"]}) == {"RTX-4090-24GB"}


def test_field_path_dict_keys() -> None:
    """A bad dict key is named as a key; a huge or unprintable one is quoted and cut to ~80 characters."""
    assert field_path(["prices", 1, "[key]"]) == "prices.1 (key)"
    assert field_path(["prices", "H20", "[key]"]) == "prices.H20 (key)"
    long = field_path(["prices", "k" * 20_000])
    assert long.startswith("prices.'kkk") and long.endswith("(20,000 characters)") and len(long) < 120
    assert field_path(["prices", "a\tb"]) == "prices.'a\\tb'"
    assert field_path([]) == "(top level)"
