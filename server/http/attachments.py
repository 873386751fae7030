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
from sessions.values import reject_controls

MAX_FILES = 10
MAX_FIELDS = 8  # text fields of one report (text, percent, …): more is refused, never accumulated
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
    reject_controls(name, "files", label="Tên tệp đính kèm")  # refused, not silently changed
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


def total_limit(settings: Settings) -> int:
    """The most one report's body may carry: every file at its limit, every field at its own."""
    return MAX_FILES * settings.attachment_max_bytes + (MAX_FIELDS + 1) * MAX_FIELD


def _check_total(request: web.Request, limit: int) -> None:
    if request.content.total_bytes > limit:
        raise AttachmentTooLarge(f"Báo cáo lớn quá {limit:,} byte".replace(",", "."), code="report_too_large")


async def receive(request: web.Request, settings: Settings) -> Received:
    """Text fields and files of a ``multipart/form-data`` request; on any refusal no file stays.
    The caller checks who may upload first: nothing of the body is read before that."""
    got = Received()
    limit, parts = total_limit(settings), 0
    if request.content_length is not None and request.content_length > limit:
        raise AttachmentTooLarge(f"Báo cáo lớn quá {limit:,} byte".replace(",", "."), code="report_too_large")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            parts += 1
            _check_total(request, limit)
            if parts > MAX_FILES + MAX_FIELDS:
                raise ValidationFailed(f"Biểu mẫu có quá nhiều phần (tối đa {MAX_FILES} tệp và {MAX_FIELDS} "
                                       "trường)", code="form_too_many_fields")
            if not isinstance(part, BodyPartReader):
                raise ValidationFailed("Biểu mẫu lồng nhau không được hỗ trợ", code="bad_request")
            if part.filename:
                if len(got.files) >= MAX_FILES:
                    raise ValidationFailed(f"Tối đa {MAX_FILES} tệp mỗi báo cáo", code="attachments_too_many",
                                           field="files")
                name = clean_filename(part.filename)
                got.files.append(await _store(settings, part, name, check_type(settings, name)))
            elif part.name:
                if len(got.fields) >= MAX_FIELDS:
                    raise ValidationFailed(f"Tối đa {MAX_FIELDS} trường mỗi báo cáo", code="form_too_many_fields")
                raw = bytearray()
                while chunk := await part.read_chunk(CHUNK):
                    raw += chunk
                    if len(raw) > MAX_FIELD:  # refused while reading, never held whole
                        raise ValidationFailed(f"Trường '{part.name}' quá dài", code="invalid_input",
                                               field=part.name)
                try:
                    got.fields[part.name] = bytes(part.decode(bytes(raw))).decode("utf-8")
                except UnicodeDecodeError:
                    raise ValidationFailed(f"Trường '{part.name}' phải là văn bản UTF-8", code="form_invalid",
                                           field=part.name) from None
        _check_total(request, limit)  # parts skipped at the end were read too
    except BaseException as exc:
        discard(settings, got.files)
        if isinstance(exc, ValueError):  # aiohttp's reader on a broken multipart body
            raise ValidationFailed("Biểu mẫu không đọc được", code="form_invalid") from None
        raise
    return got


def path_of(settings: Settings, storage_path: str) -> Path:
    return settings.attachment_path / storage_path
