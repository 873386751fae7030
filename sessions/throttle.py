"""The login throttle as plain rules (OWASP: slow guessing down, never lock the owner out).

Every attempt is counted on a few *counters* before its password is checked, so concurrent
attempts see each other. A counter allows ``free`` failures, then each further attempt waits
``base`` · 2ⁿ (n = failures beyond ``free``), at most ``cap``; a counter left alone for ``forget``
after its wait is over starts again from zero.

Which counters an attempt uses depends on where it comes from:

- a **known client** (a browser holding a signed device cookie from an earlier successful login
  to this account) counts on its own counter only: failures elsewhere never slow it down, so
  the right password from it works after at most ``known_client.cap``;
- an **unknown client** counts on the account from this IP, on the account from all unknown
  clients together (a distributed guesser), and on the IP across accounts (password spraying).

A success resets the account's counters it used; the IP counter only gives back the attempt
(an office behind one address logs many people in).
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_DELAY_MS = 1000


@dataclass(frozen=True, slots=True)
class Rule:
    """One counter's allowance: ``free`` failures, then doubling delays from ``base_ms`` up to ``cap_ms``."""

    free: int
    cap_ms: int
    forget_ms: int
    base_ms: int = BASE_DELAY_MS

    def delay_ms(self, failures: int) -> int:
        """Wait before the next attempt after ``failures`` counted attempts."""
        if failures < self.free:
            return 0
        doublings = failures - self.free
        if doublings >= 40 or self.base_ms << doublings >= self.cap_ms:
            return self.cap_ms
        return self.base_ms << doublings

    def steps(self) -> list[tuple[int, int]]:
        """(failures, delay) for every count from ``free`` until the cap: the table a store turns into SQL."""
        out: list[tuple[int, int]] = []
        failures = self.free
        while True:
            delay = self.delay_ms(failures)
            out.append((failures, delay))
            if delay >= self.cap_ms:
                return out
            failures += 1


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    rule: Rule
    on_success: str  # "reset" | "refund"


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    per_client: Rule  # one account from one IP (unknown clients)
    per_account: Rule  # one account from every unknown client together
    per_ip: Rule  # one IP across accounts (unknown clients)
    known_client: Rule  # one device cookie of this account

    def counters(self, account: str, ip: str, device: str | None) -> list[Counter]:
        """The counters an attempt for ``account`` from ``ip`` is counted on; ``device`` is the id
        of a valid device cookie of this account (a known client) or None. Sorted by key, so
        concurrent attempts take their rows in one order."""
        if device:
            return [Counter(f"device:{device}", self.known_client, "reset")]
        return sorted([Counter(f"account:{account}", self.per_account, "reset"),
                       Counter(f"client:{account}|{ip}", self.per_client, "reset"),
                       Counter(f"ip:{ip}", self.per_ip, "refund")], key=lambda c: c.key)
