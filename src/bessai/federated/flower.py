"""The Flower apps: the ServerApp runs :func:`.server.run_ridge` (or the iterative model) over
the SuperLink's grid; the ClientApp answers from the site's own price file.

Loaded by Flower's SuperExec processes from the app bundle in ``fab/`` (whose components point
here), in the environment where `bessai[fl]` is installed. Everything the apps need comes from
the run config (set by `bessai fl serve`) and the node config (set by `bessai fl join`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from bessai.errors import BessaiError, DataError
from bessai.federated.answers import answer
from bessai.federated.mlp import MlpSpec
from bessai.federated.protocol import Payload
from bessai.federated.server import Policy, run_mlp, run_ridge
from bessai.federated.site import SiteRows, load_site, site_source
from bessai.federated.status import StatusFile


def encode(payload: Payload) -> RecordDict:
    """Arrays into an ArrayRecord, scalars into a ConfigRecord."""
    arrays = ArrayRecord()
    config: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, np.ndarray):
            arrays[key] = Array(np.ascontiguousarray(value))
        else:
            config[key] = value
    return RecordDict({"arrays": arrays, "config": ConfigRecord(config)})


def decode(content: RecordDict) -> Payload:
    """The payload of a message."""
    out: Payload = {}
    arrays = content.get("arrays")
    if isinstance(arrays, ArrayRecord):
        out.update({k: v.numpy() for k, v in arrays.items()})
    config = content.get("config")
    if isinstance(config, ConfigRecord):
        out.update(dict(config))
    return out


@dataclass(slots=True)
class GridTransport:
    """:class:`.server.Transport` over the SuperLink: one message per site, replies pulled
    until all came or the timeout passed; an error reply counts as no answer."""

    grid: Grid
    timeout_s: float

    def ask(self, stage: str, requests: dict[int, Payload], round_no: int) -> dict[int, Payload]:
        """One round of ``stage``."""
        messages = [
            Message(encode(req), node, f"train.{stage}", group_id=str(round_no))
            for node, req in requests.items()
        ]
        out: dict[int, Payload] = {}
        for reply in self.grid.send_and_receive(messages, timeout=self.timeout_s):
            if not reply.has_error():
                out[int(reply.metadata.src_node_id)] = decode(reply.content)
        return out


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The run config `bessai fl serve` passes (keys of ``fab/pyproject.toml``)."""

    out: Path
    status: Path
    policy: Policy
    expect_clients: int
    wait_s: float
    model: str = "ridge"
    mlp: MlpSpec = field(default_factory=MlpSpec)

    @classmethod
    def of(cls, config: dict[str, Any]) -> ServerSettings:
        """Read and check the run config."""
        model = str(config.get("model", "ridge"))
        if model not in ("ridge", "mlp"):
            raise DataError(f"federated: unknown model {model!r}; choose ridge or mlp")
        return cls(
            Path(str(config["out"])),
            Path(str(config["status"])),
            Policy(int(config["min-clients"]), float(config["round-timeout-s"])),
            int(config["expect-clients"]),
            float(config["wait-s"]),
            model,
            MlpSpec(
                rounds=int(config.get("fit-rounds", 30)), mu=float(config.get("fedprox-mu", 0.0))
            ),
        )


def wait_for_sites(grid: Grid, expect: int, wait_s: float) -> list[int]:
    """The connected SuperNodes, once ``expect`` are there or ``wait_s`` passed."""
    deadline = time.monotonic() + wait_s
    while True:
        ids = sorted(int(n) for n in grid.get_node_ids())
        if len(ids) >= expect or time.monotonic() >= deadline:
            return ids
        time.sleep(0.5)


server_app = ServerApp()


def server_main(grid: Grid, context: Context) -> None:
    """Train, export, and keep the status file current; a failure is written there too."""
    settings = ServerSettings.of(dict(context.run_config))
    status = StatusFile(settings.status)
    status.start(settings.policy.min_clients)
    try:
        ids = wait_for_sites(grid, settings.expect_clients, settings.wait_s)
        status.update(connected=len(ids), model=settings.model)
        transport = GridTransport(grid, settings.policy.round_timeout_s)
        if settings.model == "mlp":
            result = run_mlp(transport, ids, settings.policy, settings.mlp, status.round)
        else:
            result = run_ridge(transport, ids, settings.policy, on_round=status.round)
        result.write(settings.out)
    except BessaiError as exc:
        status.fail(str(exc))
        return
    status.finish(str(settings.out), result.train_loss, [s.site for s in result.sites])


server_app.main()(server_main)


client_app = ClientApp()
_ROWS: dict[tuple[str, ...], SiteRows] = {}


def site_rows(node_config: dict[str, Any]) -> SiteRows:
    """The site's rows from its node config (built once per process)."""
    key = tuple(
        str(node_config.get(k, "")) for k in ("site", "prices", "from", "to", "column", "node")
    )
    if key not in _ROWS:
        if not node_config.get("prices"):
            raise DataError("federated: the SuperNode was started without a price file")
        source = site_source(
            str(node_config["prices"]),
            first=str(node_config["from"]) if node_config.get("from") else None,
            last=str(node_config["to"]) if node_config.get("to") else None,
            column=str(node_config["column"]) if node_config.get("column") else None,
            node=str(node_config["node"]) if node_config.get("node") else None,
        )
        _ROWS[key] = load_site(str(node_config.get("site", "site")), source)
    return _ROWS[key]


def _handler(stage: str) -> Callable[[Message, Context], Message]:
    def handle(msg: Message, context: Context) -> Message:
        config = dict(context.node_config)
        if config.get("drop-at") == stage:
            # Fault injection (`bessai fl join --drop-at`): the site dies in the middle of
            # the round, as a gateway losing power would.
            os._exit(3)
        reply = answer(site_rows(config), stage, decode(msg.content))
        return Message(encode(reply), reply_to=msg)

    return handle


for _stage in ("moments", "gram", "calibrate", "fit"):
    client_app.train(_stage)(_handler(_stage))
