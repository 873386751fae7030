"""One definition of every setting: environment ``HOINGHI_*`` over an optional TOML file.

Unknown keys (in the file or as ``HOINGHI_*`` variables) are refused with a clear message;
secrets are wrapped so they never print in logs, reprs or tracebacks. ``docs/operations.md``
must list every setting here (a test checks it).
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from server.live.origin import parse_allowed

ENV_PREFIX = "HOINGHI_"
# Variables read by the test suite and tooling, not by the application.
# Not the server's: tests, benchmarks, and the bridge's own variables (HOINGHI_BRIDGE_TOKEN, _KEY,
# _RECORDINGS_DIR…, read by bridge/), which `hoinghi bridge` runs with.
ENV_IGNORED_PREFIXES = ("HOINGHI_TEST_", "HOINGHI_BENCH_", "HOINGHI_BRIDGE_")
ENV_CONFIG_FILE = "HOINGHI_CONFIG"


class SettingsError(ValueError):
    """A setting is unknown or malformed; the message names it (in Vietnamese and English)."""


class Secret:
    """A string that never shows itself in ``repr``/``str``; call ``reveal()`` where it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


DEFAULT_ATTACHMENT_TYPES = "pdf,docx,doc,xlsx,xls,odt,ods,jpg,jpeg,png,txt,zip"


def _meta(doc: str, secret: bool = False) -> dict[str, Any]:
    return {"doc": doc, "secret": secret}


