"""Pull requests to a durable JetStream consumer, answered into one inbox subscription.

nats-py's `PullSubscription.fetch` waits for each message of a batch separately (a task and a
timeout per message): about half of the consumer's CPU per message. Here the batch is
requested with the JetStream API directly (`$JS.API.CONSUMER.MSG.NEXT`) and the messages are
collected by the subscription's callback. The fetch returns when the batch is full, when the
server ends the request (408 expired, 404 none, 409), or when messages stopped arriving for a
moment. Messages that arrive after a fetch returned wait for the next one; anything never
acked is redelivered after `ack_wait`, so nothing depends on a request's timing."""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

#: Seconds without a new message after which a partly filled batch is returned.
IDLE_GAP_S = 0.005
#: Status codes that end a pull request (no more messages will come for it).
END_STATUSES = frozenset({"404", "408", "409"})


class Puller:
    """Batches from one durable consumer (shared with other processes)."""

    def __init__(self, nc: NatsClient, stream: str, consumer: str) -> None:
        self._nc = nc
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = nc.new_inbox()
        self._buffer: list[Msg] = []
        self._arrived = asyncio.Event()
        self._ended = False
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe the inbox (nats-py re-subscribes it after a reconnect)."""
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is not None and not msg.data:
            if status in END_STATUSES:
                self._ended = True
                self._arrived.set()
            return  # 100: an idle heartbeat
        self._buffer.append(msg)
        self._arrived.set()

    async def fetch(self, batch: int, wait_s: float) -> list[Msg]:
        """Up to `batch` messages, waiting at most `wait_s` for the first one."""
        if len(self._buffer) < batch:
            await self._request(batch - len(self._buffer), wait_s)
        taken, self._buffer = self._buffer[:batch], self._buffer[batch:]
        return taken

    async def _request(self, count: int, wait_s: float) -> None:
        self._ended = False
        self._arrived.clear()
        body = json.dumps({"batch": count, "expires": int(wait_s * 1e9)}).encode()
        await self._nc.publish(self._subject, body, reply=self._inbox)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s + 0.5
        wanted = len(self._buffer) + count
        while len(self._buffer) < wanted and not self._ended:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            before = len(self._buffer)
            self._arrived.clear()
            timeout = min(IDLE_GAP_S, remaining) if self._buffer else remaining
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                if self._buffer and len(self._buffer) == before:
                    return  # the flow paused: take what is here

    async def close(self) -> None:
        """Stop listening (unacked messages are redelivered by the server)."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()
