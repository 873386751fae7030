"""The weak link the media tests put a subscriber behind (tests/netns_util.py) is what it says: a
300 kbit/s bottleneck with random loss, lifted on demand, and nothing of it left afterwards."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.netns_util import WeakLink, require_netns

RECEIVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5555)); s.settimeout(1.5)
n = size = 0; first = last = None
try:
    while True:
        data = s.recv(2000); n += 1; size += len(data); last = time.monotonic(); first = first or last
except OSError:
    pass
print(n, size, (last or 0) - (first or 0))
"""


def blast(link: WeakLink, seconds: float = 2.0, kbps: int = 1000) -> tuple[int, int, float, int]:
    """Send ``kbps`` of 1,000-byte UDP packets into the namespace; (received, bytes, span s, sent)."""
    rx = subprocess.Popen(link.command([sys.executable, "-c", RECEIVER]), stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        import socket

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        gap, sent, start = 8.0 / kbps, 0, time.monotonic()
        while time.monotonic() - start < seconds:
            s.sendto(b"x" * 1000, (link.ns_ip, 5555))
            sent += 1
            time.sleep(gap)
        out = rx.communicate(timeout=15)[0].split()
    finally:
        rx.kill()
    return int(out[0]), int(out[1]), float(out[2]), sent


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_a_shaped_link_limits_rate_drops_packets_and_is_removed() -> None:
    require_netns()
    with WeakLink("hn-tlink", index=31, rate_kbit=300) as link:
        assert "hn-tlink" in namespaces()
        received, size, span, sent = blast(link)
        kbps = size * 8 / 1000 / span
        assert 200 < kbps < 400, kbps  # the bottleneck, not the ~1 Mbit/s sent
        assert received < sent * 0.6, (received, sent)
        link.shape(rate_kbit=None, loss_pct=20)
        received, size, span, sent = blast(link, kbps=400)
        assert 0.65 * sent < received < 0.92 * sent, (received, sent)  # ~20 % dropped, no rate limit
        link.shape(rate_kbit=None)
        received, _, _, sent = blast(link, kbps=400)
        assert received >= sent * 0.98, (received, sent)
    assert "hn-tlink" not in namespaces()
    assert "hn-tlink" not in subprocess.run(["ip", "link"], capture_output=True, text=True).stdout
