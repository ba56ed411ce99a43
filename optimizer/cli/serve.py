"""`procure serve [SCENARIO]`: the what-if page for the meeting with finance, on this machine."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from optimizer.errors import UsageError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@click.command("serve")
@click.argument("scenario", type=click.Path(path_type=Path), required=False)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="TCP port to listen on (0: any free port, printed at start).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. The default serves this machine only; the page has no login, so bind "
                   "another address only on a network you trust.")
def serve_command(scenario: Path | None, port: int, host: str) -> None:
    """Start a local web page to edit a scenario, solve it, and compare the variants tried.

    SCENARIO (optional) is loaded first; the shipped scenarios are offered too, and YAML can be
    pasted or uploaded. The page edits workloads, limits, prices and the objective with the CLI's
    validation, solves in a worker process with a progress indicator, shows the plan, keeps the
    variants tried side by side, and downloads the plan workbook, the comparison workbook and the
    edited YAML. Everything is served from this machine; nothing is fetched from the network.

    The same server answers a JSON API: POST /api/solve and POST /api/compare with scenario YAML
    as the body return what `procure solve|compare SCENARIO --format json --no-workbook` prints;
    GET /api/catalog/gpus|servers|models what `procure catalog KIND --format json` prints.
    Status codes: 200 plan or infeasible (body status), 400 bad input, 413 body too large, 422 no
    plan within the solver limits, 429 a solve is running, 500 internal error (docs/web.md).
    Stop it with Ctrl-C.
    """
    try:
        import uvicorn

        from optimizer.web.app import create_app
    except ImportError as exc:  # pragma: no cover - both are dependencies of procure
        raise UsageError(f"procure serve needs FastAPI and uvicorn ({exc.name} is missing)",
                         hint="pip install fastapi uvicorn, or reinstall procure") from exc
    from optimizer.loaders import load_scenario
    from optimizer.web.sources import Sources

    initial = None
    if scenario is not None:
        load_scenario(scenario)  # a bad file exits 2 with its message before the server starts
        initial = scenario.resolve()
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"procure serve: http://{shown}:{bound}/  (Ctrl-C to stop)", err=True)
    if host not in LOCAL_HOSTS:
        click.echo(f"warning: listening on {host}: anyone who can reach it can use the page", err=True)
    config = uvicorn.Config(create_app(Sources(initial)), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a UsageError naming the address (port in use, unknown host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UsageError(f"cannot resolve host {host!r}: {exc.strerror or exc}", field="--host") from exc
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="--port",
                         hint="choose another --port (0 picks a free one)") from exc
    return sock
