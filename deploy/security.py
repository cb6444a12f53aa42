"""Broker security for the platform's Mosquitto: one account per gateway and per service, an ACL per account.

`generate_broker_auth(registry, out_dir)` writes, with fresh random passwords on every call:

- `passwd`: Mosquitto's password file in its own hash format (`user:$7$101$salt$hash`, PBKDF2-SHA512,
  exactly what `mosquitto_passwd -b` writes), so no subprocess per account;
- `acl`: one `user` block per account with the topics it may write and read (see `gateway_rules` etc.);
- `credentials.yaml` (mode 0600): every account's username and password, for the processes that use them.

Who may do what (topic tree of DESIGN.md):

| account | writes | reads |
|---|---|---|
| `gw-{gateway}` | its devices' `telemetry`/`event`, its own `status` | its own `cmd/#` |
| `ent-{enterprise}` | — | `sp/v1/{park}/{enterprise}/alerts` |
| `emergency` | — | `sp/v1/+/safety` |
| `ingest` | `sp/v1/_deadletter/#` | telemetry, event, status of every device |
| `analytics`, `alerts` | `sp/v1/+/kpi`, `sp/v1/+/+/alerts`, `sp/v1/+/safety` | telemetry, event, status, kpi |
| `api` | — | kpi, alerts, safety |
| `ops` | — | `sp/v1/#` (operations center and monitoring: includes the dead letters) |

`generate_test_pki(out_dir)` makes a throwaway CA and a server certificate with Debian's `openssl` CLI
for the TLS listener (`deploy.services.TlsListener`); production certificates are made as
deploy/mosquitto/README.md shows.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from deploy.services import TlsListener
from parkmodel.registry import Registry
from parkmodel.topics import DEAD_LETTER_ROOT, ROOT

__all__ = [
    "SERVICE_ACCOUNTS", "Account", "BrokerAuth", "Rule", "generate_broker_auth", "generate_test_pki",
    "mosquitto_password_hash",
]

Access = Literal["read", "write", "readwrite"]
Role = Literal["gateway", "enterprise", "emergency", "service"]

#: What Mosquitto 2.0's `mosquitto_passwd` uses: PBKDF2-SHA512, 101 iterations, 12-byte salt.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12

_DEVICE_STREAMS = (f"{ROOT}/+/+/+/telemetry", f"{ROOT}/+/+/+/event", f"{ROOT}/+/+/+/status")
_PUBLISHED_ALERTS = (f"{ROOT}/+/kpi", f"{ROOT}/+/+/alerts", f"{ROOT}/+/safety")


@dataclass(frozen=True, slots=True)
class Rule:
    """One ACL line: `topic {access} {topic}`."""

    access: Access
    topic: str

    def __post_init__(self) -> None:
        if not self.topic or any(c.isspace() for c in self.topic):
            raise ValueError(f"ACL topic {self.topic!r} is empty or holds white space")

    def line(self) -> str:
        return f"topic {self.access} {self.topic}"


@dataclass(frozen=True, slots=True)
class Account:
    """A broker account: who it is for, its password and its ACL."""

    username: str
    password: str = field(repr=False)
    role: Role
    rules: tuple[Rule, ...]
    park: str | None = None
    enterprise: str | None = None
    gateway: str | None = None


def _service_rules() -> dict[str, tuple[Rule, ...]]:
    reads = [Rule("read", t) for t in _DEVICE_STREAMS]
    return {
        "ingest": (*reads, Rule("write", f"{DEAD_LETTER_ROOT}/#")),
        "analytics": (*reads, Rule("read", f"{ROOT}/+/kpi"), *(Rule("write", t) for t in _PUBLISHED_ALERTS)),
        "alerts": (*reads, Rule("read", f"{ROOT}/+/kpi"), *(Rule("write", t) for t in _PUBLISHED_ALERTS)),
        "api": tuple(Rule("read", t) for t in _PUBLISHED_ALERTS),
        "emergency": (Rule("read", f"{ROOT}/+/safety"),),
        "ops": (Rule("read", f"{ROOT}/#"),),
    }


#: The cloud-side accounts (and the two human-facing read-only ones), by name = username.
SERVICE_ACCOUNTS: tuple[str, ...] = tuple(_service_rules())


def gateway_rules(park: str, enterprise: str, gateway: str, devices: Iterable[str]) -> tuple[Rule, ...]:
    """A gateway writes only its own devices' telemetry and events and its own status; reads its commands.

    Args:
        park: park id.
        enterprise: enterprise id.
        gateway: gateway id.
        devices: ids of the gateway's devices.
    """
    base = f"{ROOT}/{park}/{enterprise}"
    rules = [Rule("write", f"{base}/{d}/{kind}") for d in devices for kind in ("telemetry", "event")]
    rules += [Rule("write", f"{base}/{gateway}/status"), Rule("read", f"{base}/{gateway}/cmd/#")]
    return tuple(rules)


def mosquitto_password_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The `$7$...` hash Mosquitto 2.0 keeps in its password file (same as `mosquitto_passwd`).

    Args:
        password: the clear-text password.
        salt: 12 random bytes unless given (tests).
        iterations: PBKDF2 iterations.
    """
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass(frozen=True)
class BrokerAuth:
    """The files of one generated broker security set and the accounts in them.

    Args:
        passwd_file: Mosquitto `password_file`.
        acl_file: Mosquitto `acl_file`.
        credentials_file: YAML (0600) with every account's username and password.
        accounts: by username.
    """

    passwd_file: Path
    acl_file: Path
    credentials_file: Path
    accounts: dict[str, Account]

    def service(self, name: str) -> Account:
        """The account of a cloud service (`ingest`, `analytics`, `alerts`, `api`, `emergency`, `ops`)."""
        return self._get(name)

    def gateway(self, gateway_id: str) -> Account:
        return self._get(f"gw-{gateway_id}")

    def enterprise(self, enterprise_id: str) -> Account:
        """The alert subscriber account of an enterprise."""
        return self._get(f"ent-{enterprise_id}")

    def _get(self, username: str) -> Account:
        try:
            return self.accounts[username]
        except KeyError:
            raise KeyError(f"no broker account {username!r} in {self.credentials_file}") from None

    @classmethod
    def load(cls, out_dir: Path) -> BrokerAuth:
        """Read a set written by `generate_broker_auth` (passwords from the credentials file).

        Args:
            out_dir: the folder it was written to.
        """
        data = yaml.safe_load((out_dir / "credentials.yaml").read_text(encoding="utf-8"))
        accounts = {}
        for name, a in data["accounts"].items():
            rules = tuple(Rule(r.split(" ", 1)[0], r.split(" ", 1)[1]) for r in a.get("acl", []))  # type: ignore[arg-type]
            accounts[name] = Account(a["username"], a["password"], a["role"], rules, a.get("park"),
                                     a.get("enterprise"), a.get("gateway"))
        return cls(out_dir / "passwd", out_dir / "acl", out_dir / "credentials.yaml", accounts)


