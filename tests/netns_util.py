"""A real weak link for media tests: a Linux network namespace joined to this one by a veth pair,
shaped so that what the host sends into the namespace is limited, lost and delayed.

    with WeakLink("hn-w1", rate_kbit=300, loss_pct=2, delay_ms=40) as link:
        link.run(["python", "subscriber.py", f"http://{link.host_ip}:8001/..."])  # inside the namespace
        link.shape(rate_kbit=None)                                             # lift it all

All of it acts on one direction, into the namespace (the bridge's media to the subscriber); what the
namespace sends back (its RTCP, its requests) goes out untouched.

- **Rate**: a token-bucket filter (``tc qdisc … tbf``) on the host side's egress: every packet the
  host sends to the namespace goes through it.
- **Loss**: ``iptables -m statistic --mode random`` drops that share of the UDP packets entering
  the namespace (in its INPUT chain).
- **Delay**: the kernels of this machine and CI's are built without ``sch_netem`` (``tc qdisc …
  netem`` answers "Specified qdisc kind is unknown"), so the UDP packets entering the namespace that
  the loss rule kept go to a netfilter queue (``-j NFQUEUE``), where a userspace delayer in the
  namespace (tests/nfqueue_delay.py, pure Python on a netlink socket) accepts each one ``delay_ms``
  after it came, in order. The token bucket's queue adds, on top, the delay a saturated link has.

Everything made is removed on exit, even when the test fails (the delayer is stopped before its
namespace goes); a namespace left by a killed run of the same name is removed first. Where
namespaces cannot be made or shaped (not root, no ``ip``/``tc``/``iptables``, a kernel without tbf
or NFQUEUE) :func:`require_netns` skips locally and fails under CI.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

TOOLS = ("ip", "tc", "iptables")
ROOT = Path(__file__).resolve().parent.parent  # where ``python -m tests.nfqueue_delay`` finds ``tests``
DELAYER = "tests.nfqueue_delay"
ADDRESS_PREFIX = "10.77."  # every WeakLink's addresses: 10.77.<index>.1 (host side) and .2


class DelayerError(RuntimeError):
    """The NFQUEUE delayer did not start (or died): no delay can be added here."""


def _run(cmd: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, timeout=20)


def require_netns() -> None:
    """Skip (locally) or fail (CI) unless this process can build and shape namespaces."""
    from tests.conftest import need_service  # here: the bench imports this module without pytest

    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        need_service(f"weak-link tests need {', '.join(missing)} (apt-get install -y iproute2 iptables)")
    if os.geteuid() != 0:
        need_service("weak-link tests need root (network namespaces, tc, iptables)")
    # Names of this process's own: two test workers probe at the same time (fixed names made one
    # delete the other's namespace mid-probe)
    tag = os.getpid() % 100_000
    island = Island(f"hn-pi{tag}")
    probe = WeakLink(f"hn-p{tag}", index=250, host=island)
    try:
        island.__enter__()
        probe.__enter__()
        probe.shape(rate_kbit=300, loss_pct=2, delay_ms=40)
    except (subprocess.CalledProcessError, OSError, DelayerError) as exc:
        detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        need_service(f"cannot build a shaped network namespace here: {detail[:200]}")
    finally:
        probe.close()
        island.close()


class Island:
    """A network namespace of its own for the "host" side of weak links (the bridge, the publisher,
    the clean viewer): the test's addresses never appear in this machine's own namespace, where a
    concurrent test's ICE could pick one and lose its connection when the link is removed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Island:
        self.close()  # left by a killed run
        try:
            _run(["ip", "netns", "add", self.name])
            _run(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def command(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def close(self) -> None:
        _run(["ip", "netns", "del", self.name], check=False)


class WeakLink:
    """One namespace ``name`` with address 10.77.<index>.2; the host side is 10.77.<index>.1, in the
    namespace ``host`` (an :class:`Island`) when given, else in this machine's own."""

    def __init__(self, name: str, *, index: int = 1, rate_kbit: int | None = None,
                 loss_pct: float = 0.0, delay_ms: int = 0, host: Island | None = None) -> None:
        self.name = name
        self.host_dev, self.ns_dev = f"{name}-h"[:15], f"{name}-n"[:15]
        self.host_ip, self.ns_ip = f"{ADDRESS_PREFIX}{index}.1", f"{ADDRESS_PREFIX}{index}.2"
        self._rate, self._loss, self._delay = rate_kbit, loss_pct, delay_ms
        self._host = host
        self.queue = index  # the NFQUEUE number (queues are per namespace: any number would do)
        self.delayer: subprocess.Popen[str] | None = None  # the running delayer, delaying by ``_delay``

    def _on_host(self, cmd: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(self._host.command(cmd) if self._host is not None else cmd, check=check)

    def __enter__(self) -> WeakLink:
        self.close()  # a namespace a killed run left behind
        try:
            _run(["ip", "netns", "add", self.name])
            _run(["ip", "link", "add", self.host_dev, "type", "veth", "peer", "name", self.ns_dev])
            _run(["ip", "link", "set", self.ns_dev, "netns", self.name])
            if self._host is not None:
                _run(["ip", "link", "set", self.host_dev, "netns", self._host.name])
            self._on_host(["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_dev])
            self._on_host(["ip", "link", "set", self.host_dev, "up"])
            self.exec(["ip", "addr", "add", f"{self.ns_ip}/24", "dev", self.ns_dev])
            self.exec(["ip", "link", "set", self.ns_dev, "up"])
            self.exec(["ip", "link", "set", "lo", "up"])
            self.shape(self._rate, self._loss, self._delay)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def exec(self, cmd: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", self.name, *cmd], check=check)

    def command(self, cmd: Sequence[str]) -> list[str]:
        """``cmd`` as run inside the namespace (for subprocess.Popen / asyncio subprocesses)."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def shape(self, rate_kbit: int | None = None, loss_pct: float = 0.0, delay_ms: int = 0) -> None:
        """Set the link: ``rate_kbit`` None lifts the rate limit, ``loss_pct`` 0 the loss, ``delay_ms``
        0 the delay."""
        if self.delayer is not None and self.delayer.poll() is not None:  # loud: no silent black hole
            code, err = self.delayer.returncode, self._stop(self.delayer).strip()
            self.delayer = None
            raise DelayerError(f"the NFQUEUE delayer died (exit {code}): {err[-300:]}")
        if delay_ms > 0 and self.delayer is None:
            self._start_delayer(delay_ms)  # bound before any packet is queued to it
        self._on_host(["tc", "qdisc", "del", "dev", self.host_dev, "root"], check=False)
        if rate_kbit is not None:
            # A burst of a few packets and a queue of ~200 ms: a DSL-like bottleneck.
            self._on_host(["tc", "qdisc", "add", "dev", self.host_dev, "root", "tbf", "rate", f"{rate_kbit}kbit",
                           "burst", "6kb", "latency", "200ms"])
        self.exec(["iptables", "-F", "INPUT"])
        if self.delayer is not None and delay_ms != self._delay:  # no rule sends packets to it any more
            self._stop_delayer()
            if delay_ms > 0:
                self._start_delayer(delay_ms)
        if loss_pct > 0:
            self.exec(["iptables", "-A", "INPUT", "-p", "udp", "-m", "statistic", "--mode", "random",
                       "--probability", f"{loss_pct / 100:.4f}", "-j", "DROP"])
        if delay_ms > 0:  # after the loss rule: a dropped packet is never queued
            self.exec(["iptables", "-A", "INPUT", "-p", "udp", "-j", "NFQUEUE", "--queue-num", str(self.queue)])
        self._rate, self._loss, self._delay = rate_kbit, loss_pct, delay_ms

    def _start_delayer(self, delay_ms: int, ready_within: float = 5.0) -> None:
        """Start tests/nfqueue_delay.py in the namespace and wait for its "ready" (queue bound)."""
        proc = subprocess.Popen(self.command([sys.executable, "-m", DELAYER, "--queue", str(self.queue),
                                              "--delay-ms", str(delay_ms)]),
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        deadline, line = time.monotonic() + ready_within, ""
        while not line and time.monotonic() < deadline:  # a dead delayer ends stdout: readline gives ""
            if select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
                line = proc.stdout.readline() or "(exited)"
        if line.strip() != "ready":
            err = self._stop(proc).strip()
            raise DelayerError(f"the NFQUEUE delayer ({DELAYER}) was not ready within {ready_within:.0f} s: "
                               f"{line.strip() or 'no answer'}; {err[-300:]}")
        self.delayer = proc

    def _stop_delayer(self) -> None:
        if self.delayer is not None:
            self._stop(self.delayer)
            self.delayer = None

    @staticmethod
    def _stop(proc: subprocess.Popen[str]) -> str:
        """SIGTERM (it lets through what it holds), then SIGKILL; what it wrote on stderr."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.communicate(timeout=5)[1] or ""

    def close(self) -> None:
        """Stop the delayer, remove the veth pair (both ends) and the namespace; quiet when already gone."""
        self._stop_delayer()
        for pid in _run(["ip", "netns", "pids", self.name], check=False).stdout.split():  # a killed run's
            try:
                if DELAYER in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        self._on_host(["ip", "link", "del", self.host_dev], check=False)
        _run(["ip", "netns", "del", self.name], check=False)
