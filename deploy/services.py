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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
    """A started service. `stop()` then `start()` restarts it with the same command, port and data (fault tests)."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)
    ready: Callable[[], bool] | None = field(default=None, repr=False)
    tls_port: int | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the same command again after `stop()`/`kill()` and wait until it answers (no-op if running).

        Args:
            timeout: longest wait for the service to answer.
        """
        if self.process.poll() is None:
            return
        if not self.argv or self.ready is None:
            raise ServiceError(f"{self.name} was not started by deploy.services; cannot restart it")
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        _wait(self.ready, f"{self.name} on {self.host}:{self.port}", self.process, self.log_path, timeout)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

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


def _wait(check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
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


@dataclass(frozen=True)
class TlsListener:
    """A TLS listener of Mosquitto (`listener {port}` with `cafile`/`certfile`/`keyfile`).

    Args:
        cafile: PEM of the CA clients are told to trust (and that signs client certificates, if required).
        certfile: the broker's certificate (PEM), valid for the names clients connect to.
        keyfile: its private key (PEM), readable only by the broker's user.
        port: the listener's port (None = a free one, 8883 in production).
        require_certificate: also demand a client certificate signed by `cafile`.
    """

    cafile: Path
    certfile: Path
    keyfile: Path
    port: int | None = None
    require_certificate: bool = False

    def config(self, port: int, host: str) -> str:
        return (f"listener {port} {host}\n"
                f"cafile {self.cafile}\ncertfile {self.certfile}\nkeyfile {self.keyfile}\n"
                "tls_version tlsv1.2\n"
                f"require_certificate {'true' if self.require_certificate else 'false'}\n")


def mosquitto_config(port: int, data_dir: Path, host: str = "127.0.0.1", extra: str = "", *,
                     passwd_file: Path | None = None, acl_file: Path | None = None,
                     tls: TlsListener | None = None, tls_port: int | None = None) -> str:
    """The broker's config: a plain listener, optionally a TLS one; anonymous unless a password file is given.

    Args:
        port: plain MQTT listener port.
        data_dir: persistence folder.
        host: address both listeners bind to.
        extra: appended verbatim.
        passwd_file: Mosquitto password file; with it `allow_anonymous false`.
        acl_file: Mosquitto ACL file (needs `passwd_file`).
        tls: a TLS listener to add.
        tls_port: its port (required with `tls`).
    """
    if acl_file is not None and passwd_file is None:
        raise ValueError("an ACL without a password file would apply to anonymous clients only: give passwd_file")
    # Started as root, mosquitto drops to the `mosquitto` user, which cannot write our persistence folder.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
    # Global security settings (per_listener_settings false): they apply to the plain and TLS listeners alike.
    security = "allow_anonymous true\n"
    if passwd_file is not None:
        security = f"allow_anonymous false\npassword_file {passwd_file}\n"
        if acl_file is not None:
            security += f"acl_file {acl_file}\n"
    tls_conf = ""
    if tls is not None:
        if tls_port is None:
            raise ValueError("tls_port is required with tls")
        tls_conf = tls.config(tls_port, host)
    return (
        user + f"listener {port} {host}\n"
        + tls_conf
        + security
        + "persistence true\n"
        f"persistence_location {data_dir}/\n"
        "autosave_interval 1\n"
        "max_queued_messages 1000000\n"
        "max_inflight_messages 100\n"
        f"log_dest file {data_dir}/mosquitto.log\n"  # flushed per line, unlike stdout into a file

        "log_type error\nlog_type warning\nlog_type notice\n"
        f"{extra}"
    )


@contextlib.contextmanager
def mosquitto(data_dir: Path, port: int | None = None, host: str = "127.0.0.1", extra_config: str = "",
              timeout: float = 15.0, *, passwd_file: Path | None = None, acl_file: Path | None = None,
              tls: TlsListener | None = None) -> Iterator[RunningService]:
    """Run a Mosquitto broker with its config, persistence and log under `data_dir`.

    Args:
        data_dir: folder for config, persistence and log.
        port: plain listener port (None = a free one).
        host: address to bind.
        extra_config: appended to the generated config.
        timeout: longest wait for the broker to answer.
        passwd_file: require authentication against this password file (see deploy.security).
        acl_file: and restrict each account to the topics of this ACL file.
        tls: also listen with TLS (its port is `RunningService.tls_port`).
    """
    binary = find_binary(MOSQUITTO_BINARIES, "mosquitto")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    tls_port = (tls.port or free_port(host)) if tls is not None else None
    conf = data_dir / "mosquitto.conf"
    conf.write_text(mosquitto_config(port, data_dir, host, extra_config, passwd_file=passwd_file, acl_file=acl_file,
                                     tls=tls, tls_port=tls_port))
    log = data_dir / "mosquitto.log"
    argv = [binary, "-c", str(conf)]

    def ready() -> bool:
        return port_answers(host, port) and (tls_port is None or port_answers(host, tls_port))

    with log.open("ab") as out:
        # A session of its own: a Ctrl-C in the terminal reaches only the demo, which stops the services last.
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    service = RunningService("mosquitto", host, port, proc, log, argv, ready, tls_port)
    try:
        _wait(ready, f"mosquitto on {host}:{port}", proc, log, timeout)
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
    argv = [binary, "run", "-config", str(conf)]
    with log.open("ab") as out:
        # A session of its own: a Ctrl-C in the terminal reaches only the demo, which stops the services last.
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)

    def ready() -> bool:
        return _influx_ping(host, port)

    service = RunningService("influxd", host, port, proc, log, argv, ready)
    try:
        _wait(ready, f"influxd on {host}:{port}", proc, log, timeout)
        yield service
    finally:
        service.stop()
