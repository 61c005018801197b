"""`bessai fl serve | join | status`: federated training of the CMg forecaster on Flower.

`serve` starts a SuperLink, submits the training run and waits for it; the model directory it
writes is the one `bessai forecast train` writes, so a gateway runs it with
``forecaster = "model:DIR"``. `join` starts a SuperNode for one site's price file. `status`
reads the run's status file. docs/federated.md says what leaves a site.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from bessai.errors import ConfigError, DataError
from bessai.federated.metrics import FlMetrics
from bessai.federated.processes import (
    LinkOptions,
    Managed,
    NodeOptions,
    Tls,
    free_port,
    register_supernode,
    start_superlink,
    start_supernode,
    submit_run,
    write_cli_config,
)
from bessai.federated.status import read_status

fl_app = typer.Typer(
    name="fl",
    help="Federated training of the CMg forecaster (Flower): serve, join, status.",
    no_args_is_help=True,
)

STATUS = "status.json"

WorkDirOpt = Annotated[
    Path,
    typer.Option("--work-dir", help="Directory of the SuperLink's state, logs and status file."),
]
InsecureOpt = Annotated[
    bool,
    typer.Option("--insecure", help="Plain HTTP without TLS (loopback tests only).", metavar=""),
]


def register(app: typer.Typer) -> None:
    """Add the `fl` group to the `bessai` command."""
    app.add_typer(fl_app)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What `bessai fl serve` does."""

    link: LinkOptions
    out: Path
    min_clients: int
    expect_clients: int
    wait_s: float
    round_timeout_s: float
    run_timeout_s: float
    metrics_port: int | None
    node_keys: tuple[Path, ...] = ()
    model: str = "ridge"
    fit_rounds: int = 30
    fedprox_mu: float = 0.0


def _serve_metrics(port: int, metrics: FlMetrics) -> None:
    from prometheus_client import start_http_server

    start_http_server(port, addr="127.0.0.1", registry=metrics.registry)


def serve(opts: ServeOptions) -> dict[str, object]:
    """Start the SuperLink, run one training, stop; the final status."""
    work = opts.link.state_dir
    status_path = work / STATUS
    status_path.unlink(missing_ok=True)
    metrics = FlMetrics()
    if opts.metrics_port is not None:
        _serve_metrics(opts.metrics_port, metrics)
    link = start_superlink(opts.link)
    try:
        address = f"{opts.link.host}:{opts.link.port}"
        write_cli_config(work / "flwr", address, opts.link.tls)
        for key in opts.node_keys:
            register_supernode(work / "flwr", key)
        run_config: dict[str, object] = {
            "out": str(opts.out.resolve()),
            "status": str(status_path.resolve()),
            "min-clients": opts.min_clients,
            "expect-clients": opts.expect_clients,
            "wait-s": opts.wait_s,
            "round-timeout-s": opts.round_timeout_s,
            "model": opts.model,
            "fit-rounds": opts.fit_rounds,
            "fedprox-mu": opts.fedprox_mu,
        }
        submit_run(work / "flwr", run_config)
        return _wait_done(link, status_path, metrics, opts.run_timeout_s)
    finally:
        link.stop()


def _wait_done(
    link: Managed, status_path: Path, metrics: FlMetrics, timeout_s: float
) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not link.alive():
            raise DataError(f"fl serve: the SuperLink exited ({link.tail()})")
        if status_path.is_file():
            status = read_status(status_path)
            metrics.update(status)
            if status.get("state") in ("done", "failed"):
                return status
        time.sleep(0.5)
    raise DataError(f"fl serve: the run did not finish in {timeout_s:g} s")


def _tls(insecure: bool, certfile: Path | None, keyfile: Path | None, ca: Path | None) -> Tls:
    for path in (certfile, keyfile, ca):
        if path is not None and not path.is_file():
            raise ConfigError(f"fl: no such file {path}")
    return Tls(insecure, certfile, keyfile, ca)


_CertOpt = Annotated[Path | None, typer.Option("--ssl-certfile", help="TLS certificate.")]
_KeyOpt = Annotated[Path | None, typer.Option("--ssl-keyfile", help="TLS private key.")]
_CaOpt = Annotated[
    Path | None, typer.Option("--ssl-ca-certfile", help="CA certificate of the TLS chain.")
]
_SupernodeAuthOpt = Annotated[
    bool,
    typer.Option(
        "--supernode-auth",
        help="Accept only registered SuperNodes (flwr supernode register).",
        metavar="",
    ),
]
_NodeKeyOpt = Annotated[
    list[Path] | None,
    typer.Option("--node-key", help="Public key of a SuperNode allowed in (repeat the option)."),
]


def _check_serve(min_clients: int, model: str, fit_rounds: int, fedprox_mu: float) -> None:
    if min_clients < 1:
        raise ConfigError("fl serve: --min-clients must be at least 1")
    if model not in ("ridge", "mlp"):
        raise ConfigError(f"fl serve: --model {model!r}; choose ridge or mlp")
    if fit_rounds < 1 or fedprox_mu < 0:
        raise ConfigError("fl serve: need --fit-rounds >= 1 and --fedprox-mu >= 0")


