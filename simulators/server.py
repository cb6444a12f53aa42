"""One pymodbus TCP server per registry gateway; its devices answer at their 1-based unit ids.

Register contents come from each device's `DeviceImage` through the datastore's access hook, so a read
always sees the image of the latest tick. Faults hook in at the two places a real device fails:
`timeout` drops the request before the datastore sees it (no answer at all), `exception` answers with
Modbus exception 04 (server device failure).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimDevice

from edge_agent.registermap import Function
from simulators.model import DeviceSim

log = logging.getLogger(__name__)

_FUNCTION_TABLES = {1: Function.COIL, 5: Function.COIL, 15: Function.COIL, 2: Function.DISCRETE,
                    4: Function.INPUT, 3: Function.HOLDING, 6: Function.HOLDING, 16: Function.HOLDING,
                    22: Function.HOLDING, 23: Function.HOLDING}


class GatewayServer:
    """A Modbus TCP server for the devices of one gateway.

    Args:
        gateway_id: the registry gateway.
        devices: the gateway's devices, in registry order (unit id = index + 1).
        host: address to listen on.
        port: port to listen on (0 = any free port; see `port` after `start`).
    """

    def __init__(self, gateway_id: str, devices: list[DeviceSim], host: str, port: int) -> None:
        self.gateway_id = gateway_id
        self.devices = {d.unit_id: d for d in devices}
        self.host = host
        self.port = port
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        """Listen; raises OSError naming the address when the port is taken."""
        sim_devices = [
            SimDevice(
                unit_id,
                simdata=tuple(d.image.tables[f].sim_data() for f in Function),  # type: ignore[arg-type]
                action=partial(self._on_access, d),
            )
            for unit_id, d in self.devices.items()
        ]
        server = ModbusTcpServer(sim_devices, address=(self.host, self.port), trace_pdu=self._on_pdu)
        try:
            await server.serve_forever(background=True)
        except RuntimeError:
            raise OSError(f"gateway {self.gateway_id}: cannot listen on {self.host}:{self.port} "
                          "(port in use or address not local)") from None
        self._server = server
        sockets = getattr(server.transport, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("gateway %s serving %d devices on %s:%d", self.gateway_id, len(self.devices), self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
            await asyncio.sleep(0)  # let the closed connections' callbacks run

    def _on_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if sending:
            return pdu
        device = self.devices.get(pdu.dev_id)
        if device is None or device.faults.timeout:
            # No answer at all: a dead RS-485 drop behind the gateway, or an unknown unit.
            log.debug("gateway %s: unit %d does not answer", self.gateway_id, pdu.dev_id)
            return None  # type: ignore[return-value]  # pymodbus skips a request whose trace returns None
        return pdu

    async def _on_access(
        self,
        device: DeviceSim,
        function_code: int,
        start_address: int,
        _address: int,
        _count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if device.faults.exception:
            return ExcCodes.DEVICE_FAILURE
        table = device.image.tables.get(_FUNCTION_TABLES.get(function_code, Function.HOLDING))
        if table is not None and table.used and set_values is None:
            packed = table.packed()
            registers[: len(packed)] = packed
        return None
