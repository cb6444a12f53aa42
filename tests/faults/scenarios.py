"""Fault scenarios on the real pipeline, shared by tests/faults (short outages) and bench/faults.py (long ones).

Each scenario runs real parts: Mosquitto with authentication and the per-account ACL of deploy/security.py,
influxd, simulated Modbus devices polled every 0.2 s, an edge agent and ingest (in this event loop, or as
`smartpark ...` processes where the fault is a `kill -9`). It injects one fault and then counts, by series
and timestamp, what the edge agent produced against what InfluxDB holds:

- produced: every reading the edge agent put into its store-and-forward queue (recorded by a thin
  subclass of EdgeAgent), or, for an agent running as a process, every reading seen on the broker by a
  recorder with the read-everything `ops` account;
- stored: every `telemetry` point of the test park in InfluxDB (one per device and timestamp: a
  redelivered point overwrites itself);
- lost = produced − stored, extra = stored − produced (must both be empty), duplicates = deliveries of a
  reading beyond the first seen by the recorder (what the idempotent writes absorbed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import signal
import sqlite3
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import aiomqtt
import httpx
import orjson
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from deploy.security import BrokerAuth, generate_broker_auth
from deploy.services import RunningService, influxd, mosquitto
from deploy.stack import gateway_configs
from edge_agent.agent import EdgeAgent
from edge_agent.config import GatewayConfig, parse_gateway_config
from edge_agent.poller import Reading
from ingest.service import IngestService
from parkmodel.codec import telemetry_payload
from parkmodel.registry import Registry, parse_registry
from parkmodel.topics import DEAD_LETTER_ROOT, telemetry_topic
from simulators.park import SimulatedPark
from smartpark.config import Settings, load_settings
from tests.faults.proxy import TcpProxy

Key = tuple[str, int]  # (device, ts_ms)
POLL_S = 0.2
REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------- the bed


def fault_registry_data(uid: str) -> dict[str, Any]:
    """Park `pf{uid}`: enterprise 0 with gateway 0 (a grid meter and a PV inverter, polled every 0.2 s);
    enterprise 1 with gateway 1 and no devices (the would-be intruder)."""
    devices = [
        {"id": f"m{uid}", "role": "grid_meter", "template": "acrel_dtsd1352", "poll_interval_s": POLL_S},
        {"id": f"pv{uid}", "role": "pv", "template": "huawei_sun2000", "rated_kw": 100, "poll_interval_s": POLL_S},
    ]
    ents = [{"id": f"e{uid}-{n}", "name": f"企业{n}", "land_area_mu": 100, "contracted_capacity_kw": 1000,
             "gateways": [{"id": f"g{uid}-{n}", "devices": devices if n == 0 else []}]} for n in range(2)]
    return {"version": 1, "parks": [{"id": f"pf{uid}", "name": "故障园区", "enterprises": ents}]}


@dataclass
class FaultBed:
    """What every scenario shares: the secured broker, influxd, the registry and the accounts."""

    broker: RunningService
    influx: RunningService
    auth: BrokerAuth
    registry: Registry
    registry_file: Path
    work_dir: Path
    uid: str

    @property
    def influx_url(self) -> str:
        return f"http://{self.influx.host}:{self.influx.port}"

    @property
    def park(self) -> str:
        return self.registry.parks[0].id

    @property
    def gateway(self) -> str:
        return self.registry.parks[0].enterprises[0].gateways[0].id

    @property
    def devices(self) -> list[str]:
        return [d.id for d in self.registry.parks[0].enterprises[0].gateways[0].devices]

    def settings(self, database: str, *, client_id: str, group: str, influx_url: str | None = None,
                 max_in_flight: int = 20_000) -> Settings:
        """Ingest settings with the ingest account."""
        account = self.auth.service("ingest")
        return load_settings(
            registry=self.registry_file,
            mqtt={"host": self.broker.host, "port": self.broker.port, "username": account.username,
                  "password": account.password, "keepalive_s": 5},
            influx={"url": influx_url or self.influx_url, "database": database, "timeout_s": 3.0},
            ingest={"group": group, "client_id": client_id, "batch_interval_s": 0.1, "max_in_flight": max_in_flight},
            var_dir=self.work_dir / "var",
        )

    def settings_file(self, settings: Settings, path: Path) -> Path:
        """`settings` as a YAML file for a `smartpark ingest --config` process (secrets in clear, 0600)."""
        data = orjson.loads(settings.model_dump_json(exclude_none=True))
        data["mqtt"]["password"] = settings.mqtt.password.get_secret_value() if settings.mqtt.password else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        path.chmod(0o600)
        return path


@contextlib.contextmanager
def fault_bed(work_dir: Path, influx: RunningService | None = None, uid: str | None = None) -> Iterator[FaultBed]:
    """Start a broker with authentication and ACL (and influxd, unless given) for the fault scenarios.

    Args:
        work_dir: folder for the broker's data, credentials, configs and logs.
        influx: a running influxd to use (it is stopped and restarted by the InfluxDB scenario).
        uid: unique id fragment of the park's ids (random unless given).
    """
    uid = uid or uuid.uuid4().hex[:6]
    registry_data = fault_registry_data(uid)
    registry = parse_registry(registry_data)
    work_dir.mkdir(parents=True, exist_ok=True)
    registry_file = work_dir / "registry.yaml"
    registry_file.write_text(yaml.safe_dump(registry_data, allow_unicode=True, sort_keys=False))
    auth = generate_broker_auth(registry, work_dir / "auth")
    with contextlib.ExitStack() as stack:
        if influx is None:
            influx = stack.enter_context(influxd(work_dir / "influxd"))
        broker = stack.enter_context(mosquitto(work_dir / "mosquitto", passwd_file=auth.passwd_file,
                                               acl_file=auth.acl_file))
        yield FaultBed(broker, influx, auth, registry, registry_file, work_dir, uid)


# --------------------------------------------------------------------------------------------- results


@dataclass
class ScenarioResult:
    """What one scenario measured."""

    name: str
    sent: int = 0
    stored: int = 0
    duplicates: int = 0
    lost: int = 0
    extra: int = 0
    mismatched: int = 0
    recovery_s: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    lost_keys: list[Key] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.sent > 0 and self.lost == 0 and self.extra == 0 and self.mismatched == 0 \
            and self.notes.get("ok", True)

    def row(self) -> str:
        rec = "-" if self.recovery_s is None else f"{self.recovery_s:.1f}"
        return (f"{self.name:<22} {self.sent:>6} {self.stored:>6} {self.duplicates:>5} {self.lost:>5} "
                f"{self.extra:>5} {rec:>9}  {'ok' if self.passed else 'FAIL'}")


TABLE_HEADER = f"{'scenario':<22} {'sent':>6} {'stored':>6} {'dups':>5} {'lost':>5} {'extra':>5} {'recovery':>9}  verdict"


# --------------------------------------------------------------------------------------------- parts


class RecordingEdgeAgent(EdgeAgent):
    """The real edge agent, noting every reading it queued (the ground truth of what was produced)."""

    def __init__(self, config: GatewayConfig, produced: dict[Key, dict[str, float]]) -> None:
        super().__init__(config)
        self.produced = produced

    def on_reading(self, reading: Reading) -> None:
        super().on_reading(reading)  # on disk first, as always
        if reading.fields:
            self.produced[(reading.device, reading.ts_ms)] = dict(reading.fields)


class Recorder:
    """Subscribes with the `ops` account to the park's telemetry and the dead letters; keeps every delivery.

    A persistent MQTT 5 session (reconnecting), so a broker restart loses nothing it should have seen.
    """

    def __init__(self, bed: FaultBed, *, telemetry: bool = True) -> None:
        self.bed = bed
        self.telemetry = telemetry
        self.deliveries: Counter[Key] = Counter()
        self.fields: dict[Key, dict[str, float]] = {}
        self.first_seen: dict[Key, float] = {}
        self.malformed: list[bytes] = []
        self.dead_letters: list[dict[str, Any]] = []
        self.topics_seen: Counter[str] = Counter()
        self.subscribed = asyncio.Event()
        self.since_ms = now_ms() - 60_000
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="fault-recorder")
        async with asyncio.timeout(10):
            await self.subscribed.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        account = self.bed.auth.service("ops")
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        client_id = f"recorder-{self.bed.uid}-{uuid.uuid4().hex[:4]}"
        while True:
            try:
                async with aiomqtt.Client(self.bed.broker.host, self.bed.broker.port, identifier=client_id,
                                          username=account.username, password=account.password,
                                          protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
                                          keepalive=5) as client:
                    topics = [(f"{DEAD_LETTER_ROOT}/#", 1)]
                    if self.telemetry:
                        topics.append((f"sp/v1/{self.bed.park}/+/+/telemetry", 1))
                    await client.subscribe(topics)
                    self.subscribed.set()
                    async for message in client.messages:
                        self._take(message.topic.value, bytes(message.payload))  # type: ignore[arg-type]
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def _take(self, topic: str, payload: bytes) -> None:
        self.topics_seen[topic] += 1
        if topic.startswith(DEAD_LETTER_ROOT):
            self.dead_letters.append(orjson.loads(payload))
            return
        device = topic.split("/")[4]
        try:
            body = orjson.loads(payload)
            points = [(int(p["ts"]), dict(p["fields"])) for p in body["points"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.malformed.append(payload)
            return
        now = time.monotonic()
        if body.get("v") != 1 or any(ts < self.since_ms for ts, _ in points):
            self.malformed.append(payload)  # not a reading of this run (e.g. the flood's well-formed JSON)
            return
        for ts, fields in points:
            key = (device, ts)
            self.deliveries[key] += 1
            self.fields.setdefault(key, fields)
            self.first_seen.setdefault(key, now)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.deliveries.values())


class ChildProcess:
    """A `smartpark ...` process with its log; `kill()` is `kill -9`."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdout=log, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
                cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def stop(self, grace_s: float = 10.0) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace_s)
        except TimeoutError:
            await self.kill()

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def smartpark_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "smartpark.cli", *args]


