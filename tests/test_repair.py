"""#16: how one subscriber's NACKed packets are sent again (bridge/repair.py), on the event loop's
own clock: two copies at once and a third 150 ms later (copies sent together meet the same full
queue of a shaped link and are lost together), a packet asked again while its copies are under way is not
answered again (every NACK of an aiortc receiver repeats the whole missing list), and once its
copies had a round trip to arrive it is. What ``resend`` is given is what the subscriber's socket
would get; the real sender is covered by test_relay_direct, test_rtcp_fast and test_weak_link."""

from __future__ import annotations

import asyncio

from bridge.repair import COPY_DELAYS, MIN_ROUND_TRIP, Repairs


class Socket:
    """What a subscriber would be sent: (seconds since the start, sequence number)."""

    def __init__(self, held: set[int]) -> None:
        self.held = held
        self.start = asyncio.get_running_loop().time()
        self.sent: list[tuple[float, int]] = []

    async def resend(self, seq: int) -> int:
        if seq not in self.held:
            return 0
        self.sent.append((asyncio.get_running_loop().time() - self.start, seq))
        return 1200


async def test_each_nacked_packet_goes_twice_at_once_and_once_later() -> None:
    socket = Socket({7, 8})
    repairs = Repairs(socket.resend, lambda: 0.03)
    await repairs.nacked(7)
    await repairs.nacked(8)
    assert [seq for _, seq in socket.sent] == [7, 7, 8, 8]  # two copies each at once
    await asyncio.sleep(COPY_DELAYS[-1] + 0.1)
    times = {seq: [t for t, s in socket.sent if s == seq] for seq in (7, 8)}
    for seq in (7, 8):
        assert len(times[seq]) == 3, times
        # the third one later: a queue that dropped the first two has drained meanwhile
        assert COPY_DELAYS[-1] - 0.01 <= times[seq][2] - times[seq][0] <= COPY_DELAYS[-1] + 0.08, times
    assert repairs.answered == 2
    await repairs.close()


async def test_a_packet_is_not_answered_again_within_a_round_trip_of_its_last_copy() -> None:
    socket = Socket({5})
    rtt = 0.1
    repairs = Repairs(socket.resend, lambda: rtt)
    await repairs.nacked(5)
    for _ in range(4):  # the receiver's next NACKs list it again while its copies are under way
        await asyncio.sleep(0.05)
        await repairs.nacked(5)
    assert repairs.ignored == 4 and repairs.answered == 1
    assert repairs.asked == 5  # every NACK is heard (a probe stops at the first: bridge.probe)
    await asyncio.sleep(socket.start + COPY_DELAYS[-1] + rtt + 0.05 - asyncio.get_running_loop().time())
    count = len(socket.sent)
    assert count == 3
    await repairs.nacked(5)  # all three lost: asked again after the round trip, answered again
    assert repairs.answered == 2 and len(socket.sent) == count + 2
    await repairs.close()


async def test_without_a_measured_round_trip_the_least_one_holds() -> None:
    socket = Socket({1})
    repairs = Repairs(socket.resend, lambda: None)
    await repairs.nacked(1)
    await asyncio.sleep(COPY_DELAYS[-1] + MIN_ROUND_TRIP / 2)
    await repairs.nacked(1)
    assert repairs.ignored == 1
    await asyncio.sleep(MIN_ROUND_TRIP)
    await repairs.nacked(1)
    assert repairs.answered == 2
    await repairs.close()


async def test_a_packet_no_longer_held_is_not_answered_and_a_splice_stops_the_copies() -> None:
    socket = Socket({3})
    repairs = Repairs(socket.resend, lambda: 0.02)
    await repairs.nacked(99)  # never sent, or gone from the history
    assert repairs.answered == 0 and socket.sent == []
    await repairs.nacked(3)
    repairs.forget()  # the stream moved to another rendition: the old packets are not sent again
    await asyncio.sleep(COPY_DELAYS[-1] + 0.05)
    assert [seq for _, seq in socket.sent] == [3, 3]
    socket.held.add(4)
    await repairs.nacked(4)
    await repairs.close()  # the sender stopped: its pending copies end with it
    await asyncio.sleep(COPY_DELAYS[-1] + 0.05)
    assert [seq for _, seq in socket.sent] == [3, 3, 4, 4]
