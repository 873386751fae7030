"""Settings: one definition, unknown keys refused, secrets never printed, every setting documented."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from server.settings import SETTING_FIELDS, Secret, SettingsError, load_settings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([a-z_]+)` \| `HOINGHI_([A-Z_]+)` \|", text, flags=re.M))
    documented = {name for name, _env in rows}
    assert documented == set(SETTING_FIELDS), (
        f"undocumented: {sorted(set(SETTING_FIELDS) - documented)}; stale: {sorted(documented - set(SETTING_FIELDS))}"
    )
    for name, env in rows:
        assert env == name.upper()


def test_environment_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "h.toml"
    cfg.write_text('port = 9000\nlog_format = "text"\n', encoding="utf-8")
    s = load_settings(environ={"HOINGHI_PORT": "9100"}, config_file=cfg)
    assert s.port == 9100 and s.log_format == "text"


def test_unknown_env_key_refused() -> None:
    with pytest.raises(SettingsError, match="HOINGHI_DATABSE_URL"):
        load_settings(environ={"HOINGHI_DATABSE_URL": "sqlite+aiosqlite:///x"})


def test_test_variables_are_not_settings() -> None:
    s = load_settings(environ={"HOINGHI_TEST_POSTGRES_URL": "postgresql+asyncpg://x/y"})
    assert s.port == 8080


def test_unknown_file_key_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "h.toml"
    cfg.write_text('prot = 9000\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(environ={}, config_file=cfg)


@pytest.mark.parametrize(("env", "value"), [("HOINGHI_PORT", "eighty"), ("HOINGHI_COOKIE_SECURE", "maybe"),
                                            ("HOINGHI_LOG_FORMAT", "xml"), ("HOINGHI_DEFAULT_LANGUAGE", "fr"),
                                            ("HOINGHI_SESSION_TTL_MINUTES", "0")])
def test_malformed_values_refused(env: str, value: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ={env: value})


def test_secrets_never_print(caplog: pytest.LogCaptureFixture) -> None:
    s = load_settings(environ={"HOINGHI_DATABASE_URL": "postgresql+asyncpg://u:hunter2pass@h/db",
                               "HOINGHI_SECRET_KEY": "super-secret-signing-key"})
    assert isinstance(s.database_url, Secret)
    for text in (repr(s), str(s), str(s.public_items())):
        assert "hunter2pass" not in text and "super-secret-signing-key" not in text
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("settings %s", s)
    assert "hunter2pass" not in caplog.text
    assert s.database_url.reveal().endswith("@h/db")


def test_generated_signing_key_is_stable_and_private(tmp_path: Path) -> None:
    s = load_settings(environ={}, var_dir=str(tmp_path))
    key = s.signing_key()
    assert len(key) >= 32 and key == s.signing_key()
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_every_error_code_is_documented() -> None:
    """Stable error codes raised anywhere in server/, sessions/ or bridge/ appear in docs/protocol.md."""
    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "protocol.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", doc, flags=re.M))
    used: set[str] = set()
    for path in [*root.glob("server/**/*.py"), *root.glob("sessions/**/*.py"), *root.glob("bridge/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r'code ?= ?"([a-z_]+)"', text))
        used |= set(re.findall(r'BadToken\("([a-z_]+)"', text))
        used |= set(re.findall(r'(?:BridgeError\(\d+, |error_response\(\d+, )"([a-z_]+)"', text))
    from server.errors import HTTP_CODES

    used |= set(HTTP_CODES.values())
    assert used - documented == set(), f"undocumented error codes: {sorted(used - documented)}"
