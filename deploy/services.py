"""Start Mosquitto and influxd from the installed binaries, with their data under a folder of ours.

Used by `make demo` and by the tests (on free loopback ports). Each service is a context manager that
waits until the service answers and stops it (and only it) on exit.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO_BINARIES = ("mosquitto", "/usr/sbin/mosquitto")
INFLUXD_BINARIES = ("influxd", "/usr/bin/influxd")


class ServiceError(RuntimeError):
    """A service could not be started; the message says why and what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_binary(candidates: tuple[str, ...], package: str) -> str:
    for c in candidates:
        found = shutil.which(c)
        if found:
            return found
    raise ServiceError(f"{candidates[0]} not found: install Debian's '{package}' package (apt-get install {package})")


@dataclass
class RunningService:
    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """`kill -9`, for fault tests."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _wait(check: callable, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServiceError(f"{what} exited with code {proc.returncode} during start-up; log {log}:\n{tail}")
        if check():
            return
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise ServiceError(f"{what} did not answer within {timeout:.0f} s; see {log}")


def mosquitto_config(port: int, data_dir: Path, host: str = "127.0.0.1", extra: str = "") -> str:
    # Started as root, mosquitto drops to the `mosquitto` user, which cannot write our persistence folder.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
    return (
        user + f"listener {port} {host}\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {data_dir}/\n"
        "autosave_interval 1\n"
        "max_queued_messages 1000000\n"
        "max_inflight_messages 100\n"
        "log_dest stdout\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        f"{extra}"
    )


@contextlib.contextmanager
def mosquitto(data_dir: Path, port: int | None = None, host: str = "127.0.0.1", extra_config: str = "",
              timeout: float = 15.0) -> Iterator[RunningService]:
    """Run a Mosquitto broker with its config, persistence and log under `data_dir`."""
    binary = find_binary(MOSQUITTO_BINARIES, "mosquitto")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    conf = data_dir / "mosquitto.conf"
    conf.write_text(mosquitto_config(port, data_dir, host, extra_config))
    log = data_dir / "mosquitto.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    service = RunningService("mosquitto", host, port, proc, log)
    try:
        _wait(lambda: port_answers(host, port), f"mosquitto on {host}:{port}", proc, log, timeout)
        yield service
    finally:
        service.stop()


def influxd_config(data_dir: Path, http_port: int, rpc_port: int, host: str = "127.0.0.1") -> str:
    return f"""reporting-disabled = true
bind-address = "{host}:{rpc_port}"
[meta]
  dir = "{data_dir}/meta"
[data]
  dir = "{data_dir}/data"
  wal-dir = "{data_dir}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1m"
  index-version = "inmem"
[coordinator]
  write-timeout = "30s"
  max-select-point = 0
  max-select-series = 0
[retention]
  enabled = true
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "{host}:{http_port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0
  max-concurrent-write-limit = 0
  max-enqueued-write-limit = 0
[logging]
  level = "warn"
[continuous_queries]
  enabled = true
  log-enabled = false
  run-interval = "1s"
"""


def _influx_ping(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=0.5) as r:
            return bool(r.status == 204)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def influxd(data_dir: Path, port: int | None = None, host: str = "127.0.0.1",
            timeout: float = 30.0) -> Iterator[RunningService]:
    """Run InfluxDB 1.x (Debian's `influxdb`) with its data under `data_dir`."""
    binary = find_binary(INFLUXD_BINARIES, "influxdb")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    rpc_port = free_port(host)
    conf = data_dir / "influxdb.conf"
    conf.write_text(influxd_config(data_dir, port, rpc_port, host))
    log = data_dir / "influxd.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([binary, "run", "-config", str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    service = RunningService("influxd", host, port, proc, log)
    try:
        _wait(lambda: _influx_ping(host, port), f"influxd on {host}:{port}", proc, log, timeout)
        yield service
    finally:
        service.stop()
