"""The MITM proxy relays the gateway's reads and falsifies the targeted reading on demand."""

from __future__ import annotations

from collections.abc import Callable

from bessai.modbus.client import ModbusDevice
from bessai.security.attack.mitm import MitmProxy
from bessai.simulator.server import SimulatorServer


async def test_bias_then_pass_through(
    sim: SimulatorServer, make_device: Callable[..., ModbusDevice]
) -> None:
    proxy = MitmProxy(("127.0.0.1", sim.port))
    await proxy.start()
    device = make_device()
    device.port = proxy.port
    try:
        points = [bp for bp in device.bound_points() if bp.point.name == "unit1_soc_pct"]
        true_soc = (await device.read_points(points)).readings[points[0].key].value
        proxy.start_attack("bias", "soc", 7.0)
        falsified = (await device.read_points(points)).readings[points[0].key].value
        assert isinstance(true_soc, float)
        assert isinstance(falsified, float)
        assert abs(falsified - true_soc - 7.0) < 0.2
        assert proxy.frames_altered >= 1
        proxy.stop_attack()
        again = (await device.read_points(points)).readings[points[0].key].value
        assert isinstance(again, float)
        assert abs(again - true_soc) < 0.2
    finally:
        await device.close()
        await proxy.stop()