@dataclass(frozen=True)
class Settings:
    database_url: Secret = field(
        default_factory=lambda: Secret(""),
        metadata=_meta("SQLAlchemy async URL; empty = SQLite file `<var_dir>/hoinghi.sqlite3`. "
                       "PostgreSQL: `postgresql+asyncpg://user:pass@host/db`.", secret=True))
    var_dir: str = field(default="var", metadata=_meta("Folder for the SQLite file, uploads and caches."))
    secret_key: Secret = field(
        default_factory=lambda: Secret(""),
        metadata=_meta("Key that signs tokens. Empty = generated once into `<var_dir>/secret_key`. "
                       "Every server process of one deployment must share it.", secret=True))
    host: str = field(default="127.0.0.1", metadata=_meta("Address `serve` listens on."))
    port: int = field(default=8080, metadata=_meta("Port `serve` listens on."))
    cookie_secure: bool = field(default=False, metadata=_meta("Mark cookies `Secure` (set true behind HTTPS)."))
    session_ttl_minutes: int = field(default=720, metadata=_meta("Login session lifetime."))
    machine_token_max_days: int = field(default=90, metadata=_meta("Longest lifetime a machine token may be given."))
    login_max_failures: int = field(
        default=5, metadata=_meta("Failed logins to one account from one client (an IP, or a known client's device "
                                  "cookie) before its attempts are slowed down (1 s, doubling)."))
    login_max_failures_account: int = field(
        default=20, metadata=_meta("Failed logins to one account from all unknown clients together before they are "
                                   "slowed down; known clients are not."))
    login_max_failures_ip: int = field(
        default=20, metadata=_meta("Failed logins from one IP (unknown clients, any account) before it is slowed "
                                   "down."))
    login_max_delay_seconds: int = field(
        default=900, metadata=_meta("Longest wait the login throttle imposes on an unknown client."))
    login_known_client_max_delay_seconds: int = field(
        default=60, metadata=_meta("Longest wait a known client (device cookie of an earlier login to the account) "
                                   "gets for its own failures: the right password from it works within this."))
    login_window_minutes: int = field(
        default=15, metadata=_meta("A throttle counter left alone this long after its wait is over starts from zero."))
    login_device_days: int = field(
        default=180, metadata=_meta("Lifetime of the device cookie that makes a browser a known client."))
    max_upload_bytes: int = field(default=5_000_000, metadata=_meta("Largest accepted upload (CSV import), in bytes."))
    default_language: str = field(default="vi", metadata=_meta("UI language when the user chose none: `vi` or `en`."))
    log_level: str = field(default="INFO", metadata=_meta("Logging level: DEBUG, INFO, WARNING, ERROR."))
    log_format: str = field(default="json", metadata=_meta("`json` (one object a line) or `text`."))
    bus_url: Secret = field(
        default_factory=lambda: Secret(""),
        metadata=_meta("Event bus: empty = in-process; `redis://host:6379/0` to share live state between processes.",
                       secret=True))
    bus_channel_prefix: str = field(
        default="hoinghi", metadata=_meta("Prefix of the Redis pub/sub channels; deployments sharing one Redis need "
                                          "different prefixes (Redis pub/sub ignores database numbers)."))
    ws_queue_size: int = field(
        default=1024, metadata=_meta("Outbound frames buffered per websocket client before it is dropped as slow."))
    bridges: str = field(
        default="", metadata=_meta("Media bridges: `UNIT=URL` pairs separated by commas, e.g. "
                                   "`BCA=https://cau-bo.example, 25=https://cau-phutho.example`. A site plays from "
                                   "(and publishes to) the bridge of its nearest unit up the tree that has one. "
                                   "Empty = no media (roll call and slides only)."))
    ice_servers: str = field(
        default="[]", metadata=_meta("STUN/TURN servers given to browsers and bridges, as the JSON of "
                                     "`RTCConfiguration.iceServers`: `[{\"urls\": [\"stun:stun.example:3478\"]}, "
                                     "{\"urls\": \"turn:turn.example\", \"username\": \"u\", "
                                     "\"credential\": \"p\"}]`."))
    media_secret: Secret = field(
        default_factory=lambda: Secret(""),
        metadata=_meta("Key of the join tokens, shared with every bridge. Empty = derived from `secret_key` "
                       "(bridges started by `hoinghi bridge` on the same machine derive it the same way).",
                       secret=True))
    join_token_minutes: int = field(
        default=10, metadata=_meta("Lifetime of the join tokens that let a site publish to or play from a bridge."))
    presence_heartbeat_seconds: float = field(
        default=10.0, metadata=_meta("How often each server process marks itself alive in the database and "
                                     "looks for processes that stopped doing so."))
    presence_expiry_seconds: float = field(
        default=45.0, metadata=_meta("A process silent this long is taken for dead: the sites connected through "
                                     "it are disconnected as of its last sign of life (at least twice the "
                                     "heartbeat)."))
    trust_forwarded_for: bool = field(
        default=False, metadata=_meta("Take the client IP from `X-Forwarded-For` (only behind a trusted proxy)."))
    allowed_origins: str = field(
        default="", metadata=_meta("Other origins whose pages may open the live websocket `/ws` with a user's "
                                   "cookie, e.g. `https://hoinghi.bca.gov.vn, https://dieuhanh.bca.gov.vn` "
                                   "(separated by commas or spaces). The site's own origin is always allowed; "
                                   "empty = only it."))
    attachment_dir: str = field(
        default="", metadata=_meta("Folder for progress-report attachments; empty = `<var_dir>/attachments`."))
    attachment_max_bytes: int = field(
        default=10_000_000, metadata=_meta("Largest accepted attachment of a progress report, in bytes."))
    reminder_hour: int = field(
        default=7, metadata=_meta("Hour of the day (Asia/Ho_Chi_Minh, 0–23) the daily overdue reminder runs."))
    reminder_email_to: str = field(
        default="", metadata=_meta("Mailbox that receives the daily overdue summary; empty = no email."))
    reminder_email_from: str = field(default="hoinghi@localhost", metadata=_meta("Sender of reminder emails."))
    reminder_smtp: str = field(default="localhost:25", metadata=_meta("SMTP server `host:port` for reminder emails."))
    reminder_smtp_security: str = field(
        default="none", metadata=_meta("`none`, `starttls` (upgrade on the submission port, usually 587) or `ssl` "
                                       "(TLS from the start, usually 465); certificates are verified."))
    reminder_smtp_user: str = field(default="", metadata=_meta("SMTP login for reminder emails; empty = no login."))
    reminder_smtp_password: Secret = field(
        default_factory=lambda: Secret(""), metadata=_meta("SMTP password for `reminder_smtp_user`.", secret=True))
    recordings_dir: str = field(
        default="", metadata=_meta("Folder of the meetings' recordings (the central bridge writes there: the same "
                                   "folder as its `HOINGHI_BRIDGE_RECORDINGS_DIR`, shared if on another machine); "
                                   "empty = `<var_dir>/recordings`."))
    recording_min_free_mb: int = field(
        default=1024, metadata=_meta("Free space (MB) the recordings folder must keep: recording refuses to start "
                                     "under it (the bridge checks its own folder likewise)."))
    recording_retention_days: int = field(
        default=365, metadata=_meta("Recordings are deleted this many days after they ended; 0 = kept forever."))
    attachment_types: str = field(
        default=DEFAULT_ATTACHMENT_TYPES,
        metadata=_meta("Comma-separated file extensions a progress report may attach."))

    def __post_init__(self) -> None:
        if self.default_language not in ("vi", "en"):
            raise SettingsError(f"default_language phải là 'vi' hoặc 'en' (got {self.default_language!r})")
        if self.log_format not in ("json", "text"):
            raise SettingsError(f"log_format phải là 'json' hoặc 'text' (got {self.log_format!r})")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(f"log_level không hợp lệ: {self.log_level!r}")
        if not (0 <= self.reminder_hour <= 23):
            raise SettingsError(f"reminder_hour phải từ 0 đến 23 (got {self.reminder_hour})")
        if self.presence_heartbeat_seconds <= 0 or self.presence_expiry_seconds < 2 * self.presence_heartbeat_seconds:
            raise SettingsError("presence_expiry_seconds phải ít nhất gấp đôi presence_heartbeat_seconds (> 0)")
        if self.reminder_smtp_security not in ("none", "starttls", "ssl"):
            raise SettingsError("reminder_smtp_security phải là none, starttls hoặc ssl "
                                f"(got {self.reminder_smtp_security!r})")
        if not (0 <= self.port <= 65535):
            raise SettingsError(f"port không hợp lệ: {self.port}")
        parse_bridges(self.bridges)
        if self.recording_min_free_mb < 0 or self.recording_retention_days < 0:
            raise SettingsError("recording_min_free_mb và recording_retention_days không được âm")
        try:
            parse_allowed(self.allowed_origins)
        except ValueError as exc:
            raise SettingsError(f"allowed_origins: '{exc}' không phải một origin (scheme://host[:port])") from None
        parse_ice_servers(self.ice_servers)
        for name in ("session_ttl_minutes", "machine_token_max_days", "login_max_failures", "join_token_minutes",
                     "login_max_failures_ip", "login_window_minutes", "max_upload_bytes", "attachment_max_bytes",
                     "login_max_failures_account", "login_max_delay_seconds", "login_known_client_max_delay_seconds",
                     "login_device_days"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} phải là số dương")

    @property
    def var_path(self) -> Path:
        return Path(self.var_dir)

    @property
    def attachment_path(self) -> Path:
        return Path(self.attachment_dir) if self.attachment_dir else self.var_path / "attachments"

    @property
    def recordings_path(self) -> Path:
        return Path(self.recordings_dir) if self.recordings_dir else self.var_path / "recordings"

    @property
    def attachment_extensions(self) -> frozenset[str]:
        return frozenset(e.strip().lower().lstrip(".") for e in self.attachment_types.split(",") if e.strip())

    def effective_database_url(self) -> str:
        url = self.database_url.reveal()
        return url or f"sqlite+aiosqlite:///{self.var_path / 'hoinghi.sqlite3'}"

    def signing_key(self) -> bytes:
        key = self.secret_key.reveal()
        if key:
            return key.encode()
        path = self.var_path / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()

    def public_items(self) -> dict[str, object]:
        """Every setting with secrets masked: safe to log or show."""
        return {f.name: repr(v) if isinstance(v := getattr(self, f.name), Secret) else v for f in fields(self)}


