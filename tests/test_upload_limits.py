"""Issue #13, finding 11 (and the multipart half of 9): who may upload is settled before a byte of
the body is read, so a viewer's 9 MB file never reaches the disk; multipart bodies carry their
CSRF token in the header (or, for plain HTML forms, the action's query), never inside the body;
the number of form fields and the size of a report's body are capped."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from tests.conftest import LiveServer
from tests.media_util import until
from tests.test_scope import changed, fixture_ids, session_client, snapshot

BOUNDARY = "b0undary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def _files(live: LiveServer) -> set[str]:
    root = live.settings.attachment_path
    return {str(p) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _report_head(filename: str = "ke-hoach.pdf") -> bytes:
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="text"\r\n\r\nBáo cáo\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="percent"\r\n\r\n50\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            "Content-Type: application/pdf\r\n\r\n").encode() + b"%PDF-1.4 " + b"x" * 256 * 1024


async def _upload_held_open(http: aiohttp.ClientSession, path: str, headers: dict[str, str], head: bytes,
                            rest: bytes, reached_disk: Callable[[], bool]) -> tuple[bool, int | None]:
    """Send ``head``, then hold the rest of the body back until the server either answers or
    writes something to disk. (Answered before the body was read?, the status.)"""
    proceed = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield head
        await proceed.wait()
        yield rest

    task = asyncio.create_task(http.post(path, data=body(), headers=headers, allow_redirects=False))
    await until(lambda: task.done() or reached_disk(), within=60, what="an answer, or the upload on disk")
    answered_first = task.done()
    proceed.set()
    try:
        resp = await task
        status: int | None = resp.status
        resp.release()
    except aiohttp.ClientError:  # the server may close a connection whose body it never wanted
        status = None
    return answered_first, status


async def test_a_viewers_9_mb_upload_is_refused_before_it_is_read(live: LiveServer) -> None:
    ids = await fixture_ids(live)
    viewer = await session_client(live, "xem_hanoi")
    outsider = await session_client(live, "phutho")  # an operator, but Hà Nội's assignment is out of reach
    before, files = await snapshot(live), _files(live)
    rest = b"x" * (9 * 1024 * 1024) + f"\r\n--{BOUNDARY}--\r\n".encode()
    path = f"/api/assignments/{ids['assignment_01']}/reports"
    for client, status in ((viewer, 403), (outsider, 404)):
        answered_first, got = await _upload_held_open(
            client.http, path, {**MULTIPART, "X-CSRF-Token": client.csrf}, _report_head(), rest,
            lambda: _files(live) != files)
        assert answered_first, f"{client.username}: the server read (and stored) the upload before refusing it"
        assert got in (status, None), (client.username, got)
        assert _files(live) == files, "nothing of a refused upload is written to disk"
    # A non-admin's unit import (raw CSV) is refused before the file is read as well.
    answered_first, got = await _upload_held_open(
        viewer.http, "/api/units/import", {"Content-Type": "text/csv", "X-CSRF-Token": viewer.csrf},
        b"code,name,level,parent_code\n", b"99001,Xa Moi,commune,01\n" * 200_000, lambda: False)
    assert answered_first and got in (403, None), got
    assert changed(before, await snapshot(live)) == set()

    # The positive control: the assignment's own operator uploads the same way, and the file is kept.
    hanoi = await session_client(live, "hanoi")
    resp = await hanoi.http.post(path, data=_report_head() + f"\r\n--{BOUNDARY}--\r\n".encode(),
                                 headers={**MULTIPART, "X-CSRF-Token": hanoi.csrf})
    assert resp.status == 201, await resp.text()
    assert len(_files(live) - files) == 1


async def test_multipart_needs_the_csrf_header_or_query(live: LiveServer) -> None:
    ids = await fixture_ids(live)
    hanoi, admin = await session_client(live, "hanoi"), await session_client(live, "quantri")
    before, files = await snapshot(live), _files(live)
    body = _report_head() + f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n" \
        f"{hanoi.csrf}\r\n--{BOUNDARY}--\r\n".encode()
    path = f"/api/assignments/{ids['assignment_01']}/reports"
    # The token inside the body does not count: the body is never read to find it.
    resp = await hanoi.http.post(path, data=body, headers=MULTIPART)
    answer = await resp.json()
    assert (resp.status, answer["error"]["code"]) == (403, "csrf_required"), answer
    assert "CSRF" in answer["error"]["message"]
    for wrong in ({"X-CSRF-Token": "sai"}, {}):
        resp = await hanoi.http.post(path, params={"csrf": "sai"} if not wrong else None, data=body,
                                     headers={**MULTIPART, **wrong})
        assert resp.status == 403, await resp.text()
    assert changed(before, await snapshot(live)) == set() and _files(live) == files

    # A plain HTML upload form posts its token in the action's query; so does the page.
    page = await (await admin.http.get("/admin/units/import")).text()
    action = re.search(r'<form method="post" action="([^"]+)" enctype="multipart/form-data"', page)
    assert action and action.group(1) == f"/admin/units/import?csrf={admin.csrf}", action
    form = aiohttp.FormData()
    form.add_field("file", b"code,name,level,parent_code\n99001,X\xc3\xa3 M\xe1\xbb\x9bi,commune,01\n",
                   filename="don-vi.csv", content_type="text/csv")
    resp = await admin.http.post(action.group(1), data=form)
    assert resp.status == 200, await resp.text()
    assert ("unit", "99001") in changed(before, await snapshot(live))
    resp = await hanoi.http.post(path, params={"csrf": hanoi.csrf}, data=body, headers=MULTIPART)
    assert resp.status == 201, await resp.text()


async def test_form_fields_and_report_size_are_capped(sqlite_url: str, server_factory: Any) -> None:
    live = await server_factory(sqlite_url, attachment_max_bytes=1000)
    ids = await fixture_ids(live)
    hanoi, admin = await session_client(live, "hanoi"), await session_client(live, "quantri")
    before, files = await snapshot(live), _files(live)
    path = f"/api/assignments/{ids['assignment_01']}/reports"
    headers = {**MULTIPART, "X-CSRF-Token": hanoi.csrf}

    def parts(*named: tuple[str, str]) -> bytes:  # a nameless part when the name is ""
        out = [f'--{BOUNDARY}\r\nContent-Disposition: form-data{f"; name={chr(34)}{n}{chr(34)}" if n else ""}'
               f"\r\n\r\n{v}\r\n" for n, v in named]
        return ("".join(out) + f"--{BOUNDARY}--\r\n").encode()

    for label, body in (("30 text fields", parts(*((f"f{i}", "x") for i in range(30)))),
                        ("30 nameless parts", parts(*(("", "x") for _ in range(30)))),
                        ("one field repeated", parts(("text", "a"), *(("percent", "1") for _ in range(20))))):
        resp = await hanoi.http.post(path, data=body, headers=headers)
        answer = await resp.json()
        assert (resp.status, answer["error"]["code"]) == (400, "form_too_many_fields"), (label, answer)
    # A body larger than ten files at their limit plus the fields: refused from its length, unread.
    big = _report_head() + b"y" * 400_000
    resp = await hanoi.http.post(path, data=big, headers=headers)
    answer = await resp.json()
    assert (resp.status, answer["error"]["code"]) == (413, "report_too_large"), answer
    # …and when it streams without a length, refused once the running total passes the cap.
    async def stream() -> AsyncIterator[bytes]:
        yield parts(("text", "x"), ("", "z" * 400_000))

    resp = await hanoi.http.post(path, data=stream(), headers=headers)
    answer = await resp.json()
    assert (resp.status, answer["error"]["code"]) == (413, "report_too_large"), answer
    # Page forms: more fields than any form has (aiohttp's client_max_fields) → 413.
    many = "&".join(f"f{i}=1" for i in range(150))
    resp = await admin.http.post("/admin/users", data=many, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": admin.csrf})
    assert resp.status == 413, resp.status
    assert changed(before, await snapshot(live)) == set() and _files(live) == files
