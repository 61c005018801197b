"""The VTN's rules, apart from HTTP: what each kind of object is, who may see and change it,
and whom to notify. The router (routes.py) only turns requests into these calls."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from bessai.vpp.spec import problems
from bessai.vpp.times import OadrFormatError, format_datetime, parse_datetime, parse_duration
from bessai.vpp.vtn.auth import Principal, TokenIssuer, VtnClient
from bessai.vpp.vtn.store import MemoryStore, Obj, VtnStore

log = structlog.get_logger("bessai.vpp.vtn")

#: a VTN SHALL ignore these in request bodies (3.1.0: VTN-provisioned metadata)
METADATA = ("id", "createdDateTime", "modificationDateTime")


class VtnError(Exception):
    """A refused request: HTTP status and a one-line reason (sent as a problem document)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Kind:
    """One collection of the API."""

    path: str
    object_type: str
    request_schemas: tuple[str, ...]
    read_scope: str
    write_scope: str
    #: VEN clients see only objects whose clientID is theirs (reports, subscriptions, vens)
    owned: bool = False


KINDS = {
    k.path: k
    for k in (
        Kind("programs", "PROGRAM", ("programRequest",), "read_targets", "write_programs"),
        Kind("events", "EVENT", ("eventRequest",), "read_targets", "write_events"),
        Kind("reports", "REPORT", ("reportRequest",), "read_targets", "write_reports", True),
        Kind(
            "subscriptions",
            "SUBSCRIPTION",
            ("subscriptionRequest",),
            "read_ven_objects",
            "write_subscriptions",
            True,
        ),
        Kind(
            "vens", "VEN", ("VenVenRequest", "BlVenRequest"), "read_ven_objects", "write_vens", True
        ),
        Kind(
            "resources",
            "RESOURCE",
            ("VenResourceRequest", "BlResourceRequest"),
            "read_ven_objects",
            "write_vens",
        ),
    )
}


def now_utc() -> datetime:
    """The VTN's clock (a function so tests can see where time comes from)."""
    return datetime.now(UTC)


