"""Health: what an operator or a supervisor needs to know to trust the gateway right now.
Healthy (HTTP 200) only when every site has fresh data, a connected device, is not in SAFE and
has no temperature or alarm block; otherwise degraded (503) with the reasons."""

from __future__ import annotations

from typing import Any

from bessai.control.safety import SafetyState
from bessai.observe.monitor import Monitor


def health(monitor: Monitor) -> tuple[bool, dict[str, Any]]:
    """Whether the gateway is healthy, with the per-site and telemetry details."""
    reasons: list[str] = []
    sites: dict[str, Any] = {}
    for site in monitor.gateway.sites.values():
        record = site.last
        site_reasons: list[str] = []
        if record is None:
            site_reasons.append("no cycle has run yet")
            sites[site.id] = {"state": "starting", "reasons": site_reasons}
            reasons.extend(f"{site.id}: {r}" for r in site_reasons)
            continue
        if record.safety_state is SafetyState.SAFE:
            site_reasons.append(f"fail-safe: {record.failsafe_reason}")
        if not record.device_connected:
            # The cycle's error says why: no TCP connection, or a unit id that never answers.
            site_reasons.append(record.errors[0] if record.errors else "device not connected")
        # A full or empty battery is normal operation; heat, cold and device alarms are not.
        site_reasons.extend(
            latch.reason
            for latch in record.latches
            if latch.name in ("temp_high", "temp_low", "alarm")
        )
        if record.tracking is not None and record.tracking.alert is not None:
            site_reasons.append(record.tracking.alert)
        sites[site.id] = {
            "state": record.safety_state.value,
            "mode": record.mode.value,
            "cycle": record.cycle,
            "last_cycle_utc": record.ts.isoformat(),
            "cycle_duration_s": round(record.duration_s, 4),
            "safety": {
                "state": record.safety_state.value,
                "reasons": list(record.safety_reasons),
            },
            "controller": record.proposal.controller,
            "decision": {
                "outcome": record.decision.outcome.value,
                "setpoint_w": record.decision.setpoint_w,
                "reason": record.decision.reason,
            },
            "devices": [
                {
                    "name": site.device.name,
                    "connected": record.device_connected,
                    "data_age_s": None
                    if record.data_age_s is None
                    else round(record.data_age_s, 2),
                    "requests": site.device.stats.requests,
                    "errors": site.device.stats.errors,
                }
            ],
            "counters": {
                "cycles": site.counters.cycles,
                "overruns": site.counters.overruns,
                "blocks": site.counters.blocks,
                "restarts": site.counters.restarts,
            },
            "reasons": site_reasons,
        }
        reasons.extend(f"{site.id}: {r}" for r in site_reasons)
    telemetry = monitor.telemetry.health()
    reasons.extend(f"telemetry: {r}" for r in telemetry.reasons)
    healthy = not reasons
    return healthy, {
        "status": "ok" if healthy else "degraded",
        "reasons": reasons,
        "sites": sites,
        "telemetry": telemetry.to_dict(),
    }
