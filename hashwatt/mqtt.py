"""MQTT client construction: paho for the collector, the TLS context for both sides."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from hashwatt.config import Config, Role


def make_client(cfg: Config, client_id: str, *,
                protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
                role: Role = "collector") -> mqtt.Client:
    """A paho client with the role's credentials and TLS from the config (not connected)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    username, password = cfg.mqtt_login(role)
    if username:
        client.username_pw_set(username, password)
    context = tls_context(cfg)
    if context is not None:
        client.tls_set_context(context)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    """The TLS context for the broker (verifying against ca_file when given), or None."""
    if not cfg.mqtt.tls:
        return None
    return ssl.create_default_context(cafile=str(cfg.mqtt.ca_file) if cfg.mqtt.ca_file else None)
