"""Physics residuals: a consistent plant stays inside the learned tolerances, a falsified SOC
or battery power does not."""

from __future__ import annotations

from bessai.devices.base import Measurements
from bessai.security.physics import PhysicsModel, Tolerances

CAPACITY_WH = 15_000.0


def series(n: int, power_w: float = 3000.0, pv_w: float = 4000.0) -> list[Measurements]:
    out = []
    soc = 50.0
    for _ in range(n):
        soc += 100.0 * power_w * 5.0 / 3600.0 / CAPACITY_WH
        out.append(
            Measurements(
                soc_pct=round(soc, 1),
                battery_power_w=power_w,
                pv_power_w=pv_w,
                inverter_power_w=pv_w - power_w,
                battery_temp_c=25.0,
                dispatch_command="charge",
            )
        )
    return out


def learned(model: PhysicsModel, tolerances: Tolerances, n: int) -> int:
    t = 0
    for m in series(n):
        t += 5
        tolerances.learn(model.update(m, float(t), 3000.0))
    return t


def test_a_consistent_plant_breaks_nothing() -> None:
    model, tol = PhysicsModel(CAPACITY_WH, 5000.0), Tolerances(1.5)
    whole = series(250)
    for t, m in enumerate(whole[:200], 1):
        tol.learn(model.update(m, 5.0 * t, 3000.0))
    for t, m in enumerate(whole[200:], 201):
        assert tol.broken(model.update(m, 5.0 * t, 3000.0)) == {}


def test_a_soc_bias_and_a_power_bias_break_their_invariants() -> None:
    model, tol = PhysicsModel(CAPACITY_WH, 5000.0), Tolerances(1.5)
    t = learned(model, tol, 200)
    m = series(201)[-1]
    biased = Measurements(**{**_fields(m), "soc_pct": (m.soc_pct or 0) + 5.0})
    assert "soc_step_pct" in tol.broken(model.update(biased, float(t + 5), 3000.0))
    power = Measurements(**{**_fields(m), "battery_power_w": 4000.0})
    assert "dcac_w" in tol.broken(model.update(power, float(t + 10), 3000.0))


def test_out_of_range_values_are_named() -> None:
    model = PhysicsModel(CAPACITY_WH, 5000.0)
    r = model.update(Measurements(soc_pct=130.0, battery_power_w=20_000.0), 0.0, None)
    assert any("soc_pct" in x for x in r.out_of_range)
    assert any("battery_power_w" in x for x in r.out_of_range)


def _fields(m: Measurements) -> dict[str, object]:
    return {name: getattr(m, name) for name in m.__slots__}  # type: ignore[attr-defined]
