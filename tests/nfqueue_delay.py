"""Delay every packet of one netfilter queue by a constant time: a userspace stand-in for ``tc qdisc
… netem delay``, which this machine's kernel (and CI's) lacks.

    iptables -A INPUT -p udp -j NFQUEUE --queue-num 7         # in the namespace, once this says "ready"
    ip netns exec NS python -m tests.nfqueue_delay --queue 7 --delay-ms 40

The kernel holds each queued packet until a program gives its verdict; this one receives the
packets' ids (not their contents) on an ``AF_NETLINK`` / ``NETLINK_NETFILTER`` socket and accepts
each ``--delay-ms`` after it came. The delay is constant, so the packets leave in the order they
came: a deque of (due, id), and one batch verdict ("accept every id up to N") per wake-up.

Pure standard library, no libnetfilter_queue: the messages are built by hand from
``linux/netlink.h``, ``linux/netfilter/nfnetlink.h`` and ``linux/netfilter/nfnetlink_queue.h``.
Prints ``ready`` once the queue is bound; SIGTERM accepts what is still held and exits. Runs with a
real-time priority where allowed (root), so that a loaded machine does not add to its delay.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Iterator
from types import FrameType

NETLINK_NETFILTER = 12  # linux/netlink.h
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 0x2
SOL_SOCKET_SO_RCVBUFFORCE = 33  # asm-generic/socket.h (not exported by Python's socket module)

NFNL_SUBSYS_QUEUE = 3  # linux/netfilter/nfnetlink.h; a message's type is (subsystem << 8) | message
NFQNL_MSG_PACKET, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 2, 3  # enum nfqnl_msg_types
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2  # enum nfqnl_attr_type
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_PF_BIND, NFQNL_CFG_CMD_PF_UNBIND = 1, 3, 4  # no-ops since 3.8, harmless
NFQNL_COPY_META = 1  # the packet's metadata (its id) without its bytes
NFQA_CFG_F_FAIL_OPEN = 1  # a full queue lets packets through instead of dropping them
NF_ACCEPT = 1

NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id (host byte order)
NFGENMSG = struct.Struct("!BBH")  # family, version 0, resource id (the queue number, big-endian)
NLATTR = struct.Struct("=HH")  # length (header included), type; padded to 4 bytes


def attr(kind: int, payload: bytes) -> bytes:
    data = NLATTR.pack(NLATTR.size + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def message(msg: int, queue: int, body: bytes, seq: int, flags: int = NLM_F_REQUEST) -> bytes:
    payload = NFGENMSG.pack(socket.AF_INET, 0, queue) + body
    return NLMSGHDR.pack(NLMSGHDR.size + len(payload), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq, 0) + payload


def messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload after the netlink header) of each message of one datagram."""
    at = 0
    while at + NLMSGHDR.size <= len(data):
        length, kind = NLMSGHDR.unpack_from(data, at)[:2]
        if length < NLMSGHDR.size:
            return
        yield kind, data[at + NLMSGHDR.size:at + length]
        at += (length + 3) & ~3


def packet_id(payload: bytes) -> int | None:
    """The id in a NFQNL_MSG_PACKET's NFQA_PACKET_HDR (struct nfqnl_msg_packet_hdr: __be32 id, …)."""
    at = NFGENMSG.size
    while at + NLATTR.size <= len(payload):
        length, kind = NLATTR.unpack_from(payload, at)
        if length < NLATTR.size:
            return None
        if kind & 0x3FFF == NFQA_PACKET_HDR:
            return int(struct.unpack_from("!I", payload, at + NLATTR.size)[0])
        at += (length + 3) & ~3
    return None


class Delayer:
    def __init__(self, queue: int, delay_s: float) -> None:
        self.queue, self.delay_s = queue, delay_s
        self.held: deque[tuple[float, int]] = deque()  # (due, packet id), oldest first
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        try:  # beyond net.core.rmem_max: root only
            self.sock.setsockopt(socket.SOL_SOCKET, SOL_SOCKET_SO_RCVBUFFORCE, 8 << 20)
        except OSError:
            pass

    def request(self, body: bytes) -> None:
        """Send one NFQNL_MSG_CONFIG and wait for the kernel's acknowledgement (error 0)."""
        self.seq += 1
        self.sock.send(message(NFQNL_MSG_CONFIG, self.queue, body, self.seq, NLM_F_REQUEST | NLM_F_ACK))
        while True:
            for kind, payload in messages(self.sock.recv(65536)):
                if kind == NLMSG_ERROR and NLMSGHDR.unpack_from(payload, 4)[3] == self.seq:
                    code = struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(-code, f"NFQUEUE {self.queue} config: {os.strerror(-code)}")
                    return
                self.take(kind, payload, time.monotonic())

    def bind(self) -> None:
        for command in (NFQNL_CFG_CMD_PF_UNBIND, NFQNL_CFG_CMD_PF_BIND):  # what libnetfilter_queue does
            self.request(attr(NFQA_CFG_CMD, struct.pack("!BxH", command, socket.AF_INET)))
        self.request(attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)))
        self.request(attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
                     + attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 10000))
                     + attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
                     + attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)))

    def take(self, kind: int, payload: bytes, now: float) -> None:
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            pid = packet_id(payload)
            if pid is not None:
                self.held.append((now + self.delay_s, pid))

    def release(self, now: float) -> None:
        """Accept every packet due by ``now``: one batch verdict for the newest of them (ids rise)."""
        last = None
        while self.held and self.held[0][0] <= now:
            last = self.held.popleft()[1]
        if last is not None:
            self.seq += 1
            body = attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, last))
            self.sock.send(message(NFQNL_MSG_VERDICT_BATCH, self.queue, body, self.seq))

    def run(self) -> None:
        while True:
            now = time.monotonic()
            self.release(now)
            self.sock.settimeout(max(0.0, self.held[0][0] - now) if self.held else None)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the kernel dropped messages we were too slow for
                    continue
                raise
            now = time.monotonic()
            for kind, payload in messages(data):
                self.take(kind, payload, now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, required=True, help="the iptables rule's --queue-num")
    parser.add_argument("--delay-ms", type=float, required=True)
    args = parser.parse_args()

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # It stands in for the wire: a crowded machine must not lengthen the delay. A program starved of
    # the CPU held packets for hundreds of milliseconds more than asked (a CI run's weak-link viewer
    # froze at each repair then), so it runs ahead of ordinary programs where it may (root).
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (AttributeError, PermissionError, OSError):
        pass
    delayer = Delayer(args.queue, args.delay_ms / 1000)
    try:
        delayer.bind()
        print("ready", flush=True)
        delayer.run()
    finally:  # let what is held through rather than drop it with the socket
        try:
            delayer.sock.settimeout(1.0)
            delayer.release(float("inf"))
        except OSError:
            pass
        delayer.sock.close()


if __name__ == "__main__":
    main()
