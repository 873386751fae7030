"""The weak link the media tests put a subscriber behind (tests/netns_util.py) is what it says: a
300 kbit/s bottleneck with random loss and a 40 ms delay (the NFQUEUE delayer), lifted on demand,
and nothing of it left afterwards."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.netns_util import Island, WeakLink, require_netns

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


SENDER = """
import socket, sys, time
ip, seconds, kbps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
gap, sent, start = 8.0 / kbps, 0, time.monotonic()
while time.monotonic() - start < seconds:
    s.sendto(b"x" * 1000, (ip, 5555))
    sent += 1
    time.sleep(gap)
print(sent)
"""


ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5556)); s.settimeout(10)
try:
    while True:
        data, peer = s.recvfrom(2000); s.sendto(data, peer)
except OSError:
    pass
"""


PING = """
import socket, statistics, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
rtts = []
for i in range(int(sys.argv[2])):
    start = time.monotonic()
    s.sendto(str(i).encode(), (sys.argv[1], 5556))
    try:
        while s.recv(100) != str(i).encode():  # a late answer to an earlier ping
            pass
    except OSError:
        continue
    rtts.append(1000 * (time.monotonic() - start))
    time.sleep(0.01)
print(statistics.median(rtts) if rtts else -1, len(rtts))
"""


def round_trip_ms(link: WeakLink, island: Island, count: int = 15) -> float:
    """Median round trip (ms) of ``count`` small UDP pings from the island to an echo in the namespace."""
    out = subprocess.run(island.command([sys.executable, "-c", PING, link.ns_ip, str(count)]),
                         capture_output=True, text=True, check=True, timeout=30).stdout.split()
    assert int(out[1]) >= count - 2, out  # no loss was asked for
    return float(out[0])


def blast(link: WeakLink, island: Island, seconds: float = 2.0, kbps: int = 1000) -> tuple[int, int, float, int]:
    """Send ``kbps`` of 1,000-byte UDP packets from the island into the namespace; (received, bytes,
    span s, sent)."""
    rx = subprocess.Popen(link.command([sys.executable, "-c", RECEIVER]), stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        sent = int(subprocess.run(island.command([sys.executable, "-c", SENDER, link.ns_ip, str(seconds), str(kbps)]),
                                  capture_output=True, text=True, check=True, timeout=30).stdout)
        out = rx.communicate(timeout=15)[0].split()
    finally:
        rx.kill()
    return int(out[0]), int(out[1]), float(out[2]), sent


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_a_shaped_link_limits_rate_drops_packets_and_is_removed() -> None:
    require_netns()
    with Island("hn-tlink-host") as island, WeakLink("hn-tlink", index=31, rate_kbit=300, host=island) as link:
        assert "hn-tlink" in namespaces()
        received, size, span, sent = blast(link, island)
        kbps = size * 8 / 1000 / span
        assert 200 < kbps < 400, kbps  # the bottleneck, not the ~1 Mbit/s sent
        assert received < sent * 0.6, (received, sent)
        link.shape(rate_kbit=None, loss_pct=20)
        received, size, span, sent = blast(link, island, kbps=400)
        assert 0.65 * sent < received < 0.92 * sent, (received, sent)  # ~20 % dropped, no rate limit
        link.shape(rate_kbit=None)
        received, _, _, sent = blast(link, island, kbps=400)
        assert received >= sent * 0.98, (received, sent)

        echo = subprocess.Popen(link.command([sys.executable, "-c", ECHO]))
        try:
            time.sleep(0.3)
            link.shape(rate_kbit=None, delay_ms=40)
            delayer = link.delayer
            assert delayer is not None and delayer.poll() is None
            delayed = round_trip_ms(link, island)
            assert 38 <= delayed < 150, delayed  # 40 ms into the namespace, nothing on the way back
            link.shape(rate_kbit=None)
            assert link.delayer is None and delayer.poll() is not None  # lifting it stops the delayer
            direct = round_trip_ms(link, island)
            assert direct < 10, direct
            link.shape(rate_kbit=None, delay_ms=40)  # left on: the end of the block must stop it
            delayer = link.delayer
            assert delayer is not None and delayer.poll() is None
        finally:
            echo.kill()
        print(f"round trip: {delayed:.1f} ms with a 40 ms delay, {direct:.1f} ms without")
    assert delayer.poll() is not None  # stopped with the link
    assert "hn-tlink" not in namespaces()
    assert "hn-tlink" not in subprocess.run(["ip", "link"], capture_output=True, text=True).stdout