async def stored_readings(http: httpx.AsyncClient, influx_url: str, database: str,
                          park: str) -> dict[Key, dict[str, float]]:
    """Every telemetry point of `park` in InfluxDB, by (device, ts_ms)."""
    r = await http.post(f"{influx_url}/query", data={
        "db": database, "epoch": "ms", "q": f"SELECT * FROM \"telemetry\" WHERE \"park\" = '{park}'"})
    r.raise_for_status()
    out: dict[Key, dict[str, float]] = {}
    for result in r.json().get("results", []):
        for series in result.get("series", []):
            cols = series["columns"]
            for row in series["values"]:
                rec = dict(zip(cols, row, strict=True))
                key = (str(rec.pop("device")), int(rec.pop("time")))
                for tag in ("park", "enterprise", "role"):
                    rec.pop(tag, None)
                out[key] = {k: float(v) for k, v in rec.items() if v is not None}
    return out


# --------------------------------------------------------------------------------------------- the rig


class Rig:
    """Simulated devices → edge agent → secured broker → ingest → InfluxDB, plus a recorder, for one scenario.

    Args:
        bed: the shared broker, influxd and accounts.
        name: scenario name (folders, client ids).
        edge_process: run the edge agent as a `smartpark edge` process (else in this loop, recording).
        ingest_process: run ingest as a `smartpark ingest` process (else in this loop).
        edge_via_proxy: the edge reaches the broker through a `TcpProxy` (`rig.proxy`).
        observe_telemetry: the recorder also subscribes to telemetry (a plain, non-shared subscriber).
    """

    def __init__(self, bed: FaultBed, name: str, *, edge_process: bool = False, ingest_process: bool = False,
                 edge_via_proxy: bool = False, observe_telemetry: bool = True) -> None:
        self.bed = bed
        self.name = name
        self.dir = bed.work_dir / name
        self.database = f"f_{name}_{uuid.uuid4().hex[:6]}"
        self.group = f"ingest-{name.replace('_', '-')}-{bed.uid}"
        self.edge_process = edge_process
        self.ingest_process = ingest_process
        self.edge_via_proxy = edge_via_proxy
        self.produced: dict[Key, dict[str, float]] = {}
        self.park: SimulatedPark | None = None
        self.edge: RecordingEdgeAgent | None = None
        self.edge_child: ChildProcess | None = None
        self.ingest: IngestService | None = None
        self.ingest_children: dict[str, ChildProcess] = {}
        self.proxy: TcpProxy | None = None
        self.recorder = Recorder(bed, telemetry=observe_telemetry)
        self.http = httpx.AsyncClient(timeout=5.0)
        self.edge_config: GatewayConfig | None = None
        self.edge_config_file = self.dir / "edge.yaml"
        self._stack = contextlib.AsyncExitStack()

    # -- start and stop ------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._stack.push_async_callback(self.http.aclose)
        r = await self.http.post(f"{self.bed.influx_url}/query", data={"q": f'CREATE DATABASE "{self.database}"'})
        r.raise_for_status()
        await self._stack.enter_async_context(self.recorder)
        self._stack.push_async_callback(self._stop_ingest_processes)
        if self.ingest_process:
            await self.start_ingest_process("ingest-a")
        else:
            await self.start_ingest()
            self._stack.push_async_callback(self.stop_ingest)
        self.park = await self._stack.enter_async_context(SimulatedPark(self.bed.registry, tick_s=0.1))
        if self.edge_via_proxy:
            self.proxy = await self._stack.enter_async_context(TcpProxy(self.bed.broker.host, self.bed.broker.port))
        self.edge_config = self._edge_config()
        if self.edge_process:
            self.edge_child = ChildProcess("edge", smartpark_argv("edge", "--config", str(self.edge_config_file)),
                                           self.dir / "edge.log")
            await self.edge_child.start()
            self._stack.push_async_callback(self._stop_edge_process)
            await self.wait_for(self._recorded_any, 20, f"the edge process published nothing:\n{self.edge_child.tail()}")
        else:
            await self.start_edge()
            self._stack.push_async_callback(self.stop_edge)

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def _edge_config(self) -> GatewayConfig:
        assert self.park is not None
        layout = self.park.layout_dict()["devices"]
        configs = list(gateway_configs(self.bed.registry, load_settings(), layout, self.dir))
        assert len(configs) == 1, configs
        cfg = configs[0]
        account = self.bed.auth.gateway(cfg["gateway"])
        port = self.proxy.port if self.proxy is not None else self.bed.broker.port
        cfg["mqtt"].update(host=self.bed.broker.host, port=port, username=account.username,
                           password=account.password, client_id=f"edge-{cfg['gateway']}-{self.name}",
                           keepalive_s=5, publish_timeout_s=3.0, reconnect_min_s=0.2, reconnect_max_s=2.0,
                           status_interval_s=5.0)
        self.edge_config_file.parent.mkdir(parents=True, exist_ok=True)
        self.edge_config_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.edge_config_file.chmod(0o600)
        return parse_gateway_config(cfg, str(self.edge_config_file))

    async def start_edge(self) -> None:
        assert self.edge_config is not None and self.edge is None
        self.edge = RecordingEdgeAgent(self.edge_config, self.produced)
        await self.edge.__aenter__()

    async def stop_edge(self) -> None:
        if self.edge is not None:
            edge, self.edge = self.edge, None
            await edge.__aexit__(None, None, None)

    async def _recorded_any(self) -> bool:
        return bool(self.recorder.fields)

    async def _stop_edge_process(self) -> None:
        if self.edge_child is not None:
            await self.edge_child.stop()

    def ingest_settings(self, client_id: str, *, influx_url: str | None = None, max_in_flight: int = 20_000) -> Settings:
        return self.bed.settings(self.database, client_id=client_id, group=self.group, influx_url=influx_url,
                                 max_in_flight=max_in_flight)

    async def start_ingest(self, client_id: str = "ingest-b") -> None:
        assert self.ingest is None
        settings = self.ingest_settings(f"{client_id}-{self.name}-{self.bed.uid}")
        self.ingest = IngestService(settings, self.bed.registry)
        await self.ingest.__aenter__()
        await self.ingest.wait_subscribed()

    async def stop_ingest(self) -> None:
        if self.ingest is not None:
            ingest, self.ingest = self.ingest, None
            await ingest.__aexit__(None, None, None)

    async def abort_ingest(self) -> None:
        """Stop the in-loop ingest like a killed process (nothing more acknowledged)."""
        if self.ingest is not None:
            await self.ingest.abort()
            await self.stop_ingest()

    async def start_ingest_process(self, name: str, *, influx_url: str | None = None,
                                   max_in_flight: int = 20_000) -> ChildProcess:
        """Start (or restart, same client id) a `smartpark ingest` worker of this rig's group."""
        settings = self.ingest_settings(f"{name}-{self.name}-{self.bed.uid}", influx_url=influx_url,
                                        max_in_flight=max_in_flight)
        config = self.bed.settings_file(settings, self.dir / f"{name}.yaml")
        child = ChildProcess(name, smartpark_argv("ingest", "--config", str(config)), self.dir / f"{name}.log")
        before = await self.connects(settings.ingest.client_id)
        if (old := self.ingest_children.get(name)) is not None:
            await old.stop()
        await child.start()
        self.ingest_children[name] = child
        await self.wait_until_connected(settings.ingest.client_id, before, f"\n{child.tail()}")
        return child

    async def wait_until_connected(self, client_id: str, connects_before: int, detail: str = "") -> None:
        """Wait until the broker logged one more connection of `client_id` (and its SUBSCRIBE had time to land)."""

        async def connected() -> bool:
            return await self.connects(client_id) > connects_before

        await self.wait_for(connected, 20, f"{client_id} did not connect{detail}")
        await asyncio.sleep(0.3)

    async def connects(self, client_id: str) -> int:
        """How often the broker logged a connection of `client_id` (its notice log)."""
        log = await asyncio.to_thread(self.bed.broker.log_path.read_text, errors="replace")
        return log.count(f" as {client_id} ")

    async def _stop_ingest_processes(self) -> None:
        for child in self.ingest_children.values():
            await child.stop()

    # -- production and checks -----------------------------------------------------------------------------------

    async def produce(self, seconds: float) -> None:
        """Let the devices be polled for `seconds` (readings accumulate)."""
        await asyncio.sleep(seconds)

    def stop_production(self) -> None:
        """The devices stop answering: the edge agent produces nothing more."""
        assert self.park is not None
        for device in self.bed.devices:
            self.park.inject(device, "timeout")

    def produced_now(self) -> dict[Key, dict[str, float]]:
        """What was produced so far: the edge agent's own record, or the recorder's for an edge process."""
        return self.recorder.fields if self.edge_process else self.produced

    async def stored(self) -> dict[Key, dict[str, float]]:
        return await stored_readings(self.http, self.bed.influx_url, self.database, self.bed.park)

    def edge_store_rows(self, upto_ts_ms: int | None = None) -> int:
        """Rows waiting in the edge agent's queue (read from its SQLite file; works for a process too)."""
        if self.edge is not None and upto_ts_ms is None:
            return self.edge.store_depth
        assert self.edge_config is not None
        path = self.edge_config.store.path
        if not path.exists():
            return 0
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            if upto_ts_ms is None:
                return int(db.execute("SELECT count(*) FROM outbox WHERE kind = 'telemetry'").fetchone()[0])
            return int(db.execute("SELECT count(*) FROM outbox WHERE kind = 'telemetry' AND ts_ms <= ?",
                                  (upto_ts_ms,)).fetchone()[0])

    async def wait_for(self, check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> float:
        """Poll `check` every 0.1 s; returns the seconds it took, raises AssertionError after `timeout_s`."""
        started = time.monotonic()
        while not await check():
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"{self.name}: {what} (not within {timeout_s:.0f} s)")
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    async def caught_up_to(self, ts_ms: int) -> bool:
        """Every reading produced up to `ts_ms` is in InfluxDB and none of them waits in the edge store."""
        if await asyncio.to_thread(self.edge_store_rows, ts_ms):
            return False
        wanted = {k for k in self.produced_now() if k[1] <= ts_ms}
        stored = await self.stored()
        return wanted <= stored.keys()

    async def recovery_after(self, cleared_at_ms: int, timeout_s: float = 30.0) -> float | None:
        """Seconds until everything produced before the fault was cleared is stored (None: never, i.e. loss)."""
        try:
            return await self.wait_for(lambda: self.caught_up_to(cleared_at_ms), timeout_s,
                                       "readings produced before the fault cleared never all reached InfluxDB")
        except AssertionError:
            return None

    async def settle(self, timeout_s: float = 30.0, quiet_s: float = 3.0) -> None:
        """Stop production, then wait until the edge store is empty and everything produced is stored
        (or nothing changed for `quiet_s`: what is missing then is lost)."""
        self.stop_production()
        await asyncio.sleep(3 * POLL_S)
        deadline = time.monotonic() + timeout_s
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            depth = await asyncio.to_thread(self.edge_store_rows)
            stored = await self.stored()
            if not depth and self.produced_now().keys() <= stored.keys():
                break
            if len(stored) + depth != last:
                last, last_change = len(stored) + depth, time.monotonic()
            elif time.monotonic() - last_change > quiet_s and not depth:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # what is still in flight lands (or shows up as extra)

    def store_keys(self) -> set[Key]:
        """(device, ts) of the telemetry rows in the edge store (its SQLite file)."""
        assert self.edge_config is not None
        with contextlib.closing(sqlite3.connect(self.edge_config.store.path, timeout=5)) as db:
            return {(d, int(ts)) for d, ts in db.execute("SELECT device, ts_ms FROM outbox WHERE kind = 'telemetry'")}

    async def result(self, recovery_s: float | None = None, **notes: Any) -> ScenarioResult:
        produced = dict(self.produced_now())
        stored = await self.stored()
        lost = sorted(produced.keys() - stored.keys())
        extra = stored.keys() - produced.keys()
        mismatched = [k for k in produced.keys() & stored.keys() if not _same(produced[k], stored[k])]
        return ScenarioResult(self.name, sent=len(produced), stored=len(stored.keys() & produced.keys()),
                              duplicates=self.recorder.duplicates, lost=len(lost), extra=len(extra),
                              mismatched=len(mismatched), recovery_s=recovery_s, notes=notes, lost_keys=lost[:20])


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() <= b.keys() and all(math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-9) for k in a)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextlib.asynccontextmanager
async def rig(bed: FaultBed, name: str, **kwargs: Any) -> AsyncIterator[Rig]:
    async with Rig(bed, name, **kwargs) as r:
        yield r


