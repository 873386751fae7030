"""Password rules and argon2id hashing (no I/O; callers run hashing off the event loop)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sessions.errors import ValidationFailed

MIN_LENGTH = 8
MAX_LENGTH = 256
_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile


def check_policy(password: str) -> None:
    if not password or not password.strip():
        raise ValidationFailed("Mật khẩu không được để trống", code="password_blank")
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(f"Mật khẩu phải có ít nhất {MIN_LENGTH} ký tự", code="password_too_short")
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(f"Mật khẩu dài quá {MAX_LENGTH} ký tự", code="password_too_long")


def hash_password(password: str) -> str:
    check_policy(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# A hash to verify against when the account does not exist, so timing does not reveal it.
DUMMY_HASH = _hasher.hash("hoinghi-dummy-password")
