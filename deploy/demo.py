"""`make demo`: the whole platform on one machine, with simulated devices.

Starts (or reuses) Mosquitto and influxd with their data under `var/`, then the simulators, one edge agent
per simulated enterprise, ingest, analytics and the API, each as its own `smartpark ...` process as in
production; shows a live status line; stops everything cleanly on Ctrl-C. A second demo on the same
folder is refused with a clear message.

The broker it starts requires authentication: fresh accounts and passwords are generated on every start
(`var/mosquitto/auth/`, see deploy/security.py); each edge agent gets its gateway's account in its config
file (0600) and each cloud service its own account through SMARTPARK_MQTT__USERNAME/PASSWORD in its
environment, so the ACL limits every process to its own topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from deploy.demo_accounts import demo_logins, format_logins, revoke_status_key, status_key, write_logins
from deploy.security import BrokerAuth, generate_broker_auth
from deploy.services import ServiceError, influxd, mosquitto, port_answers
from deploy.stack import gateway_configs
from parkmodel.registry import Registry, load_registry
from reports.demo_data import seed_demo_economy
from smartpark.config import ConfigError, Settings, load_settings

SIM_BASE_PORT = 15020
SIM_CONTROL_PORT = 15019


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    oneshot: bool = False  # a task that ends (history, backfill), not a service
    process: asyncio.subprocess.Process | None = None
    log: IO[bytes] | None = field(default=None, repr=False)


def _say(line: str) -> None:
    sys.stdout.write("\r\033[K" + line + "\n")
    sys.stdout.flush()


def _status(line: str) -> None:
    if sys.stdout.isatty():
        sys.stdout.write("\r\033[K" + line)
    else:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()


class DemoAlreadyRunning(RuntimeError):
    pass


@contextlib.contextmanager
def demo_lock(base_dir: Path) -> Any:
    """One demo per folder: an exclusive lock held for the demo's lifetime (released even on kill -9)."""
    base_dir.mkdir(parents=True, exist_ok=True)
    lock_path = base_dir / "demo.lock"
    info_path = base_dir / "demo.json"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = {}
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(info_path.read_text())
            raise DemoAlreadyRunning(
                f"a SmartPark demo is already running (pid {info.get('pid', '?')}) in {base_dir}/; "
                f"its dashboard is at {info.get('dashboard', '?')}. Stop it with Ctrl-C in its terminal "
                f"(or `kill {info.get('pid', 'PID')}`) before starting another."
            ) from None
        yield info_path
    finally:
        os.close(fd)


def write_configs(base_dir: Path, settings: Settings, registry: Registry, layout: dict[str, Any],
                  auth: BrokerAuth | None = None) -> list[Path]:
    """One edge config file per gateway, from the registry and the simulators' address layout.

    Args:
        base_dir: the demo's folder (configs go to demo/edge/).
        settings: broker address.
        registry: the gateways.
        layout: device id -> simulator address.
        auth: broker accounts; each config gets its gateway's (the file is then readable by its owner only).
    """
    edge_dir = base_dir / "demo" / "edge"
    edge_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for cfg in gateway_configs(registry, settings, layout, edge_dir):
        if auth is not None:
            account = auth.gateway(cfg["gateway"])
            cfg["mqtt"].update(username=account.username, password=account.password)
        path = edge_dir / f"{cfg['gateway']}.yaml"
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))
        paths.append(path)
    return paths


def service_env(base: dict[str, str], auth: BrokerAuth | None, account: str) -> dict[str, str]:
    """The environment of a cloud service: its own broker account, when the demo's broker has accounts.

    Args:
        base: the environment to extend.
        auth: the broker accounts (None: a broker that was already running; its settings are used as given).
        account: the service's account name (`ingest`, `analytics`, `api`, ...).
    """
    if auth is None:
        return base
    a = auth.service(account)
    return dict(base, SMARTPARK_MQTT__USERNAME=a.username, SMARTPARK_MQTT__PASSWORD=a.password)


async def _spawn(child: Child, env: dict[str, str]) -> None:
    child.log_path.parent.mkdir(parents=True, exist_ok=True)
    child.log = child.log_path.open("ab")
    # A session of its own: Ctrl-C reaches only this orchestrator, which then stops children in order.
    child.process = await asyncio.create_subprocess_exec(
        *child.argv, stdout=child.log, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
        env=env, start_new_session=True,
    )


