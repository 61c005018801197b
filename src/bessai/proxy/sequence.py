"""A client's forcible charge/discharge sequence, and the battery request it amounts to.

Home Assistant's huawei_solar and evcc drive a Huawei battery by writing, in some order, the
forcible power (47247 charge / 47249 discharge, W), the period (47083, minutes) or the SOC target
(47101) with the mode (47246: 0 time, 1 SOC), and the command (47100: 0 stop, 1 charge,
2 discharge). On the device the command starts the forcible run with whatever the other
registers hold. Here, each client's writes are kept apart (`ClientSequence`), and the command
(or a change while the client's request runs) becomes one battery request: a setpoint in the
product's sign (> 0 charge), a duration, and for the SOC mode the target that ends it.

A register the client has not written takes the device's current value, as on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: huawei_luna2000 points of the forcible sequence
COMMAND = "forcible_command"
CHARGE_POWER = "forcible_charge_power_w"
DISCHARGE_POWER = "forcible_discharge_power_w"
PERIOD = "forcible_period_min"
MODE = "forcible_mode"
TARGET_SOC = "forcible_target_soc_pct"
#: written by evcc in every battery mode; the gateway sets it itself when it charges
CHARGE_FROM_GRID = "charge_from_grid"
SEQUENCE = frozenset(
    {COMMAND, CHARGE_POWER, DISCHARGE_POWER, PERIOD, MODE, TARGET_SOC, CHARGE_FROM_GRID}
)
#: the battery's power limit settings (evcc's "hold" writes 47077 = 0)
LIMITS = frozenset({"max_charge_power_setting_w", "max_discharge_power_setting_w"})

STOP, CHARGE, DISCHARGE = 0, 1, 2
MODE_TIME, MODE_SOC = 0, 1


class SequenceError(ValueError):
    """The sequence is not complete yet (names what is missing): evcc writes the command
    before the period and the power."""


@dataclass(frozen=True, slots=True)
class BatteryRequest:
    """What a client's forcible command asks of the battery."""

    command: int  # CHARGE or DISCHARGE
    setpoint_w: float  # > 0 charge
    duration_s: float
    target_soc_pct: float | None
    description: str


@dataclass(slots=True)
class ClientSequence:
    """What one client has written of the forcible registers, and the override it holds."""

    client: str
    values: dict[str, float] = field(default_factory=dict)
    #: the client's last command was charge or discharge (not stopped since)
    armed: bool = False
    #: the request behind that override (the SOC target is watched every cycle)
    request: BatteryRequest | None = None
    #: the last decision audited for this client, so a watchdog's re-writes are audited once
    audited: tuple[object, ...] | None = None

    def request_from(
        self, device_value: Callable[[str], float | None], max_duration_s: float
    ) -> BatteryRequest | None:
        """The battery request the current registers amount to; None for a stop."""

        def value(name: str) -> float | None:
            return self.values[name] if name in self.values else device_value(name)

        command = value(COMMAND)
        if command is None or int(command) == STOP:
            return None
        charging = int(command) == CHARGE
        power_name = CHARGE_POWER if charging else DISCHARGE_POWER
        power_w = value(power_name)
        if power_w is None:
            raise SequenceError(f"{power_name} is not known yet; write it first")
        verb = "charge" if charging else "discharge"
        mode = value(MODE)
        target: float | None = None
        if mode is not None and int(mode) == MODE_SOC:
            target = value(TARGET_SOC)
            if target is None:
                raise SequenceError(f"{TARGET_SOC} is not known yet; write it first")
            duration_s = max_duration_s
            until = f"until SOC {target:g} %"
        else:
            period_min = value(PERIOD)
            if period_min is None or period_min <= 0:
                raise SequenceError(f"a forcible {verb} needs a period (47083) above 0 min")
            duration_s = min(period_min * 60.0, max_duration_s)
            until = f"for {period_min:g} min"
        setpoint_w = power_w if charging else -power_w
        description = f"forcible {verb} {power_w:g} W {until}"
        return BatteryRequest(int(command), setpoint_w, duration_s, target, description)


def target_reached(request: BatteryRequest, soc_pct: float | None) -> bool:
    """An SOC-mode request ends at its target, as on the device."""
    if request.target_soc_pct is None or soc_pct is None:
        return False
    if request.command == CHARGE:
        return soc_pct >= request.target_soc_pct
    return soc_pct <= request.target_soc_pct
