"""What checking a pooled PostgreSQL connection before each use costs.

    python -m bench.pool_ping                       # the local server, 3 rounds
    python -m bench.pool_ping --database-url postgresql://HOST:5432 --transactions 5000

One short transaction (``BEGIN; SELECT 1; COMMIT``), eight at a time, on two
engines in turn against a throwaway database: SQLAlchemy's ``pool_pre_ping``
(a round trip before every checkout) and the gateway's own engine
(`gateway.storage.db.create_engine`: a connection is pinged only after it
sat idle). Printed per round: this process's CPU and wall time per
transaction, and the ratio of the two engines' CPU, taken within the round.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.fresh_db import afresh_database
from gateway.storage.db import create_engine

AT_ONCE = 8


async def per_transaction(engine: AsyncEngine, count: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per transaction, after one to open the pool."""

    async def one() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT 1"))

    await one()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count // AT_ONCE):
        await asyncio.gather(*[one() for _ in range(AT_ONCE)])
    done = count // AT_ONCE * AT_ONCE
    return (time.process_time() - cpu) / done * 1e6, (time.perf_counter() - wall) / done * 1e6


async def main(args: argparse.Namespace) -> None:
    async with afresh_database(args.database_url, "switchboard_bench_pool_ping") as url:
        address = url.render_as_string(hide_password=False)
        print(f"{args.transactions} transactions of SELECT 1, {AT_ONCE} at a time, per engine")
        for round_ in range(1, args.rounds + 1):
            pinging = create_async_engine(
                address, pool_pre_ping=True, pool_size=10, max_overflow=20
            )
            gateways = create_engine(address)
            try:
                # Each goes first in every other round: neither gains from warming the other.
                if round_ % 2:
                    before = await per_transaction(pinging, args.transactions)
                    after = await per_transaction(gateways, args.transactions)
                else:
                    after = await per_transaction(gateways, args.transactions)
                    before = await per_transaction(pinging, args.transactions)
            finally:
                await pinging.dispose()
                await gateways.dispose()
            print(
                f"round {round_}: pool_pre_ping {before[0]:.0f} µs CPU ({before[1]:.0f} wall); "
                f"pinged when idle {after[0]:.0f} µs ({after[1]:.0f} wall); "
                f"CPU ratio {after[0] / before[0]:.2f}"
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server: the bench creates its database there and drops it",
    )
    parser.add_argument("--transactions", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
