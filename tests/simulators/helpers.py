"""Read simulated devices with a real pymodbus client and decode them with their templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from edge_agent.registermap import Function, decode_block, load_template
from parkmodel.registry import Registry
from simulators.profiles import BEIJING
from tests.conftest import make_registry

NOON = datetime(2024, 6, 21, 12, 40, tzinfo=BEIJING)  # solar noon in Ordos, midsummer
EVENING = datetime(2024, 1, 15, 19, 0, tzinfo=BEIJING)  # winter evening peak: storage discharges


def balance_registry(uid: str) -> Registry:
    """One enterprise with every role (acrel and eastron meters, PV, wind, storage, green supply, safety)."""
    def dev(name: str, role: str, template: str, **extra: Any) -> dict[str, Any]:
        return {"id": f"{name}{uid}", "role": role, "template": template, **extra}

    return make_registry(uid, [
        dev("grid", "grid_meter", "acrel_dtsd1352", rated_kw=3000),
        dev("prod", "load_meter", "acrel_dtsd1352", rated_kw=1500, parent=f"grid{uid}"),
        dev("office", "load_meter", "eastron_sdm630", rated_kw=300, parent=f"grid{uid}"),
        dev("hvac", "load_meter", "eastron_sdm630", rated_kw=400, parent=f"grid{uid}"),
        dev("green", "green_supply", "acrel_dtsd1352", rated_kw=300),
        dev("pv", "pv", "huawei_sun2000", rated_kw=800),
        dev("wind", "wind", "wind_turbine_cdab", rated_kw=600),
        dev("bess", "storage", "storage_pcs", rated_kw=400),
        dev("gd", "gas_detector", "gas_detector"),
        dev("fire", "fire_panel", "fire_panel"),
        dev("env", "env_sensor", "env_station"),
        dev("gas", "gas_meter", "gas_flowmeter_f64"),
        dev("water", "water_meter", "water_meter_badc"),
    ])


async def read_points(client: AsyncModbusTcpClient, template_name: str, unit_id: int) -> dict[str, float]:
    """Read every point of a device (merged reads, as the edge agent does) and decode them."""
    template = load_template(template_name)
    out: dict[str, float] = {}
    for block in template.blocks():
        read = {
            Function.COIL: client.read_coils, Function.DISCRETE: client.read_discrete_inputs,
            Function.HOLDING: client.read_holding_registers, Function.INPUT: client.read_input_registers,
        }[block.function]
        response = await read(block.address, count=block.count, device_id=unit_id)
        if response.isError():
            raise RuntimeError(f"unit {unit_id}: {response}")
        values = [int(b) for b in response.bits] if block.function.is_bit else response.registers
        out.update(decode_block(block, values, template))
    return out