@fl_app.command("serve")
def serve_command(
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    model: Annotated[
        str,
        typer.Option("--model", help="ridge (exact, 3 rounds) or mlp (FedAvg/FedProx rounds)."),
    ] = "ridge",
    fit_rounds: Annotated[int, typer.Option("--fit-rounds", help="MLP: training rounds.")] = 30,
    fedprox_mu: Annotated[
        float, typer.Option("--fedprox-mu", help="MLP: FedProx proximal weight (0: FedAvg).")
    ] = 0.0,
    work_dir: WorkDirOpt = Path("fl-server"),
    host: Annotated[
        str, typer.Option("--host", help="Address the SuperLink listens on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="SuperLink port (Fleet and Control API).")
    ] = 9092,
    min_clients: Annotated[
        int, typer.Option("--min-clients", help="Fewest sites a round may finish with.")
    ] = 2,
    expect_clients: Annotated[
        int | None,
        typer.Option("--expect-clients", help="Sites to wait for before the first round."),
    ] = None,
    wait_s: Annotated[
        float, typer.Option("--wait-s", help="Longest wait for the expected sites.")
    ] = 300.0,
    round_timeout_s: Annotated[
        float, typer.Option("--round-timeout-s", help="Longest wait for a round's answers.")
    ] = 120.0,
    run_timeout_s: Annotated[
        float, typer.Option("--run-timeout-s", help="Longest wait for the whole run.")
    ] = 3600.0,
    insecure: InsecureOpt = False,
    ssl_certfile: _CertOpt = None,
    ssl_keyfile: _KeyOpt = None,
    ssl_ca_certfile: _CaOpt = None,
    supernode_auth: _SupernodeAuthOpt = False,
    node_key: _NodeKeyOpt = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve fl_* metrics on 127.0.0.1:PORT.")
    ] = None,
) -> None:
    """Start a SuperLink, train the federated forecaster with the sites that join, write the
    model directory, stop."""
    _check_serve(min_clients, model, fit_rounds, fedprox_mu)
    opts = ServeOptions(
        LinkOptions(
            host,
            port,
            _tls(insecure, ssl_certfile, ssl_keyfile, ssl_ca_certfile),
            work_dir,
            supernode_auth,
        ),
        out,
        min_clients,
        expect_clients if expect_clients is not None else min_clients,
        wait_s,
        round_timeout_s,
        run_timeout_s,
        metrics_port,
        tuple(node_key or ()),
        model,
        fit_rounds,
        fedprox_mu,
    )
    if opts.node_keys and not supernode_auth:
        raise ConfigError("fl serve: --node-key needs --supernode-auth")
    opts.link.tls.server_args()  # a missing certificate is named before anything starts
    status = serve(opts)
    typer.echo(json.dumps(_summary(status)))
    if status.get("state") != "done":
        raise DataError(f"fl serve: the training failed: {status.get('error', 'unknown')}")


def _summary(status: dict[str, object]) -> dict[str, object]:
    keys = ("state", "rounds_total", "train_loss", "sites", "model_dir", "error")
    return {k: status[k] for k in keys if k in status}


@fl_app.command("join")
def join_command(
    superlink: Annotated[str, typer.Option("--superlink", help="SuperLink address HOST:PORT.")],
    prices: Annotated[Path, typer.Option("--prices", help="This site's price file.")],
    site: Annotated[str, typer.Option("--site", help="Name of this site in the model card.")],
    first: Annotated[
        str | None, typer.Option("--from", help="First market day to train on.")
    ] = None,
    last: Annotated[str | None, typer.Option("--to", help="Last market day to train on.")] = None,
    column: Annotated[str | None, typer.Option("--column", help="Price column.")] = None,
    node: Annotated[
        str | None, typer.Option("--node", help="Bus of a CEN file with several.")
    ] = None,
    insecure: InsecureOpt = False,
    root_certificates: Annotated[
        Path | None,
        typer.Option("--root-certificates", help="CA that signed the SuperLink's certificate."),
    ] = None,
    auth_key: Annotated[
        Path | None,
        typer.Option("--auth-key", help="This SuperNode's private key (node authentication)."),
    ] = None,
    api_port: Annotated[
        int, typer.Option("--api-port", help="Loopback port of the ClientApp API (0: any free).")
    ] = 0,
    log: Annotated[Path, typer.Option("--log", help="SuperNode log file.")] = Path(
        "fl-supernode.log"
    ),
    drop_at: Annotated[str | None, typer.Option("--drop-at", hidden=True)] = None,
) -> None:
    """Start a SuperNode that trains on this site's prices when the server asks; runs until
    stopped (Ctrl-C, SIGTERM). Only sums over the rows ever leave (docs/federated.md)."""
    if not prices.is_file():
        raise ConfigError(f"fl join: no such price file {prices}")
    config = {"site": site, "prices": str(prices.resolve())}
    extra = {"from": first, "to": last, "column": column, "node": node, "drop-at": drop_at}
    config.update({k: v for k, v in extra.items() if v is not None})
    port = api_port or free_port()
    opts = NodeOptions(superlink, _tls(insecure, None, None, root_certificates), config, port,
                       log, auth_key)  # fmt: skip
    supernode = start_supernode(opts)
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    typer.echo(f"site {site}: SuperNode {supernode.pid} connected to {superlink}", err=True)
    try:
        while not stopping and supernode.alive():
            time.sleep(0.2)
    finally:
        supernode.stop()
    if not stopping:
        raise DataError(f"fl join: the SuperNode exited ({supernode.tail()})")


@fl_app.command("status")
def status_command(
    work_dir: WorkDirOpt = Path("fl-server"),
    prometheus: Annotated[
        bool, typer.Option("--prometheus", help="Print fl_* metrics (exposition text).", metavar="")
    ] = False,
) -> None:
    """The state of the last training run: rounds, sites, dropouts, train loss, model."""
    status = read_status(work_dir / STATUS)
    if prometheus:
        metrics = FlMetrics()
        metrics.update(status)
        typer.echo(metrics.text(), nl=False)
        return
    typer.echo(json.dumps(status, indent=2))
