"""Re-export: signed tokens moved to :mod:`sessions.signing` (bridges verify them without the server)."""

from sessions.signing import PREFIX, BadToken, sign, verify

__all__ = ["PREFIX", "BadToken", "sign", "verify"]
