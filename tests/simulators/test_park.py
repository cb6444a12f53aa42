"""A SimulatedPark on free loopback ports, read with a real pymodbus client and decoded with the templates."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from parkmodel.registry import Registry, load_registry
from simulators import SimulatedPark
from tests.simulators.helpers import EVENING, NOON, balance_registry, read_points

pytestmark = pytest.mark.integration
ELECTRIC_SIGN = {"grid_meter": 1, "green_supply": 1, "pv": 1, "wind": 1, "storage": 1}


@pytest.fixture
def registry(uid: str) -> Registry:
    return balance_registry(uid)


@pytest.fixture
async def park(registry: Registry) -> AsyncIterator[SimulatedPark]:
    async with SimulatedPark(registry, speed=60, seed=3, start=NOON, tick_s=0.1) as p:
        yield p


async def _client(park: SimulatedPark, device: str) -> tuple[AsyncModbusTcpClient, int, str]:
    host, port, unit = park.address_of(device)
    client = AsyncModbusTcpClient(host, port=port, timeout=0.5, retries=0)
    await client.connect()
    assert client.connected
    return client, unit, park.devices[device].template.name


async def read(park: SimulatedPark, device: str) -> dict[str, float]:
    client, unit, template = await _client(park, device)
    try:
        return await read_points(client, template, unit)
    finally:
        client.close()


async def test_set_point_arrives_exactly_and_clear_releases_it(park: SimulatedPark, uid: str) -> None:
    park.set_point(f"office{uid}", "active_power_kw", 1234.5)  # eastron float32 in W
    park.set_point(f"grid{uid}", "voltage_v", 231.7)  # acrel uint16 × 0.1
    await park.next_tick()
    assert (await read(park, f"office{uid}"))["active_power_kw"] == 1234.5
    assert (await read(park, f"grid{uid}"))["voltage_v"] == pytest.approx(231.7, abs=1e-9)
    park.clear(f"office{uid}")
    await park.next_tick()
    assert (await read(park, f"office{uid}"))["active_power_kw"] != 1234.5


async def test_energy_balance_holds_over_ticks(park: SimulatedPark, registry: Registry, uid: str) -> None:
    electric = [r.device for r in registry.devices() if r.device.role.value in (*ELECTRIC_SIGN, "load_meter")]
    seen_export = seen_generation = False
    for _ in range(4):
        await park.next_tick()
        async with park.paused():
            readings = {d.id: await read(park, d.id) for d in electric}
        supply = sum(readings[d.id]["active_power_kw"] for d in electric if d.role.value in ELECTRIC_SIGN)
        loads = sum(readings[d.id]["active_power_kw"] for d in electric if d.role.value == "load_meter")
        assert loads > 100
        assert supply == pytest.approx(loads, rel=0.005)
        seen_generation |= readings[f"pv{uid}"]["active_power_kw"] > 100
        seen_export |= readings[f"grid{uid}"]["active_power_kw"] < 0
    assert seen_generation, "midsummer noon: the PV must be producing"
    assert not seen_export or readings[f"grid{uid}"]["energy_export_kwh"] > 0


async def test_counters_rise_monotonically_and_restart_on_counter_reset(park: SimulatedPark, uid: str) -> None:
    device = f"prod{uid}"
    series = []
    for _ in range(4):
        await park.next_tick()
        series.append((await read(park, device))["energy_import_kwh"])
    assert series == sorted(series) and series[-1] > series[0]
    park.inject(device, "counter_reset")
    after = (await read(park, device))["energy_import_kwh"]
    assert after < 1.0
    for _ in range(3):
        await park.next_tick()
    later = (await read(park, device))["energy_import_kwh"]
    assert after < later < series[0]


async def test_timeout_fault_silences_one_unit_only(park: SimulatedPark, uid: str) -> None:
    park.inject(f"pv{uid}", "timeout")
    client, unit, _ = await _client(park, f"pv{uid}")
    try:
        started = time.monotonic()
        with pytest.raises(ModbusIOException):
            await client.read_holding_registers(32080, count=2, device_id=unit)
        assert time.monotonic() - started >= 0.4
    finally:
        client.close()
    other = await read(park, f"grid{uid}")  # same gateway, same server: still answers
    assert other["frequency_hz"] == pytest.approx(50, abs=0.5)
    park.inject(f"pv{uid}", "clear")
    assert "active_power_kw" in await read(park, f"pv{uid}")


async def test_exception_fault_answers_modbus_exception(park: SimulatedPark, uid: str) -> None:
    park.inject(f"grid{uid}", "exception")
    client, unit, _ = await _client(park, f"grid{uid}")
    try:
        response = await client.read_holding_registers(0, count=12, device_id=unit)
        assert response.isError()
        assert response.exception_code == 4  # server device failure
    finally:
        client.close()
    assert park.state()["devices"][f"grid{uid}"]["faults"] == ["exception"]


async def test_gas_leak_ramps_lel_h2s_and_co_up(park: SimulatedPark, uid: str) -> None:
    device = f"gd{uid}"
    before = await read(park, device)
    assert before["lel_pct"] < 3 and before["h2s_ppm"] < 1 and before["co_ppm"] < 5
    park.inject(device, "gas_leak")
    leak_start = park.now()
    await park.next_tick()
    await park.next_tick()
    middle = (await read(park, device))["lel_pct"]
    while park.now() - leak_start < 31:  # past the 30 s (simulated) ramp
        await park.next_tick()
    await park.next_tick()
    after = await read(park, device)
    assert middle > before["lel_pct"] + 3
    assert 55 <= after["lel_pct"] <= 65
    assert after["h2s_ppm"] > 10 and after["co_ppm"] > 100
    park.clear(device)
    await park.next_tick()
    assert (await read(park, device))["lel_pct"] < 3


async def test_fire_sets_discrete_input(park: SimulatedPark, uid: str) -> None:
    device = f"fire{uid}"
    assert (await read(park, device))["smoke_alarm"] == 0
    park.inject(device, "fire")
    assert (await read(park, device))["smoke_alarm"] == 1
    await park.next_tick()
    assert (await read(park, device))["smoke_alarm"] == 1  # held until cleared
    park.inject(device, "clear")
    assert (await read(park, device))["smoke_alarm"] == 0


async def test_garbage_puts_values_out_of_range(park: SimulatedPark, uid: str) -> None:
    park.inject(f"env{uid}", "garbage")
    values = await read(park, f"env{uid}")
    assert values["humidity_pct"] > 100 and values["pm25_ugm3"] > 1000 and values["temperature_c"] > 60


async def test_all_four_tables_answer(park: SimulatedPark, uid: str) -> None:
    client, unit, _ = await _client(park, f"fire{uid}")
    try:
        assert not (await client.read_coils(0, count=8, device_id=unit)).isError()
        assert not (await client.read_discrete_inputs(0, count=1, device_id=unit)).isError()
        assert not (await client.read_holding_registers(0, count=4, device_id=unit)).isError()
        assert not (await client.read_input_registers(0, count=4, device_id=unit)).isError()
        assert not (await client.write_register(0, 1, device_id=unit)).isError()  # spare holding block
    finally:
        client.close()
    client, unit, _ = await _client(park, f"grid{uid}")
    try:  # measured registers are read-only, as on the real meter
        assert (await client.write_register(0, 2300, device_id=unit)).exception_code == 2
    finally:
        client.close()


async def test_storage_discharges_in_the_evening_peak(registry: Registry, uid: str) -> None:
    async with SimulatedPark(registry, speed=60, seed=1, start=EVENING, tick_s=0.1) as park:
        await park.next_tick()
        bess = await read(park, f"bess{uid}")
        pv = await read(park, f"pv{uid}")
    assert bess["active_power_kw"] > 0 and 5 <= bess["soc_pct"] <= 95
    assert pv["active_power_kw"] == 0  # 19:00 in January: dark


async def test_accelerated_time_advances_counters_faster(registry: Registry, uid: str) -> None:
    device = f"prod{uid}"
    async with (
        SimulatedPark(registry, speed=1, seed=1, start=NOON, tick_s=0.1) as slow,
        SimulatedPark(registry, speed=3600, seed=1, start=NOON, tick_s=0.1) as fast,
    ):
        s0, f0 = (await read(slow, device))["energy_import_kwh"], (await read(fast, device))["energy_import_kwh"]
        t0 = time.monotonic()
        await asyncio.sleep(1.0)
        await slow.next_tick()
        await fast.next_tick()
        s1, f1 = (await read(slow, device))["energy_import_kwh"], (await read(fast, device))["energy_import_kwh"]
        elapsed_h = (time.monotonic() - t0) / 3600
        power = (await read(fast, device))["active_power_kw"]
    assert 0 <= s1 - s0 < power * elapsed_h * 3
    # One real second is one simulated hour: the counter gains about an hour of energy.
    assert f1 - f0 == pytest.approx(power * elapsed_h * 3600, rel=0.35)
    assert f1 - f0 > 100 * max(s1 - s0, 0.01)


async def test_whole_shipped_registry_starts_and_every_gateway_answers() -> None:
    registry = load_registry()
    started = time.monotonic()
    async with SimulatedPark(registry, speed=60) as park:
        start_s = time.monotonic() - started
        assert len(park.devices) == 169 and len(park.servers) == 12
        grids = [r.device.id for r in registry.devices() if r.device.role.value == "grid_meter"]
        readings = await asyncio.gather(*(read(park, g) for g in grids))
        tick_started = time.perf_counter()
        park._tick(1 / 3600, park.now())
        tick_s = time.perf_counter() - tick_started
    assert start_s < 5
    assert tick_s < 0.1  # a tick of 169 devices fits easily in the 0.5 s tick on one core
    assert all(r["frequency_hz"] == pytest.approx(50, abs=0.5) for r in readings)


async def test_taken_port_is_a_clear_error(registry: Registry, uid: str) -> None:
    async with SimulatedPark(registry, tick_s=0.1) as first:
        _, port, _ = first.address_of(f"grid{uid}")
        with pytest.raises(OSError, match=f"gateway g{uid}-0: cannot listen on 127.0.0.1:{port}"):
            async with SimulatedPark(registry, ports={f"g{uid}-0": port}):
                pass


def test_bad_selection_and_speed_are_rejected(registry: Registry) -> None:
    with pytest.raises(ValueError, match="unknown enterprise 'nope'"):
        SimulatedPark(registry, enterprises=["nope"])
    with pytest.raises(ValueError, match="speed is 0"):
        SimulatedPark(registry, speed=0)


def test_selection_restricts_to_parks_and_enterprises() -> None:
    registry = load_registry()
    park = SimulatedPark(registry, parks=["sulige"], enterprises=["zc-ev"])
    enterprises = {d.ref.enterprise.id for d in park.devices.values()}
    assert enterprises == {"sl-gaschem", "sl-lng", "sl-methanol", "sl-newmat", "zc-ev"}
    assert len(park.servers) == 5
