"""Infrastructure faults under load (issue #18): two ``hoinghi serve`` processes on a private
PostgreSQL and a private Redis, a few hundred simulated sites, the chair's console on each process,
KPI reports flowing (the drill of tests/fault_drill.py). Four faults, once each: PostgreSQL restart,
Redis restart, SIGKILL of one process, SIGTERM of both (then both started again). After each:

- phantom_seats: seats whose online state differs from the connections actually open;
- stale_consoles: consoles whose roll call or floor holder differs from the database;
- acked_reports_lost: acknowledged KPI reports not stored exactly once; unacked_but_stored:
  reports answered with an error that were stored anyway;
- resync_s: from the dependency's return until the database, both consoles and every open site agree;
- ws_dropped_by_infra: site sockets the server ended during a PostgreSQL or Redis outage.

Targets: 0, 0, 0, 0, resync within 2 s, 0. Ends with one ``RESULT`` line. Needs PostgreSQL's server
binaries (initdb, pg_ctl) and redis-server. Run: ``.venv/bin/python bench/faults.py [--sites 300]``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fault_drill import Drill
from tests.faults_util import PrivatePostgres, PrivateRedis, _postgres_bin, _postgres_user
from tests.live_util import free_port

OUTAGE_S = 2.0
SETTLE_S = 60.0


def log(text: str) -> None:
    print(text, flush=True)


class Tally:
    def __init__(self) -> None:
        self.phantoms = self.stale = self.dropped = 0
        self.resync_s = 0.0

    async def after(self, name: str, d: Drill, since: float | None) -> None:
        db = await d.settled(SETTLE_S)
        took = time.monotonic() - since if since is not None else 0.0
        phantoms, stale = len(d.phantoms(db["online"])), d.stale_consoles(db) + (1 if d.stale_sites(db) else 0)
        self.phantoms += phantoms
        self.stale += stale
        if since is not None:
            self.resync_s = max(self.resync_s, took)
        log(f"  {name}: phantom seats {phantoms}, stale consoles {stale}"
            + (f", agreed {took:.2f} s after the dependency came back" if since is not None else ""))


async def run(sites: int, kpi_per_s: float) -> str:
    bindir, redis_bin = _postgres_bin(), shutil.which("redis-server")
    if bindir is None or redis_bin is None:
        raise SystemExit("needs PostgreSQL's server binaries (initdb, pg_ctl) and redis-server")
    root = Path(tempfile.mkdtemp(prefix="hoinghi-bench-faults-"))
    user = _postgres_user()
    pg_root = root / "pg"
    pg_root.mkdir()
    if user:
        shutil.chown(root, user, user)
        shutil.chown(pg_root, user, user)
    pg = PrivatePostgres(bindir, pg_root, free_port(), user)
    redis = PrivateRedis(redis_bin, root, free_port())
    pg.init()
    pg.start()
    redis.start()
    d = Drill(pg, redis, root, sites_n=sites, kpi_per_s=kpi_per_s)
    tally = Tally()
    try:
        log(f"Preparing: {sites} sites on two server processes, KPI reports at {kpi_per_s:g}/s")
        await d.prepare()
        for name, dep in (("PostgreSQL restart", pg), ("Redis restart", redis)):
            before = sum(s.dropped for s in d.sites)
            away = d.sites[10:20] if dep is pg else d.sites[20:30]  # they leave during the outage
            await asyncio.to_thread(dep.stop)
            await d.drop(away)
            if dep is redis:  # a floor grant while the bus is away: committed, delivered later
                await d.chairs[0].api("POST", f"/api/meetings/{d.meeting}/floor",
                                      json={"action": "grant", "unit": d.sites[3].code})
            await asyncio.sleep(OUTAGE_S)
            await asyncio.to_thread(dep.start)
            since = time.monotonic()
            d.back(away)  # and come back once it is over
            await tally.after(name, d, since)
            tally.dropped += sum(s.dropped for s in d.sites) - before
        await d.sigkill(1)
        await d.until(lambda: all(s.joined for s in d.sites), SETTLE_S, "every site joined again")
        await d.start_server(1)
        await d.open_consoles()
        await tally.after("SIGKILL of one process", d, None)
        await d.sigterm_all()
        for i in range(2):
            await d.start_server(i)
        await d.open_consoles()
        await tally.after("SIGTERM of both, both started again", d, None)
        lost, unacked_stored, twice = d.lost_reports(await d.stored())
        log(f"  KPI reports: {len(d.acked)} acknowledged, {len(d.unacked)} not; stored twice: {twice}")
    finally:
        await asyncio.to_thread(pg.start)
        await asyncio.to_thread(redis.start)
        await d.close()
        pg.stop()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)
    return (f"RESULT phantom_seats={tally.phantoms} stale_consoles={tally.stale} acked_reports_lost={lost + twice} "
            f"unacked_but_stored={unacked_stored} resync_s={tally.resync_s:.2f} ws_dropped_by_infra={tally.dropped}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, default=300)
    parser.add_argument("--kpi-per-s", type=float, default=20.0)
    args = parser.parse_args()
    print(asyncio.run(run(args.sites, args.kpi_per_s)), flush=True)


if __name__ == "__main__":
    main()