SETTING_FIELDS = {f.name: f for f in fields(Settings)}


def parse_bridges(raw: str) -> dict[str, str]:
    """``UNIT=URL, UNIT=URL`` → {unit code: base URL without a trailing slash}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        code, sep, url = (x.strip() for x in part.partition("="))
        if not sep or not code or not url.startswith(("http://", "https://")) or code in out:
            raise SettingsError(f"bridges: '{part}' phải có dạng MÃ_ĐƠN_VỊ=http(s)://máy:cổng, mỗi đơn vị một lần")
        out[code] = url.rstrip("/")
    return out


def parse_ice_servers(raw: str) -> list[dict[str, Any]]:
    import json

    try:
        servers = json.loads(raw or "[]")
    except json.JSONDecodeError as exc:
        raise SettingsError(f"ice_servers không phải JSON hợp lệ: {exc}") from None
    ok = isinstance(servers, list) and all(
        isinstance(s, dict) and (isinstance(s.get("urls"), str) or (
            isinstance(s.get("urls"), list) and s["urls"] and all(isinstance(u, str) for u in s["urls"])))
        for s in servers)
    if not ok:
        raise SettingsError("ice_servers phải là danh sách [{\"urls\": …, \"username\"?, \"credential\"?}]")
    return list(servers)


def _coerce(name: str, raw: Any) -> Any:
    f = SETTING_FIELDS[name]
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "Secret":
            return Secret(str(raw))
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            low = str(raw).strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        return str(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"Giá trị không hợp lệ cho '{name}' (kiểu {kind}): {raw!r}") from None


def load_settings(environ: Mapping[str, str] | None = None, config_file: str | Path | None = None,
                  **overrides: Any) -> Settings:
    """Defaults, then the TOML file (``config_file`` or ``$HOINGHI_CONFIG``), then the environment,
    then explicit overrides (tests and the CLI)."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    path = config_file or env.get(ENV_CONFIG_FILE)
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"Không tìm thấy tệp cấu hình {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"Tệp cấu hình {path} không đúng TOML: {exc}") from None
        unknown = sorted(set(data) - set(SETTING_FIELDS))
        if unknown:
            raise SettingsError(f"Khoá cấu hình không xác định trong {path}: {', '.join(unknown)} "
                                f"(unknown setting)")
        values.update({k: _coerce(k, v) for k, v in data.items()})
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_CONFIG_FILE or key.startswith(ENV_IGNORED_PREFIXES):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in SETTING_FIELDS:
            raise SettingsError(f"Biến môi trường không xác định: {key} (unknown setting)")
        values[name] = _coerce(name, raw)
    for name, raw in overrides.items():
        if name not in SETTING_FIELDS:
            raise SettingsError(f"Khoá cấu hình không xác định: {name}")
        values[name] = raw if not isinstance(raw, str) or SETTING_FIELDS[name].type != "Secret" else Secret(raw)
    return Settings(**values)
