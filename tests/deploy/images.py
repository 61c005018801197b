"""Reading the deployment files the way their runtimes do: Dockerfile instructions, compose
services, and `bessai` command lines checked against the real CLI (click parses them)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

from bessai.cli import app
from tests.deploy.conftest import DEPLOY

DOCKERFILE = DEPLOY / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword and its argument text (continuations joined)."""

    keyword: str
    text: str

    def exec_form(self) -> list[str]:
        """The JSON (exec) form's argv, e.g. CMD ["run", "--config", ...]."""
        body = self.text
        if self.keyword == "HEALTHCHECK":
            body = body[body.index("CMD") + 3 :].strip()
        argv = json.loads(body)
        assert isinstance(argv, list), f"{self.keyword} is not in exec form: {self.text}"
        return [str(a) for a in argv]


def dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions of every stage, in order."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, text = stripped.partition(" ")
        result.append(Instruction(keyword.upper(), text.strip()))
    return result


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions after the last FROM (what the image runs with)."""
    last = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last:]


def one(instructions: list[Instruction], keyword: str) -> Instruction:
    """The last instruction of a kind (Docker keeps the last CMD, ENTRYPOINT, USER...)."""
    found = [i for i in instructions if i.keyword == keyword]
    assert found, f"no {keyword} in the Dockerfile"
    return found[-1]


def compose(path: Path) -> dict[str, Any]:
    """A compose file as data."""
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def parse_bessai(argv: list[str]) -> Any:
    """Parse `bessai ARGV` with the real CLI down to the leaf command, without running it, and
    return the leaf's click context: an unknown command or option, or a bad value, raises the
    CLI's own UsageError (typer bundles its click)."""
    group = typer.main.get_command(app)
    ctx = group.make_context("bessai", list(argv))
    while hasattr(ctx.command, "commands"):  # a group: descend into the named subcommand
        name, command, rest = ctx.command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        assert command is not None
        assert name is not None
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx


def has_command(*path: str) -> bool:
    """Whether `bessai PATH...` exists (e.g. ("fleet", "serve"))."""
    command: Any = typer.main.get_command(app)
    for name in path:
        if name not in getattr(command, "commands", {}):
            return False
        command = command.commands[name]
    return True


def bind_mounts(service: dict[str, Any], base: Path) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (short syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (base / source).resolve()
    return mounts


def container_ports(service: dict[str, Any]) -> set[int]:
    """Container-side ports the service publishes ("127.0.0.1:8000:8000" -> 8000)."""
    return {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}
