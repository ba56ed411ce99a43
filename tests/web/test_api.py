"""The JSON API answers exactly what the CLI prints, maps errors to the CLI's messages, and survives
bad input. Every request goes to the test's own `procure serve` on 127.0.0.1.

Volatile fields removed before comparing (they are clock readings, different on every run):
``solve_time_s``, ``objective_time_s`` and ``wall_time_s``, wherever they occur (the plan's
``solver`` block; a comparison's top level and each variant and its plan).
"""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from optimizer.cli import main
from tests.conftest import REPO, run_cli
from tests.web.conftest import Reply, Server

SCENARIOS = REPO / "scenarios"
SHIPPED = sorted(p.name for p in SCENARIOS.glob("*.yaml"))
VOLATILE = {"solve_time_s", "objective_time_s", "wall_time_s"}


def strip(data: Any, found: set[str]) -> Any:
    if isinstance(data, dict):
        found.update(k for k in data if k in VOLATILE)
        return {k: strip(v, found) for k, v in data.items() if k not in VOLATILE}
    if isinstance(data, list):
        return [strip(v, found) for v in data]
    return data


def cli_json(*args: str) -> tuple[int, Any, str]:
    res = run_cli(*args)
    out = res.stdout
    return res.exit_code, (json.loads(out) if out.strip().startswith("{") else None), res.stderr


def both(server: Server, path: str, body: bytes, *cli_args: str) -> tuple[Reply, tuple[int, Any, str]]:
    """The API request and the CLI run side by side (two processes: about half the wall time)."""
    with ThreadPoolExecutor(1) as pool:
        api = pool.submit(server.request, "POST", path, body)
        cli = cli_json(*cli_args)
        return api.result(timeout=120), cli


@pytest.mark.parametrize("name", SHIPPED)
def test_solve_json_is_the_clis(server: Server, name: str) -> None:
    path = SCENARIOS / name
    reply, (code, printed, err) = both(server, f"/api/solve?source={name}", path.read_bytes(),
                                       "solve", str(path), "--format", "json", "--no-workbook")
    assert code == 0, err
    assert reply.status == 200 and reply.headers["x-procure-exit-code"] == "0"
    found: set[str] = set()
    assert strip(reply.json(), found) == strip(printed, set())
    assert found == {"solve_time_s", "objective_time_s"}


def test_compare_json_is_the_clis_and_a_second_solve_is_refused(server: Server) -> None:
    path = SCENARIOS / "bank-rollout.yaml"
    with ThreadPoolExecutor(1) as pool:
        api = pool.submit(server.request, "POST", "/api/compare?source=bank-rollout.yaml", path.read_bytes())
        for _ in range(200):  # wait (at most 10 s) until the comparison runs, then ask for another solve
            if server.request("GET", "/api/progress").json()["busy"]:
                break
            threading.Event().wait(0.05)
        busy = server.request("POST", "/api/solve", path.read_bytes())
        code, printed, err = cli_json("compare", str(path), "--format", "json", "--no-workbook")
        reply = api.result(timeout=120)
    assert busy.status == 429 and busy.headers["retry-after"] == "2"
    assert "already running" in busy.json()["error"]
    assert code == 0, err
    assert reply.status == 200
    found: set[str] = set()
    assert strip(reply.json(), found) == strip(printed, set())
    assert found == VOLATILE
    assert len(printed["variants"]) == 5


def test_compare_without_variants_is_the_clis_error(server: Server) -> None:
    path = SCENARIOS / "startup-api.yaml"
    reply = server.request("POST", "/api/compare?source=startup-api.yaml", path.read_bytes())
    res = run_cli("compare", str(path), "--format", "json", "--no-workbook")
    assert res.exit_code == 2 and reply.status == 400
    body = reply.json()
    assert res.stderr.strip() == f"error: {body['error']}"
    assert body["message"] == "nothing to compare" and body["exit_code"] == 2