# --------------------------------------------------------------------------------------------- scenarios


BrokerOrder = Literal["natural", "ingest_first", "edge_first"]


async def broker_outage(bed: FaultBed, outage_s: float = 5.0, warmup_s: float = 3.0,
                        order: BrokerOrder = "natural", observer: bool = False) -> ScenarioResult:
    """The broker is stopped (SIGTERM: it saves its persistence) for `outage_s`, then started again.

    Mosquitto 2.0.11 restores persistent sessions but not their *shared* subscriptions, so until ingest
    has re-subscribed nobody receives telemetry, and the broker answers the edge's publishes with PUBACK
    reason 0x10 (no matching subscribers); the edge keeps such readings queued and sends them again
    (edge_agent/puback.py). `order` decides who is back first: "natural" (both reconnect on their own
    backoff: the bench), "ingest_first" (the edge's link is held down until ingest has re-subscribed),
    "edge_first" (ingest comes back 2 s after the edge). With `observer`, a plain (non-shared) telemetry
    subscriber is present too: the broker then delivers to it alone until ingest is back, acknowledging the
    edge with success, and what ingest missed is lost — a Mosquitto 2.0.11 limitation no client can see.
    """
    name = "broker_outage" if order == "natural" else f"broker_outage_{order}"
    if observer:
        name += "_observer"
    async with rig(bed, name, edge_via_proxy=order == "ingest_first", observe_telemetry=observer) as r:
        await r.produce(warmup_s)
        assert r.edge_config is not None and r.ingest is not None
        ingest_id = r.ingest.client_id
        if order == "edge_first":
            await r.abort_ingest()
        stopped = now_ms()
        await asyncio.to_thread(bed.broker.stop)
        if order == "ingest_first":
            assert r.proxy is not None
            await r.proxy.set_mode("down")
        await asyncio.sleep(outage_s)
        ingest_connects = await r.connects(ingest_id)
        edge_connects = await r.connects(r.edge_config.mqtt.client_id)
        await asyncio.to_thread(bed.broker.start)
        cleared = now_ms()
        if order == "ingest_first":
            assert r.proxy is not None
            await r.wait_until_connected(ingest_id, ingest_connects)
            await r.proxy.set_mode("up")
        elif order == "edge_first":
            await r.wait_until_connected(r.edge_config.mqtt.client_id, edge_connects)
            await asyncio.sleep(2.0)
            await r.start_ingest()
        recovery = await r.recovery_after(cleared, timeout_s=5 + outage_s)
        await r.produce(2.0)
        await r.settle()
        res = await r.result(recovery)
        res.notes["lost_s_after_stop"] = sorted({round((ts - stopped) / 1000, 1) for _, ts in res.lost_keys})[:3]
        res.notes["restart_s_after_stop"] = round((cleared - stopped) / 1000, 1)
        return res


