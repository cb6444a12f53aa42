"""Modbus TCP devices of a park with realistic daily profiles and injectable faults and events.

`SimulatedPark` serves every device of a registry (or of some of its parks/enterprises) from one pymodbus
TCP server per gateway, encodes registers with the devices' templates, keeps each enterprise's meters in
energy balance, and takes faults and pinned values in-process or over its HTTP control channel.
"""

from simulators.control import ControlServer, UnknownDeviceError
from simulators.faults import FaultError, FaultKind
from simulators.park import DeviceAddress, SimClock, SimulatedPark

__all__ = [
    "ControlServer", "DeviceAddress", "FaultError", "FaultKind", "SimClock", "SimulatedPark", "UnknownDeviceError",
]
