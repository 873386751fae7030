"""bridge.udp_batch on real loopback sockets: a frame's datagrams leave in one system call where
Linux segments UDP, arrive whole and in order, and never overtake what asyncio still buffers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge import udp_batch
from bridge.udp_batch import DatagramBatch, runs


def test_runs_are_equal_sizes_with_a_shorter_last() -> None:
    sizes = [1310, 1310, 1310, 500, 1310, 1310, 90, 90]
    assert runs([b"x" * n for n in sizes]) == [(0, 4), (4, 7), (7, 8)]
    assert runs([b"x" * 1000] * 70) == [(0, 64), (64, 70)]  # the kernel's segment limit
    assert runs([b"x" * 1300, b"x" * 1400]) == [(0, 1), (1, 2)]  # a longer one starts a run


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append(data)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Any, Collect, Any]]:
    loop = asyncio.get_running_loop()
    receiver, collect = await loop.create_datagram_endpoint(Collect, local_addr=("127.0.0.1", 0))
    sender, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    try:
        yield sender, collect, receiver.get_extra_info("sockname")
    finally:
        sender.close()
        receiver.close()


def _frame(index: int) -> list[bytes]:
    return [bytes([index, i]) * 655 for i in range(3)] + [bytes([index, 9]) * 100]


async def _until(predicate: Any) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the datagrams did not arrive")


@pytest.mark.skipif(not udp_batch.GSO_SUPPORTED, reason="UDP segmentation is Linux's")
async def test_a_frame_leaves_in_one_call_and_arrives_whole(pair: tuple[Any, Collect, Any]) -> None:
    transport, collect, addr = pair
    batch = DatagramBatch(transport, gso=True)
    try:
        batch.send(_frame(1) + _frame(2), addr)
        await _until(lambda: len(collect.got) >= 8)
        assert collect.got == _frame(1) + _frame(2)
        assert batch.gso and batch.calls == 2, batch.calls
    finally:
        batch.close()


async def test_without_segmentation_each_datagram_is_one_sendto(pair: tuple[Any, Collect, Any]) -> None:
    """The default: straight to the socket, one sendto per datagram."""
    transport, collect, addr = pair
    batch = DatagramBatch(transport)
    try:
        batch.send(_frame(1), addr)
        await _until(lambda: len(collect.got) >= 4)
        assert collect.got == _frame(1) and batch.calls == 4
    finally:
        batch.close()


async def test_what_asyncio_still_buffers_is_never_overtaken(pair: tuple[Any, Collect, Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """While the transport holds a backlog, datagrams join it (in order) instead of the socket."""
    transport, _collect, addr = pair
    batch = DatagramBatch(transport)
    through: list[bytes] = []
    monkeypatch.setattr(transport, "get_write_buffer_size", lambda: 1)
    monkeypatch.setattr(transport, "sendto", lambda data, addr=None: through.append(data))
    try:
        batch.send(_frame(1), addr)
        assert through == _frame(1) and batch.calls == 0
    finally:
        batch.close()


async def test_a_refused_segmentation_falls_back_to_one_sendto_each(pair: tuple[Any, Collect, Any]) -> None:
    transport, collect, addr = pair
    batch = DatagramBatch(transport, gso=True)

    class Refusing:
        """A socket whose device cannot segment (as Linux says without checksum offload)."""

        def __init__(self, real: socket.socket) -> None:
            self.real = real

        def sendmsg(self, *args: Any) -> int:
            raise OSError(5, "Input/output error")  # EIO

        def sendto(self, data: bytes, addr: Any) -> int:
            return self.real.sendto(data, addr)

        def close(self) -> None:
            self.real.close()

    assert batch._sock is not None
    batch._sock = Refusing(batch._sock)  # type: ignore[assignment]
    try:
        batch.send(_frame(1), addr)
        await _until(lambda: len(collect.got) >= 4)
        assert collect.got == _frame(1) and not batch.gso
    finally:
        batch.close()
