"""A real weak link for media tests: a Linux network namespace joined to this one by a veth pair,
the host side shaped so that what the host sends into the namespace is limited.

    with WeakLink("hn-w1", rate_kbit=300, loss_pct=2) as link:
        link.run(["python", "subscriber.py", f"http://{link.host_ip}:8001/..."])  # inside the namespace
        link.shape(rate_kbit=None)                                             # lift the limit

- **Rate**: a token-bucket filter (``tc qdisc … tbf``) on the host side's egress: every packet the
  host sends to the namespace (the bridge's media to the subscriber) goes through it.
- **Loss**: ``iptables -m statistic --mode random`` drops that share of the UDP packets entering
  the namespace (in its INPUT chain).
- **Delay**: not added. The kernels of this machine and CI's are built without ``sch_netem`` (``tc
  qdisc … netem`` answers "Specified qdisc kind is unknown"); the queue of the token bucket adds the
  delay a saturated link really has.

Everything made is removed on exit, even when the test fails; a namespace left by a killed run of
the same name is removed first. Where namespaces cannot be made (not root, no ``ip``/``tc``/
``iptables``, a kernel without tbf) :func:`require_netns` skips locally and fails under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from types import TracebackType

from tests.conftest import need_service

TOOLS = ("ip", "tc", "iptables")


def _run(cmd: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, timeout=20)


def require_netns() -> None:
    """Skip (locally) or fail (CI) unless this process can build and shape namespaces."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        need_service(f"weak-link tests need {', '.join(missing)} (apt-get install -y iproute2 iptables)")
    if os.geteuid() != 0:
        need_service("weak-link tests need root (network namespaces, tc, iptables)")
    probe = WeakLink("hn-probe", index=250)
    try:
        probe.__enter__()
        probe.shape(rate_kbit=300, loss_pct=2)
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        need_service(f"cannot build a shaped network namespace here: {detail[:200]}")
    finally:
        probe.close()


class WeakLink:
    """One namespace ``name`` with address 10.77.<index>.2; the host side is 10.77.<index>.1."""

    def __init__(self, name: str, *, index: int = 1, rate_kbit: int | None = None,
                 loss_pct: float = 0.0) -> None:
        self.name = name
        self.host_dev, self.ns_dev = f"{name}-h"[:15], f"{name}-n"[:15]
        self.host_ip, self.ns_ip = f"10.77.{index}.1", f"10.77.{index}.2"
        self._rate, self._loss = rate_kbit, loss_pct

    def __enter__(self) -> WeakLink:
        self.close()  # a namespace a killed run left behind
        try:
            _run(["ip", "netns", "add", self.name])
            _run(["ip", "link", "add", self.host_dev, "type", "veth", "peer", "name", self.ns_dev])
            _run(["ip", "link", "set", self.ns_dev, "netns", self.name])
            _run(["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_dev])
            _run(["ip", "link", "set", self.host_dev, "up"])
            self.exec(["ip", "addr", "add", f"{self.ns_ip}/24", "dev", self.ns_dev])
            self.exec(["ip", "link", "set", self.ns_dev, "up"])
            self.exec(["ip", "link", "set", "lo", "up"])
            self.shape(self._rate, self._loss)
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

    def shape(self, rate_kbit: int | None = None, loss_pct: float = 0.0) -> None:
        """Set the link: ``rate_kbit`` None lifts the rate limit, ``loss_pct`` 0 the loss."""
        _run(["tc", "qdisc", "del", "dev", self.host_dev, "root"], check=False)
        if rate_kbit is not None:
            # A burst of a few packets and a queue of ~200 ms: a DSL-like bottleneck.
            _run(["tc", "qdisc", "add", "dev", self.host_dev, "root", "tbf", "rate", f"{rate_kbit}kbit",
                  "burst", "6kb", "latency", "200ms"])
        self.exec(["iptables", "-F", "INPUT"])
        if loss_pct > 0:
            self.exec(["iptables", "-A", "INPUT", "-p", "udp", "-m", "statistic", "--mode", "random",
                       "--probability", f"{loss_pct / 100:.4f}", "-j", "DROP"])
        self._rate, self._loss = rate_kbit, loss_pct

    def close(self) -> None:
        """Remove the veth pair (both ends) and the namespace; quiet when already gone."""
        _run(["ip", "link", "del", self.host_dev], check=False)
        _run(["ip", "netns", "del", self.name], check=False)