async def influx_outage(bed: FaultBed, outage_s: float = 5.0, warmup_s: float = 3.0) -> ScenarioResult:
    """influxd is stopped for `outage_s`, then started on the same data folder and port."""
    async with rig(bed, "influx_outage") as r:
        await r.produce(warmup_s)
        await asyncio.to_thread(bed.influx.stop)
        await asyncio.sleep(outage_s)
        await asyncio.to_thread(bed.influx.start)
        cleared = now_ms()
        recovery = await r.recovery_after(cleared)
        await r.produce(2.0)
        await r.settle()
        return await r.result(recovery)


async def ingest_kill(bed: FaultBed, down_s: float = 2.0, warmup_s: float = 3.0) -> ScenarioResult:
    """The ingest process is killed with SIGKILL mid-stream and started again (same client id) after `down_s`."""
    async with rig(bed, "ingest_kill", ingest_process=True) as r:
        await r.produce(warmup_s)
        await r.ingest_children["ingest-a"].kill()
        await asyncio.sleep(down_s)
        await r.start_ingest_process("ingest-a")
        cleared = now_ms()
        recovery = await r.recovery_after(cleared)
        await r.produce(2.0)
        await r.settle()
        return await r.result(recovery)


async def edge_kill(bed: FaultBed, down_s: float = 2.0, warmup_s: float = 2.0, queue_s: float = 2.0) -> ScenarioResult:
    """The edge agent process is killed with SIGKILL while readings wait in its store (its link to the broker
    was down for `queue_s`), and started again on the same store after `down_s`.

    While it is down the devices are not read (those readings never exist); every reading that was in the
    store at the kill must arrive, and the store must end empty.
    """
    async with rig(bed, "edge_kill", edge_process=True, edge_via_proxy=True) as r:
        assert r.edge_child is not None and r.proxy is not None
        await r.produce(warmup_s)
        await r.proxy.set_mode("down")
        await asyncio.sleep(queue_s)
        await r.edge_child.kill()
        in_store = await asyncio.to_thread(r.store_keys)
        await r.proxy.set_mode("up")
        await asyncio.sleep(down_s)
        restarted = now_ms()
        started = time.monotonic()
        await r.edge_child.start()

        async def queued_ones_stored() -> bool:
            return in_store <= (await r.stored()).keys() and await r.caught_up_to(restarted)

        try:
            await r.wait_for(queued_ones_stored, 30, "the readings queued at the kill never arrived")
            recovery: float | None = time.monotonic() - started
        except AssertionError:
            recovery = None
        await r.produce(2.0)
        await r.settle()
        stored = await r.stored()
        missing_from_store = in_store - stored.keys()
        end_rows = await asyncio.to_thread(r.edge_store_rows)
        result = await r.result(recovery, in_store_at_kill=len(in_store), queued_lost=len(missing_from_store),
                                store_rows_at_end=end_rows,
                                ok=bool(in_store) and not missing_from_store and end_rows == 0)
        result.lost += len(missing_from_store - r.produced_now().keys())
        return result