async def _stop(children: list[Child], grace_s: float = 10.0) -> None:
    for child in children:
        if child.process and child.process.returncode is None:
            child.process.send_signal(signal.SIGINT)
    for child in children:
        if child.process is None:
            continue
        try:
            await asyncio.wait_for(child.process.wait(), grace_s)
        except TimeoutError:
            child.process.kill()
            await child.process.wait()
        if child.log:
            child.log.close()


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _read_layout(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data = yaml.safe_load(path.read_text())
    return data.get("devices", data) if data else None


async def _wait_for_layout(path: Path, sim: Child, limit_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if sim.process and sim.process.returncode is not None:
            raise RuntimeError(f"simulators exited with code {sim.process.returncode}:\n{_tail(sim.log_path)}")
        layout = await asyncio.to_thread(_read_layout, path)
        if layout:
            return layout
        await asyncio.sleep(0.2)
    raise RuntimeError(f"simulators did not write their layout to {path} within {limit_s:.0f} s")


def _history_children(exe: list[str], settings: Settings, days: int, logs: Path) -> list[Child]:
    """At first start: months of simulated history straight into InfluxDB, then the energy rollups over it."""
    if days <= 0 or _has_history(settings):
        return []
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    first = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600 - days * 86400))
    return [
        Child("history", [*exe, "simulate", "history", "--days", str(days), "--registry", str(settings.registry),
                          "--config", str(settings.var_dir / "demo" / "smartpark.yaml")],
              logs / "history.log", oneshot=True),
        Child("backfill", [*exe, "analytics", "backfill", "--from", first, "--to", today, "--config",
                           str(settings.var_dir / "demo" / "smartpark.yaml")], logs / "backfill.log", oneshot=True),
    ]


def _has_history(settings: Settings) -> bool:
    """Whether the database already holds readings older than a day (a previous demo wrote history)."""
    q = "SELECT count(active_power_kw) FROM telemetry WHERE time < now() - 1d"
    i = settings.influx
    auth = httpx.BasicAuth(i.username, i.password.get_secret_value()) if i.username and i.password else None
    try:
        r = httpx.get(f"{i.url}/query", params={"db": i.database, "q": q}, timeout=5, auth=auth)
        return bool(r.json()["results"][0].get("series"))
    except (httpx.HTTPError, ValueError, KeyError, IndexError):
        return False


