"""An in-process transport: every site's rows in one process, the same messages as Flower's.

For the unit tests and the benchmarks (which compare local-only, federated and centralised
models over a year of back-tests and would spend most of their time starting processes), and
for an analyst who holds several sites' files anyway. What it computes is what the Flower
deployment computes: the same :func:`.server.run_ridge` over the same :func:`.protocol.answer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bessai.federated.answers import answer
from bessai.federated.protocol import Payload
from bessai.federated.site import SiteRows


@dataclass(slots=True)
class LocalTransport:
    """Sites numbered 0..n-1; ``drop`` (stage, site) pairs never answer (dropout tests)."""

    sites: Sequence[SiteRows]
    drop: set[tuple[str, int]] = field(default_factory=set)
    answer_fn: Callable[[SiteRows, str, Payload], Payload] = answer

    def ask(self, stage: str, requests: dict[int, Payload], round_no: int) -> dict[int, Payload]:
        """Each site answers in turn; a dropped one is left out."""
        return {
            k: self.answer_fn(self.sites[k], stage, req)
            for k, req in requests.items()
            if (stage, k) not in self.drop
        }

    def ids(self) -> list[int]:
        """The site ids."""
        return list(range(len(self.sites)))
