"""Nobody let in: the broker the platform starts requires an account, and each account reaches only its topics."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
import yaml

from deploy.security import BrokerAuth, generate_broker_auth, generate_test_pki, mosquitto_password_hash
from deploy.services import RunningService, mosquitto
from parkmodel.topics import alerts_topic, safety_topic
from smartpark.config import MqttSettings
from smartpark.mqtt import mqtt_client_kwargs, tls_context
from tests.conftest import make_registry

pytestmark = pytest.mark.integration


@pytest.fixture
def secured(tmp_path: Path, uid: str) -> Iterator[tuple[RunningService, BrokerAuth, str]]:
    registry = make_registry(uid, enterprises=2)
    auth = generate_broker_auth(registry, tmp_path / "auth")
    tls = generate_test_pki(tmp_path / "pki")
    with mosquitto(tmp_path / "mq", passwd_file=auth.passwd_file, acl_file=auth.acl_file, tls=tls) as broker:
        yield broker, auth, str(tls.cafile)


def test_generated_files_are_private_and_passwords_fresh(tmp_path: Path, uid: str) -> None:
    registry = make_registry(uid, enterprises=2)
    first = generate_broker_auth(registry, tmp_path / "a")
    second = generate_broker_auth(registry, tmp_path / "a")
    for f in (second.passwd_file, second.acl_file, second.credentials_file):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert {a.password for a in first.accounts.values()}.isdisjoint(a.password for a in second.accounts.values())
    assert set(second.accounts) == {"ingest", "analytics", "alerts", "api", "emergency", "ops",
                                    f"ent-e{uid}-0", f"ent-e{uid}-1", f"gw-g{uid}-0", f"gw-g{uid}-1"}
    creds = yaml.safe_load(second.credentials_file.read_text())["accounts"]
    assert creds[f"gw-g{uid}-0"]["password"] == second.gateway(f"g{uid}-0").password
    assert BrokerAuth.load(tmp_path / "a").accounts == second.accounts
    # The hash is the one mosquitto_passwd writes: $7$ (PBKDF2-SHA512), 101 iterations.
    assert mosquitto_password_hash("pw", salt=b"0" * 12).startswith("$7$101$MDAwMDAwMDAwMDAw$")


async def test_anonymous_and_wrong_password_are_refused(secured: tuple[RunningService, BrokerAuth, str]) -> None:
    broker, _, _ = secured
    for username, password in ((None, None), ("ingest", "wrong"), ("nobody", "x")):
        with pytest.raises(aiomqtt.MqttError, match=r"Not authorized|135"):
            async with aiomqtt.Client(broker.host, broker.port, username=username, password=password):
                pass


async def _receive(client: aiomqtt.Client, seconds: float) -> list[str]:
    got: list[str] = []
    try:
        async with asyncio.timeout(seconds):
            async for m in client.messages:
                got.append(m.topic.value)
    except TimeoutError:
        pass
    return got


async def test_each_reader_sees_only_its_own_topics(secured: tuple[RunningService, BrokerAuth, str], uid: str) -> None:
    broker, auth, _ = secured
    park = f"p{uid}"
    ent0, ent1 = f"e{uid}-0", f"e{uid}-1"

    def client(name: str) -> aiomqtt.Client:
        a = auth.accounts[name]
        return aiomqtt.Client(broker.host, broker.port, username=a.username, password=a.password,
                              protocol=aiomqtt.ProtocolVersion.V5)

    async with client(f"ent-{ent0}") as ent, client("emergency") as emergency, client("api") as api, \
            client("analytics") as analytics:
        # Mosquitto 2.0.11 grants every SUBSCRIBE and enforces the ACL on delivery.
        await ent.subscribe("sp/v1/#", qos=1)
        await emergency.subscribe("sp/v1/#", qos=1)
        await api.subscribe("sp/v1/#", qos=1)
        for topic in (alerts_topic(park, ent0), alerts_topic(park, ent1), safety_topic(park), f"sp/v1/{park}/kpi"):
            await analytics.publish(topic, b"{}", qos=1)
        ent_got, emergency_got, api_got = await asyncio.gather(
            _receive(ent, 1.0), _receive(emergency, 1.0), _receive(api, 1.0))
    assert ent_got == [alerts_topic(park, ent0)]
    assert emergency_got == [safety_topic(park)]
    assert sorted(api_got) == sorted([alerts_topic(park, ent0), alerts_topic(park, ent1), safety_topic(park),
                                      f"sp/v1/{park}/kpi"])


async def test_gateway_reads_only_its_own_commands(secured: tuple[RunningService, BrokerAuth, str],
                                                   uid: str) -> None:
    broker, auth, _ = secured
    gw0, ops = auth.gateway(f"g{uid}-0"), auth.service("ops")
    async with aiomqtt.Client(broker.host, broker.port, username=gw0.username, password=gw0.password) as gw:
        await gw.subscribe(f"sp/v1/p{uid}/+/+/cmd/#", qos=1)
        await gw.subscribe(f"sp/v1/p{uid}/e{uid}-0/+/telemetry", qos=1)  # write-only for it
        # No account may publish commands yet (no such account): even ops, which reads everything, is refused.
        async with aiomqtt.Client(broker.host, broker.port, username=ops.username, password=ops.password) as o:
            await o.publish(f"sp/v1/p{uid}/e{uid}-1/g{uid}-1/cmd/reboot", b"x", qos=1)
        await gw.publish(f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry", b"{}", qos=1)
        assert await _receive(gw, 1.0) == []


async def test_tls_listener_with_the_settings_helper(secured: tuple[RunningService, BrokerAuth, str],
                                                     uid: str) -> None:
    broker, auth, ca = secured
    assert broker.tls_port is not None
    gw = auth.gateway(f"g{uid}-0")
    settings = MqttSettings(host="127.0.0.1", port=broker.tls_port, username=gw.username, password=gw.password,
                            tls_ca_file=Path(ca))
    kwargs = mqtt_client_kwargs(settings)
    assert kwargs["tls_context"] is not None
    async with aiomqtt.Client(settings.host, settings.port, **kwargs) as client:
        await client.publish(f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry", b"{}", qos=1)
    # Without the CA the broker's certificate is not trusted.
    with pytest.raises(aiomqtt.MqttError):
        plain = mqtt_client_kwargs(MqttSettings(host="127.0.0.1", port=broker.tls_port, username=gw.username,
                                                password=gw.password, tls_ca_file=None))
        import ssl

        plain["tls_context"] = ssl.create_default_context()
        async with aiomqtt.Client(settings.host, settings.port, **plain):
            pass


def test_settings_helper_without_tls_and_bad_ca(tmp_path: Path) -> None:
    assert mqtt_client_kwargs(MqttSettings()) == {"username": None, "password": None, "tls_context": None}
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match="tls_ca_file"):
        mqtt_client_kwargs(MqttSettings(tls_ca_file=bad))


async def test_edge_agent_publishes_over_tls_with_its_gateway_account(
        secured: tuple[RunningService, BrokerAuth, str], uid: str, tmp_path: Path) -> None:
    """A gateway reaches the broker's TLS listener with the CA from its config and its own account."""
    from edge_agent.agent import EdgeAgent
    from edge_agent.config import parse_gateway_config
    from parkmodel.codec import decode_telemetry
    from tests.edge.modbus_server import tcp_server

    broker, auth, cafile = secured
    assert broker.tls_port is not None
    gw = auth.gateway(f"g{uid}-0")
    ops = auth.accounts["ops"]
    device = f"m{uid}"  # make_registry's grid meter of enterprise 0, behind gateway g{uid}-0
    async with tcp_server([1]) as (_, modbus_port):
        cfg = parse_gateway_config({
            "park": f"p{uid}", "enterprise": f"e{uid}-0", "gateway": f"g{uid}-0",
            "mqtt": {"host": "localhost", "port": broker.tls_port, "client_id": f"edge-tls-{uid}",
                     "username": gw.username, "password": gw.password, "tls_ca_file": cafile,
                     "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
            "store": {"path": str(tmp_path / "queue.sqlite")},
            "devices": [{"id": device, "template": "acrel_dtsd1352", "interval_s": 0.2, "timeout_s": 0.3,
                         "transport": {"kind": "tcp", "host": "127.0.0.1", "port": modbus_port, "unit_id": 1}}],
        }, "tls test config")
        async with aiomqtt.Client("localhost", broker.tls_port, username=ops.username, password=ops.password,
                                  tls_context=tls_context(cafile)) as sub:
            await sub.subscribe(f"sp/v1/p{uid}/e{uid}-0/{device}/telemetry", qos=1)
            async with EdgeAgent(cfg):
                async with asyncio.timeout(15):
                    async for message in sub.messages:
                        assert decode_telemetry(bytes(message.payload)).points  # type: ignore[arg-type]
                        break
