"""The broker credentials and TLS of a component, as `aiomqtt.Client` keyword arguments.

Every component builds its own client (its own id, protocol, session and will); this module only adds
what the broker's security asks of all of them, so authentication and TLS are configured in one place:

    client = aiomqtt.Client(settings.mqtt.host, settings.mqtt.port, identifier=..., **mqtt_client_kwargs(settings.mqtt))
"""

from __future__ import annotations

import ssl
from typing import Any

from smartpark.config import MqttSettings

__all__ = ["mqtt_client_kwargs", "tls_context"]


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A client TLS context that trusts `ca_file` (or the system CAs) and checks the broker's host name.

    Args:
        ca_file: PEM file of the CA that signed the broker's certificate; None = the system trust store.

    Raises:
        ValueError: the CA file cannot be read or holds no certificate (the message names the file).
    """
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"mqtt.tls_ca_file {ca_file}: cannot load a CA certificate from it: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def mqtt_client_kwargs(settings: MqttSettings) -> dict[str, Any]:
    """`username`, `password` and `tls_context` for `aiomqtt.Client`, from the mqtt section of the settings.

    TLS is on when `tls_ca_file` is set: the broker's certificate must chain to that CA and name the host
    the client connects to (`settings.host`). Without credentials the client connects anonymously, which
    a broker started by the platform refuses (`allow_anonymous false`).

    Args:
        settings: the mqtt section (`Settings.mqtt`).

    Raises:
        ValueError: `tls_ca_file` is set but unusable.
    """
    return {
        "username": settings.username,
        "password": settings.password.get_secret_value() if settings.password is not None else None,
        "tls_context": tls_context(str(settings.tls_ca_file)) if settings.tls_ca_file is not None else None,
    }