async def network_blackhole(bed: FaultBed, outage_s: float = 8.0, warmup_s: float = 3.0) -> ScenarioResult:
    """The network between edge and broker black-holes (nothing arrives, nothing is refused) for `outage_s`."""
    async with rig(bed, "network_blackhole", edge_via_proxy=True) as r:
        assert r.proxy is not None
        await r.produce(warmup_s)
        await r.proxy.set_mode("blackhole")
        await asyncio.sleep(outage_s)
        queued = await asyncio.to_thread(r.edge_store_rows)
        await r.proxy.set_mode("up")
        cleared = now_ms()
        recovery = await r.recovery_after(cleared)
        await r.produce(2.0)
        await r.settle()
        return await r.result(recovery, queued_at_heal=queued, connections=r.proxy.connections_seen)


def malformed_messages(ts_ms: int) -> list[tuple[str, bytes]]:
    """(expected reason, payload) of the malformed messages the flood repeats; each must end on the dead letter."""
    point = f'"points":[{{"ts":{ts_ms},"fields":{{"active_power_kw":1.0}}}}]'
    return [
        ("not_json", b"{not json"),
        ("not_json", b"\xff\xfe\x00garbage"),
        ("schema", b'{"v":1,"seq":1}'),
        ("version", f'{{"v":9,"seq":1,{point}}}'.encode()),
        ("not_json", b""),
        ("empty", b'{"v":1,"seq":1,"points":[]}'),
        ("unknown_field", f'{{"v":1,"seq":1,"points":[{{"ts":{ts_ms},"fields":{{"no_such_kw":1.0}}}}]}}'.encode()),
    ]


