"""Bad YAML through the real CLI: exit 2, one message naming the file and the line or field, no
traceback, no hang (optimizer/yaml_safe.py and loaders.read_yaml)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from optimizer import yaml_safe
from tests.conftest import REPO, assert_user_error

Writer = Callable[[Any], Path]


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def test_duplicate_key_names_line_and_key(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    text = _yaml(base_scenario).replace("  budget: 5000000\n", "  budget: 5000000\n  budget: 100\n")
    line = text.splitlines().index("  budget: 100") + 1
    assert_user_error(["validate", str(write_scenario(text))], "scenario.yaml", "constraints.budget: ",
                      f"line {line}", "duplicate key 'budget'", "keep only the last")


def test_merge_key_may_be_overridden(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    """``<<: *base`` followed by an explicit key is an override, not a duplicate."""
    text = _yaml(base_scenario).replace("slo:", "slo: &slo") + \
        "whatif: []\nx_slo: {<<: *slo, tpot_ms: 50}\n"
    assert_user_error(["validate", str(write_scenario(text))], "x_slo", "unknown key")


def test_sexagesimal_is_a_string_not_90(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    text = _yaml(base_scenario).replace("tpot_ms: 60", "tpot_ms: 1:30")
    assert_user_error(["validate", str(write_scenario(text))], "workloads[0].slo.tpot_ms", "wrong type",
                      "'1:30'")


def test_yaml_1_2_numbers() -> None:
    assert yaml_safe.load("a: 2.0e9\nb: 1e3\nc: 010\nd: 1:30\ne: 0x1f\nf: 2024-06-01\ng: =\n") == {
        "a": 2.0e9, "b": 1000.0, "c": 10, "d": "1:30", "e": 31, "f": __import__("datetime").date(2024, 6, 1),
        "g": "="}
    assert yaml.safe_load("d: 1:30")["d"] == 90, "yaml.SafeLoader itself must stay untouched"


@pytest.mark.parametrize(("value", "tag"), [
    ("!!binary aGVsbG8=", "!!binary"), ("!!set {a, b}", "!!set"), ("!!omap [{a: 1}]", "!!omap"),
    ("!!pairs [{a: 1}]", "!!pairs"), ("!!timestamp 2024-01-01", "!!timestamp"),
    ("!!python/object:os.system ls", "!!python/object:os.system"), ("!custom 3", "!custom"),
    ("!!float 1", "!!float")])
def test_explicit_tags_refused(write_scenario: Writer, base_scenario: dict[str, Any], value: str,
                               tag: str) -> None:
    text = _yaml(base_scenario).replace("name: test", f"name: test\ndescription: {value}", 1)
    assert_user_error(["validate", str(write_scenario(text))], "description: line 2",
                      f"unsupported YAML tag {tag}")


def test_str_tag_allowed(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    text = _yaml(base_scenario).replace("name: test", "name: !!str 1:30", 1)
    path = write_scenario(text)
    from tests.conftest import run_cli
    res = run_cli("validate", str(path))
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("text", ["[" * 10_000, "a:\n" + "".join(" " * i + "- \n" for i in range(1, 200)),
                                  "{a: " * 5_000])
def test_deep_nesting_refused(write_scenario: Writer, text: str) -> None:
    assert_user_error(["validate", str(write_scenario(text))], "nested more than 64 levels deep", "line")


def _alias_bomb(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for name in "bcdefghijklmnop"[:levels - 1]:
        text += f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
        prev = name
    return text


def test_alias_bomb_refused_fast(write_scenario: Writer) -> None:
    bomb = _alias_bomb()
    assert len(bomb) < 1100
    start = time.perf_counter()
    assert_user_error(["validate", str(write_scenario(bomb))], "expands to more than 100,000 values")
    assert time.perf_counter() - start < 1.0
    start = time.perf_counter()
    with pytest.raises(yaml_safe.StrictYAMLError):
        yaml_safe.load(bomb)
    assert time.perf_counter() - start < 0.1


def test_recursive_alias_refused(write_scenario: Writer) -> None:
    assert_user_error(["validate", str(write_scenario("a: &a [1, *a]\n"))], "a[1]: line 1", "recursive alias")


def test_moderate_aliases_allowed() -> None:
    assert yaml_safe.load("a: &x {p: 1}\nb: *x\nc: [*x, *x]\n") == {"a": {"p": 1}, "b": {"p": 1},
                                                                 "c": [{"p": 1}, {"p": 1}]}


@pytest.mark.parametrize("char", ["\\x01", "\\x1b", "\\x7f", "\\x00", "\\ud800"])
def test_control_character_in_workload_name(write_scenario: Writer, base_scenario: dict[str, Any],
                                            char: str) -> None:
    text = _yaml(base_scenario).replace("name: chat", f'name: "ch{char}at"')
    line = text.splitlines().index(f'- name: "ch{char}at"') + 1
    assert_user_error(["validate", str(write_scenario(text))], "workloads[0].name: ", f"line {line}",
                      "control character")


def test_raw_control_byte_names_line(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    text = _yaml(base_scenario).replace("name: chat", "name: ch\x01at")
    line = text.splitlines().index("- name: ch\x01at") + 1
    assert_user_error(["validate", str(write_scenario(text))], f"line {line}", "U+0001")


def test_tab_and_newline_in_description_allowed(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    assert yaml_safe.load('d: "a\\tb\\nc\\r"') == {"d": "a\tb\nc\r"}


def test_control_character_in_key(write_scenario: Writer) -> None:
    assert_user_error(["validate", str(write_scenario('"na\\x02me": x\n'))], "line 1", "U+0002")


def test_long_name_is_not_echoed_whole(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    base_scenario["workloads"][0]["name"] = "a" * 20_000
    text = assert_user_error(["validate", str(write_scenario(base_scenario))], "workloads[0].name")
    assert len(text) < 600, text


def test_long_wrong_type_value_is_cut(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    base_scenario["workloads"][0]["requests_per_s"] = "b" * 20_000
    text = assert_user_error(["validate", str(write_scenario(base_scenario))],
                             "workloads[0].requests_per_s", "wrong type", "…", "(20,000 characters)")
    assert len(text) < 600, text


def test_long_unknown_key_is_cut(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    base_scenario["k" * 20_000] = 1
    text = assert_user_error(["validate", str(write_scenario(base_scenario))], "unknown key", "'kkkk",
                             "(20,000 characters)")
    assert len(text) < 600, text


def test_shorten() -> None:
    assert yaml_safe.shorten("abc") == "'abc'"
    cut = yaml_safe.shorten("a" * 20_000)
    assert cut.startswith("'aaa") and "…'" in cut and cut.endswith("(20,000 characters)")
    assert len(cut) < 110
    assert len(yaml_safe.shorten(list(range(10_000)))) < 120


def test_not_utf8(write_scenario: Writer, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: test\ndescription: caf\xe9\n".encode("latin-1"))
    assert_user_error(["validate", str(path)], "latin1.yaml", "not UTF-8 text", "line 2", "save the file as UTF-8")
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes("name: test\n".encode("utf-16"))
    assert_user_error(["validate", str(utf16)], "not UTF-8 text")


def test_utf8_bom_accepted(tmp_path: Path, base_scenario: dict[str, Any]) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + _yaml(base_scenario).encode())
    from tests.conftest import run_cli
    assert run_cli("validate", str(path)).exit_code == 0


def test_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "#" * 1_100_000 + "\n")
    assert_user_error(["validate", str(path)], "big.yaml", "larger than 1 MB")


def test_not_a_regular_file() -> None:
    assert_user_error(["validate", "/dev/null"], "not a regular file")


def test_huge_integer(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    text = _yaml(base_scenario).replace("budget: 5000000", "budget: " + "9" * 5000)
    assert_user_error(["validate", str(write_scenario(text))], "integer of 5,000 digits is too long")


def test_catalog_errors_are_catalog_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalogs go through the same loader: a duplicate key there exits 2 naming the file."""
    import shutil

    from optimizer.loaders import _load_catalog_cached
    root = tmp_path / "catalogs"
    shutil.copytree(REPO / "catalogs", root)
    gpus = root / "gpus.yaml"
    gpus.write_text(gpus.read_text(encoding="utf-8") + "gpus: []\n", encoding="utf-8")
    monkeypatch.setenv("PROCURE_CATALOG", str(root))
    _load_catalog_cached.cache_clear()
    try:
        assert_user_error(["validate", str(REPO / "scenarios" / "startup-api.yaml")], "gpus.yaml",
                          "duplicate key 'gpus'")
    finally:
        _load_catalog_cached.cache_clear()


