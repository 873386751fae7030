"""Reminder emails through a real SMTP server (aiosmtpd on loopback): plain, STARTTLS and
implicit TLS, with a login; a certificate the client does not trust, or a wrong password, is
refused rather than sent in the clear or anonymously."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import smtplib
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.services.reminders import smtp_send, summary
from server.settings import SettingsError, load_settings
from tests.live_util import free_port

USER, PASSWORD = "nhacviec@bca.gov.vn", "mat-khau-smtp"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login.decode() == USER and data.password.decode() == PASSWORD
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest, certificate: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    """``request.param``: none | starttls | ssl — how the server speaks."""
    inbox, port, mode = Inbox(), free_port(), request.param
    # implicit TLS: aiosmtpd does not count it as TLS for AUTH, but the connection is encrypted from the start
    kwargs: dict[str, Any] = {"authenticator": _authenticator, "auth_require_tls": mode == "starttls"}
    if mode == "starttls":
        kwargs["tls_context"], kwargs["require_starttls"] = _server_tls(certificate), True
    if mode == "ssl":
        kwargs["ssl_context"] = _server_tls(certificate)
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _settings(port: int, security: str, password: str = PASSWORD) -> Any:
    return load_settings(environ={}, reminder_smtp=f"127.0.0.1:{port}", reminder_smtp_security=security,
                         reminder_smtp_user=USER, reminder_smtp_password=password,
                         reminder_email_to="vanphong@bca.gov.vn, theodoi@bca.gov.vn",
                         reminder_email_from="nhacviec@bca.gov.vn")


def _message(settings: Any) -> EmailMessage:
    return summary(settings, "01/12/2026", [("Phú Thọ", 2), ("Thành phố Hà Nội", 1)])


@pytest.mark.parametrize("smtp_server", ["none", "starttls", "ssl"], indirect=True)
def test_summary_is_delivered_with_a_login(smtp_server: tuple[Inbox, int], certificate: tuple[Path, Path],
                                           request: pytest.FixtureRequest) -> None:
    inbox, port = smtp_server
    security = request.node.callspec.params["smtp_server"]
    settings = _settings(port, security)
    smtp_send(settings, _message(settings), tls=ssl.create_default_context(cafile=str(certificate[0])))
    ((sender, recipients, content),) = inbox.messages
    assert sender == "nhacviec@bca.gov.vn"
    assert recipients == ["vanphong@bca.gov.vn", "theodoi@bca.gov.vn"]
    received = email.message_from_bytes(content, policy=email.policy.default)
    assert received["Subject"] == "[Hội nghị trực tuyến] Nhắc việc 01/12/2026: 3 nhiệm vụ mới quá hạn"
    assert "- Phú Thọ: 2 nhiệm vụ" in received.get_content()


@pytest.mark.parametrize("smtp_server", ["none"], indirect=True)
def test_a_wrong_password_is_refused(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    settings = _settings(port, "none", password="sai")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp_send(settings, _message(settings))
    assert inbox.messages == []


@pytest.mark.parametrize("smtp_server", ["starttls", "ssl"], indirect=True)
def test_an_untrusted_certificate_is_refused(smtp_server: tuple[Inbox, int], request: pytest.FixtureRequest) -> None:
    inbox, port = smtp_server
    settings = _settings(port, request.node.callspec.params["smtp_server"])
    with pytest.raises(ssl.SSLCertVerificationError):
        smtp_send(settings, _message(settings))  # the system's trust store does not know this certificate
    assert inbox.messages == []


def test_security_setting_is_checked() -> None:
    with pytest.raises(SettingsError, match="reminder_smtp_security"):
        load_settings(environ={}, reminder_smtp_security="tls13")