@pytest.mark.parametrize("kind", ["gpus", "servers", "cloud", "models"])
def test_catalog_json_is_the_clis(server: Server, kind: str) -> None:
    reply = server.request("GET", f"/api/catalog/{kind}")
    code, printed, _ = cli_json("catalog", kind, "--format", "json")
    assert code == 0 and reply.status == 200
    assert reply.json() == printed


def test_infeasible_is_200_with_the_clis_json(server: Server, tmp_path: Path) -> None:
    data = yaml.safe_load((SCENARIOS / "startup-api.yaml").read_text())
    data["constraints"]["budget"] = 1000
    text = yaml.safe_dump(data, sort_keys=False)
    target = SCENARIOS / "startup-api.yaml"  # the API anchors ?source= there; the CLI reads a copy
    copy = tmp_path / target.name
    copy.write_text(text)
    reply, (code, printed, err) = both(server, "/api/solve?source=startup-api.yaml", text.encode(),
                                       "solve", str(copy), "--format", "json", "--no-workbook")
    assert code == 1, err
    assert reply.status == 200 and reply.headers["x-procure-exit-code"] == "1"
    assert reply.json() == printed and printed["status"] == "infeasible"


BAD = {
    "slo": (lambda d: d["workloads"][0]["slo"].update(tpot_ms=0), "workloads[0].slo.tpot_ms"),
    "unknown key": (lambda d: d["site"].update(power_kv=3), "site.power_kv"),
    "unknown gpu": (lambda d: d["constraints"].update(gpus=["H2O-96GB"]), "constraints.gpus[0]"),
    "wrong type": (lambda d: d["workloads"][1].update(requests_per_s="lots"), "workloads[1].requests_per_s"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_field_is_400_with_the_clis_message_and_field(server: Server, tmp_path: Path, case: str) -> None:
    edit, field = BAD[case]
    data = yaml.safe_load((SCENARIOS / "bank-rollout.yaml").read_text())
    edit(data)
    text = yaml.safe_dump(data, sort_keys=False)
    copy = tmp_path / "bank-rollout.yaml"
    copy.write_text(text)
    reply = server.request("POST", "/api/solve?source=bank-rollout.yaml", text.encode())
    res = run_cli("solve", str(copy), "--format", "json", "--no-workbook")
    assert res.exit_code == 2 and reply.status == 400
    body = reply.json()
    assert body["field"] == field and body["exit_code"] == 2
    anchored = str(SCENARIOS / "bank-rollout.yaml")
    assert res.stderr.strip().replace(str(copy), anchored) == f"error: {body['error']}"
    assert body["error"].startswith(f"{anchored}: {field}: {body['message']}")


@pytest.mark.parametrize("raw, needle", [
    (b"name: [unclosed", "YAML syntax error"),
    (b"name: a\nname: b\n", "duplicate key 'name'"),
    (b"name: caf\xe9\n", "not UTF-8 text"),
    (b"- just\n- a list\n", "expected a mapping of scenario fields"),
    (b"", "expected a mapping of scenario fields"),
    (b"[" * 5000, "nested more than"),
    (b"name: !!python/object:os.system x\n", "unsupported YAML tag"),
])
def test_malformed_bodies_get_the_clis_message(server: Server, tmp_path: Path, raw: bytes, needle: str) -> None:
    reply = server.request("POST", "/api/solve", raw)
    copy = tmp_path / "posted.yaml"
    copy.write_bytes(raw)
    res = run_cli("validate", str(copy))
    assert reply.status == 400 and res.exit_code == 2
    body = reply.json()
    assert needle in body["error"]
    assert res.stderr.strip().replace(str(copy), str(SCENARIOS / "posted.yaml")) == f"error: {body['error']}"


@pytest.mark.parametrize("model", ["/etc/passwd", "../../../../../../etc/passwd", "/etc/hostname",
                                   "/proc/self/environ"])
def test_model_paths_outside_the_catalogs_are_refused(server: Server, model: str) -> None:
    data = yaml.safe_load((SCENARIOS / "startup-api.yaml").read_text())
    data["workloads"][0]["model"] = model
    reply = server.request("POST", "/api/validate", yaml.safe_dump(data).encode())
    assert reply.status == 400
    body = reply.json()
    assert body["field"] == "workloads[0].model"
    assert "outside the folders the web app reads" in body["message"]
    assert "root:" not in reply.body.decode()


def test_calibration_outside_is_refused_and_catalog_models_by_path_are_read(server: Server) -> None:
    data = yaml.safe_load((SCENARIOS / "startup-api.yaml").read_text())
    data["calibration"] = "../../../../etc/passwd"
    reply = server.request("POST", "/api/validate", yaml.safe_dump(data).encode())
    assert reply.status == 400 and reply.json()["field"] == "calibration"
    del data["calibration"]
    config = next((REPO / "catalogs" / "models").rglob("*.json"))
    data["workloads"][0]["model"] = f"../catalogs/models/{config.relative_to(REPO / 'catalogs' / 'models')}"
    reply = server.request("POST", "/api/validate", yaml.safe_dump(data).encode())
    assert reply.status in (200, 400)
    assert reply.status == 200 or "outside the folders" not in reply.json()["message"]


def raw_exchange(server: Server, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a request by hand (the server may answer and close before the body ends) and read the
    status line."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head)
        try:
            for chunk in chunks:
                s.sendall(chunk)
        except OSError:
            pass
        return s.recv(200)


def test_oversized_and_chunked_bodies_are_413(server: Server) -> None:
    declared = raw_exchange(server, b"POST /api/solve HTTP/1.1\r\nHost: x\r\nContent-Length: 1100000\r\n\r\n",
                            [b"#" * 65536] * 17)
    assert declared.startswith(b"HTTP/1.1 413"), declared
    chunk = b"#" * 65536  # no Content-Length: cut off while reading
    chunked = raw_exchange(server, b"POST /api/validate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                           [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 20 + [b"0\r\n\r\n"])
    assert chunked.startswith(b"HTTP/1.1 413"), chunked


def test_bad_requests_do_not_take_the_server_down(server: Server) -> None:
    assert server.request("GET", "/api/catalog/passwd").status == 404
    assert server.request("GET", "/api/scenarios/..%2F..%2Fetc%2Fpasswd").status == 404
    assert server.request("POST", "/api/workbook/compare", b"{not json").status == 400
    assert server.request("POST", "/api/workbook/compare", json.dumps({"variants": []}).encode()).status == 400
    assert server.request("POST", "/api/scenario/parse", b"\x00\x01").status == 400
    health = server.request("GET", "/api/health")
    assert health.status == 200 and health.json()["ok"] is True
    listing = server.request("GET", "/api/scenarios").json()
    assert [s["name"] for s in listing["scenarios"]] == SHIPPED
    page = server.request("GET", "/")
    assert page.status == 200 and b"/static/app.js" in page.body
    for asset in ("app.js", "app.css"):
        assert server.request("GET", f"/static/{asset}").status == 200
    assert b"http" not in server.request("GET", "/static/app.js").body.replace(b"http://www.w3.org/2000/svg", b"")


def test_serve_refuses_a_bad_scenario_and_a_busy_port(tmp_path: Path) -> None:
    from click.testing import CliRunner

    res = CliRunner().invoke(main, ["serve", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "file not found" in res.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert res.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in res.output


def mixed_inputs() -> dict[str, Any]:
    """The small test scenario with business volumes, a length mix and a measured entry no candidate
    uses: 2,000 users x 20 req/day x 13.5 % / 3,600 s = 1.5 req/s, split 0.75 / 0.25 into 1.125 and
    0.375 req/s; the entry was measured at TTFT 3,000 ms, looser than the workload's 2,000 ms."""
    from tests.conftest import BASE_SCENARIO

    data = json.loads(json.dumps(BASE_SCENARIO))
    w = data["workloads"][0]
    for key in ("requests_per_s", "input_tokens", "output_tokens"):
        del w[key]
    w["demand"] = {"users": 2000, "requests_per_user_per_day": 20, "peak_hour_share": 0.135}
    w["lengths"] = [{"input_tokens": 500, "output_tokens": 100, "share": 0.75},
                    {"input_tokens": 2500, "output_tokens": 500, "share": 0.25}]
    data["measured"] = [{"model": "Qwen/Qwen2-7B-Instruct", "gpu": "L20-48GB", "tp": 1, "precision": "bf16",
                         "input_tokens": 500, "output_tokens": 100, "requests_per_s": 6.0,
                         "slo": {"ttft_ms": 3000, "tpot_ms": 60}, "source": "own bench at a looser TTFT"}]
    return data


def test_validate_answers_the_clis_derived_inputs(server: Server, tmp_path: Path) -> None:
    data = mixed_inputs()
    text = yaml.safe_dump(data, sort_keys=False)
    copy = tmp_path / "posted.yaml"
    copy.write_text(text)
    reply = server.request("POST", "/api/validate", text.encode())
    code, printed, err = cli_json("validate", str(copy), "--format", "json")
    assert code == 0 and reply.status == 200, (err, reply.body)
    body = reply.json()
    assert body["file"] == str(SCENARIOS / "posted.yaml")
    assert {k: v for k, v in body.items() if k != "file"} == {k: v for k, v in printed.items() if k != "file"}
    (w,) = body["workloads"]
    assert w["requests_per_s"] == pytest.approx(1.5, rel=1e-12)
    assert w["peak_rate"] == "peak rate chat: 2,000 users × 20 req/day × 13.5 % in the peak hour = 1.50 req/s"
    assert [(b["input_tokens"], b["output_tokens"], b["share"]) for b in w["lengths"]] == [(500, 100, 0.75),
                                                                                          (2500, 500, 0.25)]
    assert [b["requests_per_s"] for b in w["lengths"]] == pytest.approx([1.125, 0.375], rel=1e-12)
    (warning,) = body["warnings"]
    assert warning.startswith("measured entry 1 (own bench at a looser TTFT) matches no candidate deployment")


@pytest.mark.parametrize("ref", ["/etc/passwd", "../../../../../../etc/passwd", "requests.csv",
                                 "../catalogs/models/does-not-matter.csv"])
def test_lengths_file_is_refused_before_anything_is_read(server: Server, ref: str) -> None:
    data = yaml.safe_load((SCENARIOS / "startup-api.yaml").read_text())
    data["workloads"][0]["lengths_file"] = ref
    for path in ("/api/validate", "/api/solve", "/api/scenario/parse"):
        reply = server.request("POST", path, yaml.safe_dump(data).encode())
        text = reply.body.decode()
        assert "root:" not in text and "not found" not in text
        if path == "/api/scenario/parse":  # the form still loads, with the error beside the field
            assert reply.status == 200
            body = reply.json()["error"]
        else:
            assert reply.status == 400 and reply.headers["x-procure-exit-code"] == "2"
            body = reply.json()
        assert body["field"] == "workloads[0].lengths_file"
        assert body["message"] == ("lengths_file is not read from a web request (the server reads no file a "
                                   "request names)")
        assert "give the buckets as lengths:" in body["hint"]


def test_measured_file_outside_the_allowed_folders_is_refused(server: Server) -> None:
    data = yaml.safe_load((SCENARIOS / "startup-api.yaml").read_text())
    data["measured_file"] = "/etc/passwd"
    reply = server.request("POST", "/api/validate", yaml.safe_dump(data).encode())
    assert reply.status == 400 and reply.json()["field"] == "measured_file"
    assert "outside the folders the web app reads" in reply.json()["message"]
    assert "root:" not in reply.body.decode()
