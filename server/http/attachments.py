"""Progress-report attachments on disk: received from a multipart request as a stream (never
whole in memory), refused by extension and by size while streaming, stored under
``attachment_dir`` with a random name; the database keeps the original name, type, size and
SHA-256. If anything fails after files were written, ``discard`` removes them again."""

from __future__ import annotations

import hashlib
import mimetypes
import secrets
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from server.settings import Settings
from sessions.errors import DomainError, ValidationFailed
from sessions.store.directives import StoredFile

MAX_FILES = 10
MAX_FIELD = 16 * 1024
CHUNK = 64 * 1024


class AttachmentTooLarge(DomainError):
    code = "attachment_too_large"
    status = 413


class AttachmentTypeRefused(DomainError):
    code = "attachment_type_refused"
    status = 415


@dataclass
class Received:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[StoredFile] = field(default_factory=list)


def clean_filename(raw: str) -> str:
    # Some clients (aiohttp among them) percent-encode non-ASCII names; browsers send UTF-8 as is.
    name = PurePath(unquote(raw).replace("\\", "/")).name
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if ch.isprintable() and ch not in '"<>|')
    return name.strip()[:200] or "tep-dinh-kem"


def check_type(settings: Settings, filename: str) -> str:
    ext = PurePath(filename).suffix.lower().lstrip(".")
    allowed = settings.attachment_extensions
    if ext not in allowed:
        raise AttachmentTypeRefused(f"Không nhận tệp '{filename}': chỉ nhận {', '.join(sorted(allowed))}",
                                    field="files")
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def discard(settings: Settings, files: list[StoredFile]) -> None:
    for f in files:
        (settings.attachment_path / f.storage_path).unlink(missing_ok=True)


async def _store(settings: Settings, part: BodyPartReader, filename: str, content_type: str) -> StoredFile:
    rel = f"{secrets.token_hex(2)}/{secrets.token_urlsafe(18)}"
    path = settings.attachment_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    digest, size, limit = hashlib.sha256(), 0, settings.attachment_max_bytes
    try:
        with path.open("xb") as out:
            while chunk := await part.read_chunk(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise AttachmentTooLarge(f"Tệp '{filename}' lớn quá {limit:,} byte".replace(",", "."),
                                             field="files")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StoredFile(filename, content_type, size, digest.hexdigest(), rel)


async def receive(request: web.Request, settings: Settings) -> Received:
    """Text fields and files of a ``multipart/form-data`` request; on any refusal no file stays."""
    got = Received()
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ValidationFailed("Biểu mẫu lồng nhau không được hỗ trợ", code="bad_request")
            if part.filename:
                if len(got.files) >= MAX_FILES:
                    raise ValidationFailed(f"Tối đa {MAX_FILES} tệp mỗi báo cáo", code="attachments_too_many",
                                           field="files")
                name = clean_filename(part.filename)
                got.files.append(await _store(settings, part, name, check_type(settings, name)))
            elif part.name:
                raw = bytearray()
                while chunk := await part.read_chunk(CHUNK):
                    raw += chunk
                    if len(raw) > MAX_FIELD:  # refused while reading, never held whole
                        raise ValidationFailed(f"Trường '{part.name}' quá dài", code="invalid_input",
                                               field=part.name)
                got.fields[part.name] = bytes(part.decode(bytes(raw))).decode("utf-8", errors="replace")
    except BaseException:
        discard(settings, got.files)
        raise
    return got


def path_of(settings: Settings, storage_path: str) -> Path:
    return settings.attachment_path / storage_path
