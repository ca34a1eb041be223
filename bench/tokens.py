"""The per-call cost of delegated permissions: decide, mint, verify.

    python -m bench.tokens

Baseline, measured in the same run: one bare ES256 signature with
`cryptography` (what any JWT library pays at minimum). Rows are mean µs per
operation and the ratio to that baseline. docs/architecture.md: minting and verifying
cost is amortised -- a cached mint should cost a small fraction of a signature.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from policies.delegation import DelegatedTokenMinter, MintRequest
from policies.keys import SigningKey
from policies.policy import DelegationQuery, Target, authorize
from policies.rules import Policy
from policies.tokens import TokenVerifier, TrustedIssuer, mint_access_token

ISSUER = "https://gateway.example"


class _Keys:
    def __init__(self, key: SigningKey) -> None:
        self.key = key

    async def active_key(self) -> SigningKey:
        return self.key

    async def get(self, kid: str) -> dict[str, str] | None:
        return self.key.public_jwk if kid == self.key.kid else None


async def _time(operation: Callable[[int], Awaitable[object]], n: int) -> float:
    for i in range(min(n, 200)):  # warm up
        await operation(i)
    started = time.perf_counter()
    for i in range(n):
        await operation(i)
    return (time.perf_counter() - started) / n * 1e6


async def main(n: int) -> None:
    key = SigningKey.generate()
    keys = _Keys(key)
    raw = ec.generate_private_key(ec.SECP256R1())
    message = b"x" * 300

    async def bare_signature(_: int) -> object:
        return raw.sign(message, ec.ECDSA(hashes.SHA256()))

    policy = Policy(
        agents={
            "sales": {"require": ["sales:quote"], "grant": ["sales:quote", "inventory:read"]},
        }
    )
    target = Target.from_card("sales", {"skills": [{"id": "quote"}]})
    scopes = frozenset({"support:write", "sales:quote", "inventory:read"})

    async def decide(_: int) -> object:
        return authorize(policy, DelegationQuery(scopes, ("support",), target, "quote"))

    minter = DelegatedTokenMinter(keys, ISSUER)

    def request(i: int) -> MintRequest:
        return MintRequest(
            subject=f"user-{i}",
            subject_issuer="https://idp.example",
            actors=("app", "support"),
            audience="https://sales.example/",
            scopes=frozenset({"sales:quote"}),
            client_id="support",
        )

    async def mint_uncached(i: int) -> object:
        return await minter.mint(request(i + 10_000_000))  # a new user: a cache miss

    async def mint_cached(_: int) -> object:
        return await minter.mint(request(0))

    verifier = TokenVerifier([TrustedIssuer(issuer=ISSUER, keys=keys, audience=ISSUER)])
    token = mint_access_token(
        key,
        issuer=ISSUER,
        subject="alice",
        audience=ISSUER,
        scopes=["sales:quote"],
        ttl_seconds=3600,
        client_id="app",
    )

    async def verify(_: int) -> object:
        return await verifier.verify(token)

    fresh_tokens = [
        mint_access_token(
            key,
            issuer=ISSUER,
            subject=f"user-{i}",
            audience=ISSUER,
            scopes=["sales:quote"],
            ttl_seconds=3600,
            client_id="app",
        )
        for i in range(n + 200)
    ]

    async def verify_first_sight(i: int) -> object:
        return await verifier.verify(fresh_tokens[i])

    baseline = await _time(bare_signature, n)
    rows = [
        ("bare ES256 signature (baseline)", baseline),
        ("policy decision (authorize)", await _time(decide, n)),
        ("mint, cache miss", await _time(mint_uncached, n)),
        ("mint, cache hit", await _time(mint_cached, n)),
        ("verify a token, first sight", await _time(verify_first_sight, n)),
        ("verify a token seen before", await _time(verify, n)),
    ]
    print(f"{'operation':<34} {'µs/op':>9} {'x baseline':>11}")
    for name, micros in rows:
        print(f"{name:<34} {micros:>9.1f} {micros / baseline:>11.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="operations per row")
    asyncio.run(main(parser.parse_args().n))
