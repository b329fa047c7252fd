"""How to reach the brokers securely: TLS, SASL or both, from the settings.

One place builds both the Faust app's credentials and the kafka-python clients' options
(topic creation, ``tagger produce``), so the worker and the tools connect alike. Secrets
come from the settings (environment) and are handed to the clients only, never logged.
"""

from __future__ import annotations

import errno
import ssl
from typing import TYPE_CHECKING, Any

from streams.settings import Settings, revealed

if TYPE_CHECKING:
    import faust


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context for the brokers: the system's CAs, or the CA file; a client
    certificate for mutual TLS if one is set."""
    files = {
        "TAGGER_KAFKA_CA_FILE": settings.kafka_ca_file,
        "TAGGER_KAFKA_CERT_FILE": settings.kafka_cert_file,
        "TAGGER_KAFKA_KEY_FILE": settings.kafka_key_file,
    }
    for name, path in files.items():
        if path is not None and not path.is_file():  # ssl's own error names no file
            raise FileNotFoundError(errno.ENOENT, f"{name}: no such file", str(path))
    context = ssl.create_default_context(
        cafile=None if settings.kafka_ca_file is None else str(settings.kafka_ca_file)
    )
    if settings.kafka_cert_file is not None:
        key = None if settings.kafka_key_file is None else str(settings.kafka_key_file)
        context.load_cert_chain(str(settings.kafka_cert_file), key)
    return context


def faust_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """The Faust app's ``broker_credentials`` for the security protocol (None: plaintext)."""
    import faust  # noqa: PLC0415  (topic creation and `tagger produce` need no Faust)

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = tls_context(settings) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=revealed(settings.kafka_sasl_password),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=context,
    )


def bootstrap(settings: Settings) -> str:
    """host:port list of the broker URL (``kafka://a:9092;b:9092`` -> ``a:9092,b:9092``)."""
    return settings.broker_url.split("://", 1)[-1].replace(";", ",")


def client_options(settings: Settings) -> dict[str, Any]:
    """kafka-python client options: the bootstrap servers and the security settings."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap(settings),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol.endswith("SSL"):
        options["ssl_context"] = tls_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": revealed(settings.kafka_sasl_password),
        }
    return options