@pytest.mark.parametrize("path", sorted([*(REPO / "catalogs").glob("**/*.yaml"), *(REPO / "scenarios").glob("*.yaml")]))
def test_shipped_yaml_loads_as_safe_load_does(path: Path) -> None:
    """The strict loader reads every shipped file as PyYAML does, except YAML 1.1 spellings of
    floats (2.0e9 was a string)."""
    text = path.read_text(encoding="utf-8")

    def norm(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: norm(v) for k, v in x.items()}
        if isinstance(x, list):
            return [norm(v) for v in x]
        if isinstance(x, str):
            try:
                return float(x)
            except ValueError:
                return x
        return x

    assert norm(yaml_safe.load(text)) == norm(yaml.safe_load(text))


def test_bad_dict_key_named(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    base_scenario["prices"] = {1: 5}
    assert_user_error(["validate", str(write_scenario(base_scenario))], "prices.1 (key)", "wrong type")


@pytest.mark.parametrize("value", ["[/bold]", "[red]lots"])
def test_markup_in_a_value_is_printed_as_is(write_scenario: Writer, base_scenario: dict[str, Any],
                                            value: str) -> None:
    """The CLI prints messages with rich markup: a value that looks like markup must not be
    interpreted (``[/bold]`` raised rich.errors.MarkupError, a traceback; ``[red]`` vanished)."""
    base_scenario["workloads"][0]["requests_per_s"] = value
    assert_user_error(["validate", str(write_scenario(base_scenario))], "workloads[0].requests_per_s",
                      repr(value))
