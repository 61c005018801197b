"""Emit: one cycle's snapshot as telemetry envelopes into the durable outbox.

Per cycle and site, one `telemetry` envelope with the site values (internal signs, units in
the names), plus a `command` envelope when registers were written and an `alarm` envelope when
the set of active safety conditions and device alarms changes (raised or cleared). All of one
cycle go in one outbox transaction."""

from __future__ import annotations

from bessai.control.site import CycleRecord
from bessai.telemetry.envelope import Record
from bessai.telemetry.pipeline import TelemetryPipeline


def cycle_records(record: CycleRecord, previous_alarms: frozenset[str] | None) -> list[Record]:
    """The telemetry records of one cycle: measurements, the decision and alarms that changed."""
    m = record.measurements
    site = record.site_id
    records = [
        Record(
            site,
            {
                "cycle": record.cycle,
                "soc_pct": m.soc_pct,
                "battery_power_w": m.battery_power_w,
                "battery_temp_c": m.battery_temp_c,
                "pv_power_w": m.pv_power_w,
                "grid_power_w": m.grid_power_w,
                "load_power_w": m.load_power_w,
                "inverter_power_w": m.inverter_power_w,
                "requested_w": record.proposal.setpoint_w,
                "setpoint_w": record.decision.setpoint_w,
                "guard_outcome": record.decision.outcome.value,
                "controller": record.proposal.controller,
                "safety_state": record.safety_state.value,
                "mode": record.mode.value,
                "data_age_s": record.data_age_s,
                "cycle_duration_s": round(record.duration_s, 4),
                # What the fleet needs for its totals and flexibility (docs/fleet.md).
                "capacity_kwh": None if m.capacity_wh is None else m.capacity_wh / 1000,
                "max_charge_w": m.max_charge_w,
                "max_discharge_w": m.max_discharge_w,
            },
            ts=record.ts,
        )
    ]
    if record.writes:
        records.append(
            Record(
                site,
                {
                    "controller": record.proposal.controller,
                    "reason": record.proposal.reason,
                    "requested_w": record.proposal.setpoint_w,
                    "setpoint_w": record.decision.setpoint_w,
                    "guard_outcome": record.decision.outcome.value,
                    "guard_reason": record.decision.reason,
                    "registers_written": "; ".join(
                        f"{w.address}={list(w.registers)}" for w in record.writes
                    ),
                    "verified": all(w.confirmed for w in record.writes),
                },
                kind="command",
                ts=record.ts,
            )
        )
    alarms = active_alarms(record)
    if previous_alarms is not None and alarms != previous_alarms:
        records.append(
            Record(
                site,
                {
                    "active": "; ".join(sorted(alarms)),
                    "raised": "; ".join(sorted(alarms - previous_alarms)),
                    "cleared": "; ".join(sorted(previous_alarms - alarms)),
                    "safety_state": record.safety_state.value,
                },
                kind="alarm",
                ts=record.ts,
            )
        )
    return records


def active_alarms(record: CycleRecord) -> frozenset[str]:
    """The alarm names active in this cycle's record."""
    return frozenset(record.safety_reasons) | frozenset(record.measurements.alarms)


class CycleEmitter:
    """Keeps, per site, what was last reported as active, to emit alarm changes only."""

    def __init__(self, pipeline: TelemetryPipeline) -> None:
        self.pipeline = pipeline
        self._alarms: dict[str, frozenset[str]] = {}

    async def __call__(self, record: CycleRecord) -> None:
        previous = self._alarms.get(record.site_id, frozenset())
        await self.pipeline.emit_async(cycle_records(record, previous))
        self._alarms[record.site_id] = active_alarms(record)