async def malformed_flood(bed: FaultBed, rounds: int = 50, warmup_s: float = 2.0) -> ScenarioResult:
    """The gateway's own account floods its devices' topics with malformed messages alongside the good readings."""
    async with rig(bed, "malformed_flood") as r:
        await r.produce(warmup_s)
        account = bed.auth.gateway(bed.gateway)
        ent = bed.registry.parks[0].enterprises[0].id
        sent: list[tuple[str, bytes]] = []
        async with aiomqtt.Client(bed.broker.host, bed.broker.port, username=account.username,
                                  password=account.password, identifier=f"flood-{bed.uid}",
                                  protocol=aiomqtt.ProtocolVersion.V5) as client:
            for n in range(rounds):
                for label, body in malformed_messages(now_ms()):
                    topic = telemetry_topic(bed.park, ent, bed.devices[n % len(bed.devices)])
                    payload = body + f" #{n}".encode() if label == "not_json" and body else body
                    await client.publish(topic, payload, qos=1)
                    sent.append((topic, payload))
                await asyncio.sleep(0.02)
        cleared = now_ms()
        recovery = await r.recovery_after(cleared)

        async def all_dead_lettered() -> bool:
            return len(r.recorder.dead_letters) >= len(sent)

        with contextlib.suppress(AssertionError):
            await r.wait_for(all_dead_lettered, 20, "dead letters missing")
        await r.settle()
        dead = Counter((d["topic"], d["payload"]) for d in r.recorder.dead_letters)
        expected = Counter((t, _as_text(p)) for t, p in sent)
        missing = expected - dead
        reasons = Counter(d["reason"] for d in r.recorder.dead_letters)
        expected_reasons = Counter(label for label, _ in malformed_messages(0) for _ in range(rounds))
        return await r.result(recovery, malformed_sent=len(sent), dead_lettered=len(r.recorder.dead_letters),
                              malformed_missing=sum(missing.values()), reasons=dict(reasons),
                              expected_reasons=dict(expected_reasons),
                              ok=not missing and len(r.recorder.dead_letters) == len(sent)
                              and reasons == expected_reasons)