def _accounts(registry: Registry) -> Iterator[Account]:
    def password() -> str:
        return secrets.token_urlsafe(24)

    for name, rules in _service_rules().items():
        yield Account(name, password(), "emergency" if name == "emergency" else "service", rules)
    for park in registry.parks:
        for ent in park.enterprises:
            yield Account(f"ent-{ent.id}", password(), "enterprise",
                          (Rule("read", f"{ROOT}/{park.id}/{ent.id}/alerts"),), park.id, ent.id)
            for gw in ent.gateways:
                yield Account(f"gw-{gw.id}", password(), "gateway",
                              gateway_rules(park.id, ent.id, gw.id, (d.id for d in gw.devices)), park.id, ent.id,
                              gw.id)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read, never briefly readable by others."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def generate_broker_auth(registry: Registry, out_dir: Path) -> BrokerAuth:
    """Write `passwd`, `acl` and `credentials.yaml` for every account the registry implies (fresh passwords).

    Args:
        registry: the parks, enterprises and gateways (one account per gateway and per enterprise).
        out_dir: folder for the three files (created; existing files are replaced).

    Returns:
        The files and the accounts.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir.chmod(0o700)
    accounts = {a.username: a for a in _accounts(registry)}
    passwd = "".join(f"{a.username}:{mosquitto_password_hash(a.password)}\n" for a in accounts.values())
    acl_lines = ["# Generated by deploy/security.py: one block per account; anything not listed is denied.", ""]
    for a in accounts.values():
        acl_lines += [f"user {a.username}", *(r.line() for r in a.rules), ""]
    creds = {"accounts": {
        a.username: {k: v for k, v in {
            "username": a.username, "password": a.password, "role": a.role, "park": a.park,
            "enterprise": a.enterprise, "gateway": a.gateway, "acl": [f"{r.access} {r.topic}" for r in a.rules],
        }.items() if v is not None}
        for a in accounts.values()
    }}
    auth = BrokerAuth(out_dir / "passwd", out_dir / "acl", out_dir / "credentials.yaml", accounts)
    _write_private(auth.passwd_file, passwd)
    _write_private(auth.acl_file, "\n".join(acl_lines))
    _write_private(auth.credentials_file, yaml.safe_dump(creds, sort_keys=False, allow_unicode=True))
    return auth


def generate_test_pki(out_dir: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                      days: int = 2) -> TlsListener:
    """A throwaway CA and a server certificate for `hosts`, made with the `openssl` CLI. For tests and demos.

    Args:
        out_dir: folder for ca.crt, ca.key, server.crt, server.key (keys 0600).
        hosts: names and addresses the server certificate is valid for (subjectAltName).
        days: validity.

    Returns:
        The TLS listener files (port chosen when the broker starts).

    Raises:
        RuntimeError: openssl is missing or failed (its message included).
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not found: install Debian's 'openssl' package")
    out_dir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = out_dir / "ca.key", out_dir / "ca.crt"
    key, csr, crt = out_dir / "server.key", out_dir / "server.csr", out_dir / "server.crt"
    san = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
    ext = out_dir / "server.ext"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n")
    steps = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
         "-days", str(days), "-subj", "/CN=SmartPark test CA"],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", f"/CN={hosts[0]}"],
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
         "-out", str(crt), "-days", str(days), "-extfile", str(ext)],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} failed: {done.stderr.strip()}")
    for k in (ca_key, key):
        k.chmod(0o600)
    return TlsListener(cafile=ca_crt, certfile=crt, keyfile=key)
