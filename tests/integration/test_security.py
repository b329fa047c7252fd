"""Secrets and TLS settings reach the Kafka and Redis clients, and nothing else.

The Redis side (AUTH end to end, nothing in logs or metrics) is tested against a real
redis-server in test_pipeline; the broker here has no SASL, so these check what the
settings hand to the clients, which is all that is ours to get right.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import faust
import pytest
import redis
from pydantic import ValidationError

from streams.cli import main
from streams.kafka_auth import client_options, faust_credentials
from streams.local_stack import RedisServer, free_port
from streams.redis_store import redacted
from streams.settings import Settings

SECRET = "kafka-pw-8c1f"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key, made with openssl as an operator would."""
    folder = tmp_path_factory.mktemp("certs")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=tagger-test", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_plaintext_is_the_default_and_needs_no_credentials() -> None:
    settings = Settings(broker_url="kafka://a:9092;b:9092")
    assert faust_credentials(settings) is None
    assert client_options(settings) == {
        "bootstrap_servers": "a:9092,b:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_over_tls_hands_the_password_to_both_clients(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="tagger",
        kafka_sasl_password=SECRET,
        kafka_ca_file=cert,
        kafka_cert_file=cert,
        kafka_key_file=key,
    )
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("tagger", SECRET)
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert credentials.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert SECRET not in repr(credentials)

    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == SECRET
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    # The settings themselves never show the secret (logs, tracebacks, `repr`).
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    # A worker process gets it from its environment.
    assert settings.to_environment()["TAGGER_KAFKA_SASL_PASSWORD"] == SECRET


def test_tls_without_sasl(certificate: tuple[Path, Path]) -> None:
    cert, _ = certificate
    settings = Settings(kafka_security_protocol="SSL", kafka_ca_file=cert)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert "sasl_mechanism" not in client_options(settings)


def test_a_missing_ca_file_stops_the_worker_with_the_setting_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.pem"
    settings = Settings(kafka_security_protocol="SSL", kafka_ca_file=missing)
    with pytest.raises(FileNotFoundError):
        client_options(settings)
    monkeypatch.setenv("TAGGER_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("TAGGER_KAFKA_CA_FILE", str(missing))
    assert main(["run"]) == 1  # before any connection is tried
    assert capsys.readouterr().err == (
        f"tagger run: TAGGER_KAFKA_CA_FILE: no such file: {missing}\n"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:s3cret@host:6380/1", "rediss://user:***@host:6380/1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://user@host:6379/0", "redis://user@host:6379/0"),
        ("redis://host:6379/0?password=s3cret", "redis://host:6379/0?password=***"),
        (
            "rediss://host/0?ssl_cert_reqs=required&Password=s3cret&db=2",
            "rediss://host/0?ssl_cert_reqs=required&Password=***&db=2",
        ),
        ("redis://u:s3cret@host/0?pass%77ord=s3cret", "redis://u:***@host/0?pass%77ord=***"),
        ("unix:///run/redis.sock?db=1&password=s3cret", "unix:///run/redis.sock?db=1&password=***"),
        ("redis://:p@ss@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://host/0?ssl_keyfile=/k.pem", "redis://host/0?ssl_keyfile=***"),
        ("redis://host/0?x=1#frag", "redis://host/0?x=1#frag"),
    ],
)
def test_redis_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert "s3cret" not in redacted(url)


def test_tagger_profile_does_not_print_a_password_given_in_the_urls_query(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # redis-py takes ?password= from the query: with no AUTH on the server it is sent
    # and refused, so this server is asked for a password to be sure it is used.
    client = redis.Redis.from_url(redis_server.url)
    client.config_set("requirepass", "s3cret-in-query")
    try:
        monkeypatch.setenv("TAGGER_REDIS_URL", f"{redis_server.url}?password=s3cret-in-query")
        assert main(["profile", "nobody"]) == 1
        captured = capsys.readouterr()
        assert "no profile for user 'nobody' in" in captured.err
        assert "password=***" in captured.err
        assert "s3cret-in-query" not in captured.out + captured.err
    finally:
        client.auth("s3cret-in-query")
        client.config_set("requirepass", "")
        client.close()


@pytest.mark.integration
def test_tagger_profile_says_plainly_that_redis_cannot_be_read(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: a traceback. A wrong password and a port nobody listens on, each in the query.
    client = redis.Redis.from_url(redis_server.url)
    client.config_set("requirepass", "the-right-one")
    try:
        for url in (
            f"{redis_server.url}?password=a-wrong-one",
            f"redis://127.0.0.1:{free_port()}/0?password=a-wrong-one",
        ):
            monkeypatch.setenv("TAGGER_REDIS_URL", url)
            assert main(["profile", "u1"]) == 1
            captured = capsys.readouterr()
            assert captured.err.startswith("error: cannot read from Redis at redis://127.0.0.1:")
            assert "password=***" in captured.err and "Traceback" not in captured.err
            assert "a-wrong-one" not in captured.out + captured.err
    finally:
        client.auth("the-right-one")
        client.config_set("requirepass", "")
        client.close()


def test_tls_files_without_tls_are_refused_rather_than_ignored(
    certificate: tuple[Path, Path],
) -> None:
    cert, _ = certificate
    with pytest.raises(ValidationError, match="TAGGER_REDIS_URL must start with rediss://"):
        Settings(redis_url="redis://cache:6379/0", redis_ca_file=cert)
    assert Settings(redis_url="rediss://cache:6380/0", redis_ca_file=cert).redis_ca_file == cert
    with pytest.raises(ValidationError, match="must be SSL or SASL_SSL"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_ca_file=cert)
