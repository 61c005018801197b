"""A local HTTP server for the fetcher tests: it answers every GET from a fake CEN API's
`answer(path, query)`, and the fakes share the scripted failures and the fast client."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from bessai.market.fetch import CenClient, FetchSettings

Reply = tuple[int, dict[str, str], bytes]
Answer = Callable[[str, dict[str, list[str]]], Reply]


class ScriptedFailures:
    """Statuses to answer first for a (day, page), before the page itself (429 asks for no wait)."""

    def __init__(self) -> None:
        self.fail: dict[tuple[str, int], list[int]] = {}

    def scripted(self, day: str, page: int) -> Reply | None:
        """The next scripted failure of this page, or None when the page should be served."""
        queue = self.fail.get((day, page), [])
        if not queue:
            return None
        status = queue.pop(0)
        return status, ({"Retry-After": "0"} if status == 429 else {}), b"{}"


@contextmanager
def json_server(answer: Answer) -> Iterator[str]:
    """Serve `answer` on a free loopback port; yields the base URL, stops the server after."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            status, headers, body = answer(url.path, parse_qs(url.query))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fast_client(
    base: str, sleeps: list[float] | None = None, *, api_key: str = "k", retries: int = 3
) -> CenClient:
    """A client of the server at `base` that does not wait between requests and records the
    back-off sleeps it asks for in `sleeps` instead of sleeping."""
    settings = FetchSettings(
        api_key=api_key, base_url=base, min_interval_s=0.0, retries=retries, backoff_s=0.01
    )
    return CenClient(settings, sleep=(sleeps.append if sleeps is not None else lambda s: None))