def _as_text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        return "base64:" + base64.b64encode(payload).decode("ascii")


async def intruder(bed: FaultBed, warmup_s: float = 2.0) -> ScenarioResult:
    """The gateway of enterprise 1 publishes valid telemetry into enterprise 0's device topic.

    Mosquitto 2.0.11 refuses it: over MQTT 5 the PUBACK carries reason code 0x87 (not authorized); over
    MQTT 3.1.1 the PUBACK says nothing and the message is dropped silently. Nothing of it may reach a
    subscriber or InfluxDB.
    """
    async with rig(bed, "intruder") as r:
        await r.produce(warmup_s)
        victim_ent = bed.registry.parks[0].enterprises[0].id
        intruder_gw = bed.registry.parks[0].enterprises[1].gateways[0].id
        account = bed.auth.gateway(intruder_gw)
        topic = telemetry_topic(bed.park, victim_ent, bed.devices[0])
        fake_ts = now_ms() - 60_000  # a timestamp the real meter never produced
        payload = telemetry_payload(1, [(fake_ts, {"active_power_kw": 99999.0})])
        codes: dict[str, int] = {}
        for version in (aiomqtt.ProtocolVersion.V5, aiomqtt.ProtocolVersion.V311):
            async with aiomqtt.Client(bed.broker.host, bed.broker.port, username=account.username,
                                      password=account.password, protocol=version,
                                      identifier=f"intruder-{bed.uid}-{version.value}") as client:
                seen: list[int] = []
                paho = client._client
                original = paho.on_publish

                def on_publish(c: Any, u: Any, mid: int, rc: Any, props: Any, _seen: list[int] = seen,
                               _orig: Any = original) -> None:
                    _seen.append(int(rc.value))
                    _orig(c, u, mid, rc, props)

                paho.on_publish = on_publish
                await client.publish(topic, payload, qos=1)
                codes["v5" if version is aiomqtt.ProtocolVersion.V5 else "v3.1.1"] = seen[0]
                # Still connected: the refusal does not close the session.
                await client.publish(telemetry_topic(bed.park, victim_ent, bed.devices[1]), payload, qos=1)
        await r.produce(1.0)
        await r.settle()
        stored = await r.stored()
        leaked_to_influx = [k for k in stored if k[1] == fake_ts]
        leaked_to_subscribers = [k for k in r.recorder.deliveries if k[1] == fake_ts]
        ok = codes == {"v5": 0x87, "v3.1.1": 0} and not leaked_to_influx and not leaked_to_subscribers
        return await r.result(None, puback_reason_codes=codes, leaked_to_influx=len(leaked_to_influx),
                              leaked_to_subscribers=len(leaked_to_subscribers), ok=ok)