async def _orchestrate(base_dir: Path, settings: Settings, registry: Registry, speed: float, config_path: Path,
                       info_path: Path, started_at: float, auth: BrokerAuth | None = None,
                       history_days: int = 0) -> int:
    logs = base_dir / "demo" / "logs"
    exe = [sys.executable, "-m", "smartpark.cli"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    layout_path = base_dir / "demo" / "layout.yaml"
    layout_path.unlink(missing_ok=True)
    dashboard = f"http://{settings.api.host}:{settings.api.port}/"

    sim = Child("simulators", [*exe, "simulate", "park", "--registry", str(settings.registry), "--host", "127.0.0.1",
                                "--base-port", str(SIM_BASE_PORT), "--control-port", str(SIM_CONTROL_PORT),
                                "--speed", str(speed), "--layout-out", str(layout_path)], logs / "simulators.log")
    children: list[Child] = [sim]
    key_id: str | None = None
    try:
        _status("[demo] starting simulated devices ...")
        await _spawn(sim, env)
        layout = await _wait_for_layout(layout_path, sim)
        edge_configs = write_configs(base_dir, settings, registry, layout, auth)
        services = [
            Child("ingest", [*exe, "ingest", "--config", str(config_path)], logs / "ingest.log"),
            Child("analytics", [*exe, "analytics", "--config", str(config_path)], logs / "analytics.log"),
            Child("alerts", [*exe, "alerts", "--config", str(config_path)], logs / "alerts.log"),
            Child("api", [*exe, "api", "--config", str(config_path)], logs / "api.log"),
        ]
        edges = [Child(f"edge:{p.stem}", [*exe, "edge", "--config", str(p)], logs / f"edge-{p.stem}.log")
                 for p in edge_configs]
        for i, child in enumerate([*services, *edges], 1):
            _status(f"[demo] starting {child.name} ({i}/{len(services) + len(edges)}) ...")
            await _spawn(child, env if child.name.startswith("edge:") else service_env(env, auth, child.name))
            children.append(child)
        await asyncio.to_thread(info_path.write_text, json.dumps({"pid": os.getpid(), "dashboard": dashboard}))
        logins = await asyncio.to_thread(demo_logins, settings, registry)
        await asyncio.to_thread(seed_demo_economy, settings, registry)  # a year of economic data, once
        await asyncio.to_thread(write_logins, base_dir / "demo" / "logins.txt", logins)
        key_id, key = await asyncio.to_thread(status_key, settings)
        history = await asyncio.to_thread(_history_children, exe, settings, history_days, logs)

        ready_at: float | None = None
        async with httpx.AsyncClient(timeout=2.0, headers={"Authorization": f"Bearer {key}"}) as http:
            while True:
                for c in [c for c in children if c.oneshot and c.process and c.process.returncode is not None]:
                    children.remove(c)
                    if c.log:
                        c.log.close()
                    if c.process and c.process.returncode:
                        _say(f"[demo] {c.name} failed (code {c.process.returncode}); see {c.log_path}")
                        history.clear()
                    else:
                        _say(f"[demo] {c.name} done")
                if ready_at is not None and history and not any(c.oneshot for c in children):
                    nxt = history.pop(0)
                    _say(f"[demo] {nxt.name}: {' '.join(nxt.argv[3:])} (log {nxt.log_path})")
                    await _spawn(nxt, service_env(env, auth, "ingest"))
                    children.append(nxt)
                dead = [c for c in children if not c.oneshot and c.process and c.process.returncode is not None]
                if dead:
                    for c in dead:
                        _say(f"[demo] {c.name} exited with code {c.process.returncode}; last lines of "
                             f"{c.log_path}:\n{_tail(c.log_path)}")
                    return 1
                api_ok, reporting, total, parks = False, 0, 0, 0
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                    r = await http.get(f"{dashboard}api/v1/kpi")
                    api_ok = r.status_code == 200
                    body = r.json()
                    items = body.get("items", body) if isinstance(body, dict) else body
                    for item in items:
                        kpi = item.get("kpi") or {}
                        if kpi:
                            parks += 1
                        reporting += int(kpi.get("devices_reporting") or 0)
                        total += int(kpi.get("devices_total") or 0)
                if ready_at is None and api_ok and reporting > 0:
                    ready_at = time.monotonic()
                    _say(f"[demo] live data after {ready_at - started_at:.0f} s. Dashboard 看板: {dashboard}  "
                         f"(API docs {dashboard}docs). Ctrl-C stops everything.\n"
                         f"[demo] log in with (also in {base_dir}/demo/logins.txt):\n{format_logins(logins)}")
                elapsed = time.monotonic() - started_at
                _status(f"[demo] {elapsed:5.0f} s | processes {len(children)} up | api {'ok' if api_ok else '...'} | "
                        f"parks with KPIs {parks} | devices reporting {reporting}/{total or '?'} | {dashboard}")
                await asyncio.sleep(1.0)
    finally:
        _say("[demo] stopping ...")
        # Edge agents first so nothing is left unsent, then the cloud side, the simulators last.
        order = [c for c in children if c.name.startswith("edge:")]
        order += [c for c in children if not c.name.startswith("edge:") and c is not sim]
        order += [sim]
        await _stop(order)
        if key_id is not None:
            await asyncio.to_thread(revoke_status_key, settings, key_id)


def run_demo(base_dir: Path = Path("var"), speed: float = 1.0, config: Path | None = None,
             history_days: int = 28) -> int:
    """Run the demo until Ctrl-C; returns the process exit code.

    Args:
        base_dir: data, configs and logs.
        speed: simulated seconds per real second.
        config: optional settings file.
        history_days: days of simulated history written at first start (0: none).
    """
    started_at = time.monotonic()
    base_dir = base_dir.resolve()
    try:
        settings = load_settings(config, var_dir=base_dir)
        registry = load_registry(settings.registry)
    except (ConfigError, ValueError) as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        return 2
    try:
        with demo_lock(base_dir) as info_path, contextlib.ExitStack() as stack:
            m, i = settings.mqtt, settings.influx
            auth: BrokerAuth | None = None
            if port_answers(m.host, m.port):
                _say(f"[demo] using the MQTT broker already answering on {m.host}:{m.port} "
                     "(with the mqtt credentials of the settings, if any)")
            else:
                _status(f"[demo] starting mosquitto on {m.host}:{m.port} (data in {base_dir}/mosquitto) ...")
                auth = generate_broker_auth(registry, base_dir / "mosquitto" / "auth")
                stack.enter_context(mosquitto(base_dir / "mosquitto", port=m.port, host=m.host,
                                              passwd_file=auth.passwd_file, acl_file=auth.acl_file))
                _say(f"[demo] broker requires accounts; fresh credentials in {auth.credentials_file}")
            host, _, port = i.url.removeprefix("http://").partition(":")
            if port_answers(host, int(port or 8086)):
                _say(f"[demo] using the InfluxDB already answering at {i.url}")
            else:
                _status(f"[demo] starting influxd at {i.url} (data in {base_dir}/influxdb) ...")
                stack.enter_context(influxd(base_dir / "influxdb", port=int(port or 8086), host=host))
            config_path = base_dir / "demo" / "smartpark.yaml"
            config_path.parent.mkdir(parents=True, exist_ok=True)
            data = json.loads(settings.model_dump_json(exclude_none=True))
            if auth is not None:  # each service gets its own account through its environment instead
                data["mqtt"].pop("username", None)
                data["mqtt"].pop("password", None)
            elif settings.mqtt.password is not None:  # pydantic masks secrets in dumps: keep the real one
                data["mqtt"]["password"] = settings.mqtt.password.get_secret_value()
            if settings.influx.password is not None:  # masked as well: children would log in with asterisks
                data["influx"]["password"] = settings.influx.password.get_secret_value()
            config_path.unlink(missing_ok=True)
            fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(yaml.safe_dump(data))
            try:
                return asyncio.run(_orchestrate(base_dir, settings, registry, speed, config_path, info_path,
                                                started_at, auth, history_days=history_days))
            except KeyboardInterrupt:
                return 0
            finally:
                _say("[demo] stopped.")
    except DemoAlreadyRunning as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        return 1
    except ServiceError as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        return 1