class Vtn:
    """The VTN: a store, its clients and tokens, and the webhook notifier."""

    def __init__(
        self,
        clients: Iterable[VtnClient],
        store: VtnStore | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.store: VtnStore = store or MemoryStore()
        self.tokens = TokenIssuer({c.client_id: c for c in clients})
        self.clock = clock
        self._http: httpx.AsyncClient | None = None
        self._pending: set[asyncio.Task[None]] = set()
        #: notifications delivered / failed (tests and metrics read these)
        self.notified = 0
        self.notify_failed = 0

    # -- access ------------------------------------------------------------------------------

    def entitled_targets(self, who: Principal) -> set[str]:
        """What a VEN client may read by: its VENs' names and targets, its resources'."""
        targets: set[str] = set()
        vens = [v for v in self.store.all("vens") if v.get("clientID") == who.client_id]
        ven_ids = {v["id"] for v in vens}
        for ven in vens:
            targets.add(ven["venName"])
            targets.update(ven.get("targets") or ())
        for res in self.store.all("resources"):
            if res.get("venID") in ven_ids:
                targets.add(res["resourceName"])
                targets.update(res.get("targets") or ())
        return targets

    def visible(self, who: Principal, kind: Kind, obj: Obj, entitled: set[str] | None) -> bool:
        """May `who` read `obj`? Business logic reads all; a VEN its own and its targets'."""
        if who.role == "bl":
            return True
        if kind.owned:
            return bool(obj.get("clientID") == who.client_id)
        if kind.path == "resources":
            ven = self.store.get("vens", str(obj.get("venID")))
            return ven is not None and ven.get("clientID") == who.client_id
        targets = obj.get("targets") or []
        return not targets or bool(set(targets) & (entitled or set()))

    def require(self, who: Principal, scope: str) -> None:
        """403 unless the token carries `scope`."""
        if scope not in who.scopes:
            raise VtnError(403, f"this client lacks the {scope} scope")

    # -- reads -------------------------------------------------------------------------------

    def search(self, who: Principal, kind: Kind, filters: dict[str, Any]) -> list[Obj]:
        """The objects `who` may see that match the query's filters, one page."""
        self.require(who, kind.read_scope)
        entitled = self.entitled_targets(who) if who.role == "ven" else None
        found = []
        for obj in self.store.all(kind.path):
            if self.visible(who, kind, obj, entitled) and _matches(obj, filters, self.clock()):
                found.append(obj)
        skip, limit = filters.get("skip", 0), filters.get("limit", 50)
        return found[skip : skip + limit]

    def read(self, who: Principal, kind: Kind, object_id: str) -> Obj:
        """One object `who` may see, or 404 (never 403: existence is not disclosed)."""
        self.require(who, kind.read_scope)
        obj = self.store.get(kind.path, object_id)
        entitled = self.entitled_targets(who) if who.role == "ven" else None
        if obj is None or not self.visible(who, kind, obj, entitled):
            raise VtnError(404, f"no {kind.object_type.lower()} {object_id!r}")
        return obj

    # -- writes ------------------------------------------------------------------------------

    def create(self, who: Principal, kind: Kind, body: Any) -> Obj:
        """A new object from a request body (metadata in it ignored)."""
        self.require(who, kind.write_scope)
        fields = self._checked(kind, body)
        now = format_datetime(self.clock())
        obj = {
            "id": _new_id(kind),
            "createdDateTime": now,
            "modificationDateTime": now,
            "objectType": kind.object_type,
            **self._fields(who, kind, fields, None),
        }
        self.store.put(kind.path, obj)
        self.notify(kind, "CREATE", obj)
        return obj

    def update(self, who: Principal, kind: Kind, object_id: str, body: Any) -> Obj:
        """Replace an object's fields (its id and creation time stay)."""
        self.require(who, kind.write_scope)
        old = self.read(who, kind, object_id)
        fields = self._checked(kind, body)
        obj = {
            "id": old["id"],
            "createdDateTime": old["createdDateTime"],
            "modificationDateTime": format_datetime(self.clock()),
            "objectType": kind.object_type,
            **self._fields(who, kind, fields, old),
        }
        self.store.put(kind.path, obj)
        self.notify(kind, "UPDATE", obj)
        return obj

    def delete(self, who: Principal, kind: Kind, object_id: str) -> Obj:
        """Remove an object; answers what it was."""
        self.require(who, kind.write_scope)
        obj = self.read(who, kind, object_id)
        self.store.delete(kind.path, object_id)
        self.notify(kind, "DELETE", obj)
        return obj

    def _checked(self, kind: Kind, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise VtnError(400, "the body must be a JSON object")
        # null for an absent optional field is taken as absent: some clients (ElaadNL's)
        # send "intervalPeriod": null, which the document does not allow but means nothing.
        fields = {k: v for k, v in _without_nulls(body).items() if k not in METADATA}
        if kind.path not in ("vens", "resources"):
            fields.pop("objectType", None)
            fields.pop("clientID", None)
        found = [problems(schema, fields) for schema in kind.request_schemas]
        if all(found):
            raise VtnError(400, "; ".join(found[0][:3]))
        _check_times(fields)
        return fields

    def _fields(
        self, who: Principal, kind: Kind, fields: dict[str, Any], old: Obj | None
    ) -> dict[str, Any]:
        """The stored fields of a write, after the per-kind rules."""
        out = dict(fields)
        if kind.path in ("vens", "resources"):
            out.pop("objectType", None)
        if kind.path in ("reports", "subscriptions") or (kind.path == "vens" and who.role == "ven"):
            out["clientID"] = who.client_id
            if kind.path == "vens" and old is not None:
                out["targets"] = old.get("targets")  # targets are the business logic's to set
            elif kind.path == "vens":
                out.pop("targets", None)
        if kind.path == "vens" and not out.get("clientID"):
            out["clientID"] = who.client_id  # a VEN_VEN_REQUEST from the business logic
        if kind.path == "resources" and who.role == "ven":
            # A VEN names its resources; their targets (groups) are the business logic's.
            out.pop("clientID", None)
            out.pop("targets", None)
            if old is not None and old.get("targets") is not None:
                out["targets"] = old["targets"]
        self._check_references(who, kind, out, old)
        return out

    def _check_references(
        self, who: Principal, kind: Kind, out: dict[str, Any], old: Obj | None
    ) -> None:
        same = (lambda o: o["id"] != old["id"]) if old is not None else (lambda o: True)
        if kind.path == "programs":
            if any(
                p["programName"] == out["programName"] and same(p)
                for p in self.store.all("programs")
            ):
                raise VtnError(409, f"a program named {out['programName']!r} exists")
        elif kind.path == "events":
            if self.store.get("programs", out["programID"]) is None:
                raise VtnError(400, f"no program {out['programID']!r}")
        elif kind.path == "reports":
            if self.store.get("events", out["eventID"]) is None:
                raise VtnError(400, f"no event {out['eventID']!r}")
        elif kind.path == "vens":
            if any(v["venName"] == out["venName"] and same(v) for v in self.store.all("vens")):
                raise VtnError(409, f"a VEN named {out['venName']!r} exists")
        elif kind.path == "resources":
            ven = self.store.get("vens", out["venID"])
            if ven is None or (who.role == "ven" and ven.get("clientID") != who.client_id):
                raise VtnError(400, f"no VEN {out['venID']!r} of this client")
            out["clientID"] = ven["clientID"]  # a resource belongs to its VEN's client
            name = out["resourceName"]
            mine = [r for r in self.store.all("resources") if r["venID"] == out["venID"]]
            if any(r["resourceName"] == name and same(r) for r in mine):
                raise VtnError(409, f"VEN {out['venID']!r} has a resource {out['resourceName']!r}")

    # -- notifications -----------------------------------------------------------------------

    def notify(self, kind: Kind, operation: str, obj: Obj) -> None:
        """POST a notification to every subscription that asks for this operation on this
        kind (and program) and whose client may see the object; in the background."""
        for sub in self.store.all("subscriptions"):
            if sub.get("programID") and obj.get("programID") not in (None, sub["programID"]):
                continue
            who = self._subscriber(sub)
            if who is None or not self.visible(who, kind, obj, self.entitled_targets(who)):
                continue
            for op in sub.get("objectOperations", []):
                if kind.object_type in op["objects"] and operation in op["operations"]:
                    self._post(op["callbackUrl"], op.get("bearerToken"), kind, operation, obj)

    def _subscriber(self, sub: Obj) -> Principal | None:
        client = self.tokens.clients.get(str(sub.get("clientID")))
        return None if client is None else Principal(client.client_id, client.role, client.scopes)

    def _post(self, url: str, token: str | None, kind: Kind, operation: str, obj: Obj) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        note = {"objectType": kind.object_type, "operation": operation, "object": obj}
        task = loop.create_task(self._deliver(url, token, note))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, url: str, token: str | None, note: dict[str, Any]) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self._http.post(url, json=note, headers=headers)
            response.raise_for_status()
            self.notified += 1
        except httpx.HTTPError as exc:
            self.notify_failed += 1
            log.warning("webhook notification failed", url=url, error=str(exc))

    async def close(self) -> None:
        """Finish pending notifications (briefly) and close the HTTP client."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=2.0)
        if self._http is not None:
            await self._http.aclose()


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _new_id(kind: Kind) -> str:
    return f"{kind.path[:-1]}-{secrets.token_hex(6)}"


def _check_times(fields: dict[str, Any]) -> None:
    """Dates and durations the schema's patterns let through but Python cannot read."""
    periods = [fields.get("intervalPeriod")]
    periods += [
        i.get("intervalPeriod") for i in fields.get("intervals") or [] if isinstance(i, dict)
    ]
    for res in fields.get("resources") or []:
        periods.append(res.get("intervalPeriod"))
        periods += [i.get("intervalPeriod") for i in res.get("intervals") or []]
    try:
        for period in periods:
            if isinstance(period, dict):
                if "start" in period:
                    parse_datetime(period["start"], now_utc())
                for key in ("duration", "randomizeStart"):
                    if key in period:
                        parse_duration(period[key])
        if "duration" in fields:
            parse_duration(fields["duration"])
    except (OadrFormatError, OverflowError) as exc:
        raise VtnError(400, str(exc)) from None


def _matches(obj: Obj, filters: dict[str, Any], now: datetime) -> bool:
    for key in ("programID", "eventID", "clientName", "venName", "resourceName", "venID"):
        if key in filters and obj.get(key) != filters[key]:
            return False
    targets = filters.get("targets")
    if targets and not set(targets) & set(obj.get("targets") or []):
        return False
    objects = filters.get("objects")
    if objects:
        kinds = {o for op in obj.get("objectOperations", []) for o in op["objects"]}
        if not kinds & set(objects):
            return False
    return not (filters.get("active") and _event_over(obj, now))


def _event_over(event: Obj, now: datetime) -> bool:
    """True when every interval of the event has ended (used by ``active=true``)."""
    from bessai.vpp.events import event_end

    end = event_end(event, now)
    return end is not None and end <= now
