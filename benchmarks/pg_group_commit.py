"""Whether group commit would pay on PostgreSQL: units of work committed alone vs grouped, through Stratus's Database.

    python benchmarks/pg_group_commit.py URL [--units 2000] [--concurrency 10] [--rounds 3]

URL is a PostgreSQL server of your own, e.g. ``scripts/postgres.sh start DIR PORT`` (which runs it with fsync off,
as the tests do; start one with fsync on to see what a durable commit costs). A unit is five small statements, as
a delete's or a build step's: an INSERT of its own row, two UPDATEs of it, an UPDATE of one of 20 shared rows (a
provider's generation) and a SELECT. ``alone`` is what Stratus does on PostgreSQL: each unit in a transaction of
its own on a pooled connection, ``--concurrency`` at a time. ``grouped`` is SQLite's scheme transposed: the units
queue for one connection, each in a savepoint, and the units ready together share one COMMIT. Rounds alternate;
each line gives units/s and the CPU per unit of this client and of the server's processes (every ``postgres``
process of the machine, so run it on a machine with no other PostgreSQL busy).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from stratus.db.engine import Database

STATEMENTS = (
    ("INSERT INTO gc_units (id, v) VALUES (:i, 0)", lambda i: {"i": i}),
    ("UPDATE gc_units SET v = v + 1 WHERE id = :i", lambda i: {"i": i}),
    ("UPDATE gc_shared SET g = g + 1 WHERE id = :p", lambda i: {"p": i % 20}),
    ("SELECT count(*) FROM gc_units WHERE v = :i", lambda i: {"i": i}),
    ("UPDATE gc_units SET v = v + 1 WHERE id = :i", lambda i: {"i": i}),
)


async def _unit(conn: Any, i: int) -> None:
    for sql, params in STATEMENTS:
        await conn.execute(text(sql), params(i))


async def _setup(db: Database) -> None:
    async with db.write() as conn:
        for sql in ("DROP TABLE IF EXISTS gc_units", "DROP TABLE IF EXISTS gc_shared",
                    "CREATE TABLE gc_units (id int PRIMARY KEY, v int)",
                    "CREATE TABLE gc_shared (id int PRIMARY KEY, g int)",
                    "INSERT INTO gc_shared SELECT g, 0 FROM generate_series(0, 19) g"):
            await conn.execute(text(sql))


async def alone(db: Database, units: int, concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem, db.write() as conn:
            await _unit(conn, i)

    await asyncio.gather(*(one(i) for i in range(units)))


async def grouped(db: Database, units: int, concurrency: int) -> None:
    queue: asyncio.Queue[tuple[int, asyncio.Future[None]]] = asyncio.Queue()
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            await queue.put((i, done))
            await done

    async def writer() -> None:
        assert db.async_engine is not None
        async with db.async_engine.connect() as conn:
            written = 0
            while written < units:
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                async with conn.begin():
                    for i, _ in batch:
                        await conn.execute(text("SAVEPOINT unit"))
                        await _unit(conn, i)
                        await conn.execute(text("RELEASE SAVEPOINT unit"))
                for _, done in batch:
                    done.set_result(None)
                written += len(batch)

    task = asyncio.create_task(writer())
    await asyncio.gather(*(one(i) for i in range(units)))
    await task


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu() -> float:
    """User + system seconds of every ``postgres`` process now."""
    ticks = 0
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def main(url: str, units: int, concurrency: int, rounds: int) -> None:
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    db = Database(url)
    try:
        for _ in range(rounds):
            for name, mode in (("alone", alone), ("grouped", grouped)):
                await _setup(db)
                t0, own0, server0 = time.perf_counter(), _own_cpu(), _server_cpu()
                await mode(db, units, concurrency)
                wall, own, server = time.perf_counter() - t0, _own_cpu() - own0, _server_cpu() - server0
                print(f"{name:8s} {units} units, {concurrency} at a time: {units / wall:6.0f} units/s, "
                      f"client CPU {1000 * own / units:.2f} ms/unit, server CPU {1000 * server / units:.2f} ms/unit")
    finally:
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.units, args.concurrency, args.rounds))