async def shared_subscription_strand(bed: FaultBed, down_s: float = 4.0, warmup_s: float = 2.0) -> ScenarioResult:
    """Two ingest workers share the subscription; worker A, unable to write (its InfluxDB unreachable),
    holds unacknowledged messages when it is killed with SIGKILL, and comes back with the same client id
    (and a working InfluxDB) after `down_s`. Worker B runs throughout.

    Measured: how many readings were not in InfluxDB while A was down although B was healthy ("stranded"
    in A's persistent session), whether any was lost, and how long after A's restart they were stored.
    """
    async with rig(bed, "shared_sub_strand", ingest_process=False) as r, TcpProxy(
            bed.influx.host, bed.influx.port, mode="down") as dead_influx:
        await r.start_ingest_process("ingest-a", influx_url=dead_influx.url, max_in_flight=50)
        await r.produce(warmup_s)
        await r.ingest_children["ingest-a"].kill()
        killed = now_ms()
        await asyncio.sleep(down_s)
        produced_before_restart = dict(r.produced_now())
        stored = await r.stored()
        stranded = produced_before_restart.keys() - stored.keys()
        stranded_after_kill = [k for k in stranded if k[1] > killed]
        await r.start_ingest_process("ingest-a")
        restarted = now_ms()
        recovery = await r.recovery_after(restarted)
        await r.produce(1.0)
        await r.settle()
        return await r.result(recovery, stranded_while_down=len(stranded),
                              stranded_produced_after_kill=len(stranded_after_kill),
                              ok=len(stranded) > 0)


SCENARIOS: dict[str, Callable[..., Awaitable[ScenarioResult]]] = {
    "broker_outage": broker_outage,
    "broker_outage_ingest_first": functools.partial(broker_outage, order="ingest_first"),
    "broker_outage_edge_first": functools.partial(broker_outage, order="edge_first"),
    "influx_outage": influx_outage,
    "ingest_kill": ingest_kill,
    "edge_kill": edge_kill,
    "network_blackhole": network_blackhole,
    "malformed_flood": malformed_flood,
    "intruder": intruder,
    "shared_sub_strand": shared_subscription_strand,
}
