"""The coordination rules' state in Redis (when `redis_url` is set): what
one call checks and takes is one Lua script, so one round trip, atomic on the
server -- two replicas racing for one entity's lease or a budget's last unit
are served one after the other, and exactly one gets it.

Each row of `coordination_sql` is a hash at
``switchboard-coordination:{rule}:{slot}:{key}`` (a rule name holds no colon,
a slot is a number: the key, last, may hold anything), expiring at its
``until`` -- spent rows vanish by themselves. Redis Cluster is not supported:
one call's keys may live on different shards. Run Redis with persistence
(AOF) in production: a Redis that restarts empty forgets every hold.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis

from gateway.delegation.coordination import (
    Blocked,
    Canonical,
    CoordinationBlocked,
    StateRow,
    blocked_by,
    merged,
    new_row,
    spent,
)
from gateway.delegation.permits import Admitted
from policies.coordination import Keyed, Plan

PREFIX = "switchboard-coordination"
_GLOB = str.maketrans({c: f"\\{c}" for c in "*?[]\\"})

# KEYS: none (every key is derived from the call; see the module's doc).
# ARGV[1]: now; ARGV[2]: {blocked: [key], leases: [[key, until, fields]],
# budgets: [[key, limit, until, fields]]}; ARGV[3]: the call's holder.
_TAKE = """
local now = tonumber(ARGV[1])
local ops = cjson.decode(ARGV[2])
local function live(key)
  local ends = redis.call('HGET', key, 'until')
  return ends and tonumber(ends) > now
end
local function put(key, ends, fields)
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(fields))
  redis.call('PEXPIREAT', key, math.ceil(ends * 1000))
end
for i, key in ipairs(ops.blocked) do
  if live(key) then return cjson.encode({'blocked', i, redis.call('HGETALL', key)}) end
end
for i, lease in ipairs(ops.leases) do
  -- taken, unless reserved for this very call (`Coordination.reserve`)
  if live(lease[1]) and redis.call('HGET', lease[1], 'holder') ~= ARGV[3] then
    return cjson.encode({'lease', i, redis.call('HGETALL', lease[1])})
  end
end
for i, budget in ipairs(ops.budgets) do
  if live(budget[1]) and tonumber(redis.call('HGET', budget[1], 'count')) >= budget[2] then
    return cjson.encode({'budget', i, {}})
  end
end
for _, lease in ipairs(ops.leases) do put(lease[1], lease[2], lease[3]) end
for _, budget in ipairs(ops.budgets) do
  if live(budget[1]) then redis.call('HINCRBY', budget[1], 'count', 1)
  else put(budget[1], budget[3], budget[4]) end
end
return cjson.encode({'ok', 0, {}})
"""
# ARGV[1]: now; ARGV[2]: the holder; ARGV[3]: {leases: [key], closes: [key],
# puts: [[key, until, fields]]} (puts: the holds opened and cooldowns started,
# empty for a call that failed). Returns the 1-based indices of `closes` that
# were in force.
_GIVE_BACK = """
local now = tonumber(ARGV[1])
local ops = cjson.decode(ARGV[3])
for _, key in ipairs(ops.leases) do
  if redis.call('HGET', key, 'holder') == ARGV[2] then redis.call('DEL', key) end
end
local closed = {}
for i, key in ipairs(ops.closes) do
  local ends = redis.call('HGET', key, 'until')
  if ends and tonumber(ends) > now then table.insert(closed, i) end
  redis.call('DEL', key)
end
for _, put in ipairs(ops.puts) do
  redis.call('DEL', put[1])
  redis.call('HSET', put[1], unpack(put[3]))
  redis.call('PEXPIREAT', put[1], math.ceil(put[2] * 1000))
end
return cjson.encode(closed)
"""

# ARGV[1]: the row's name; ARGV[2]: the name under its canonical key;
# ARGV[3]: its fields, merged with what is there already (`merged`);
# ARGV[4]: when they end. Moves a row only if it is still there as it was
# read (ARGV[5]: its `until`), so a replica re-keying at the same time, or a
# call that changed it since, is not overwritten: 0, and it is read again.
_MOVE = """
if redis.call('HGET', ARGV[1], 'until') ~= ARGV[5] then return 0 end
redis.call('DEL', ARGV[1])
redis.call('DEL', ARGV[2])
redis.call('HSET', ARGV[2], unpack(cjson.decode(ARGV[3])))
redis.call('PEXPIREAT', ARGV[2], math.ceil(tonumber(ARGV[4]) * 1000))
return 1
"""


def redis_key(rule: str, slot: int, key: str) -> str:
    return f"{PREFIX}:{rule}:{slot}:{key}"


def _fields(row: StateRow) -> list[str]:
    flat: list[str] = []
    for name, value in vars(row).items():  # not asdict: no deep copy of plain values
        if value is not None:
            flat += [name, repr(value) if isinstance(value, float) else str(value)]
    return flat


def _row(found: Any) -> StateRow | None:
    """A row from HGETALL (a dict from redis-py, a flat list from Lua)."""
    if isinstance(found, list):
        found = dict(zip(found[::2], found[1::2], strict=True))
    if not found:
        return None
    text = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in found.items()
    }
    return StateRow(
        rule=text["rule"],
        key=text["key"],
        slot=int(text["slot"]),
        kind=text["kind"],
        entity=text["entity"],
        until=float(text["until"]),
        opened_at=float(text["opened_at"]),
        count=int(text["count"]),
        holder=text.get("holder"),
        subject=text.get("subject"),
        agent=text.get("agent"),
        action=text.get("action"),
        trace_id=text.get("trace_id"),
    )


class RedisStore:
    def __init__(self, url: str) -> None:
        self.redis: Redis = Redis.from_url(url)
        self._take = self.redis.register_script(_TAKE)
        self._give_back = self.redis.register_script(_GIVE_BACK)
        self._move = self.redis.register_script(_MOVE)

    async def take(self, admitted: Admitted, now: float) -> None:
        plan = admitted.plan
        budgets = []
        for keyed in plan.budgets:
            slot = int(now // keyed.seconds)
            ends = (slot + 1) * keyed.seconds
            row = new_row(keyed, admitted, now, slot, ends)
            key = redis_key(keyed.rule, slot, keyed.key)
            budgets.append([key, keyed.limit, ends, _fields(row)])
        ops = {
            "blocked": [redis_key(k.rule, 0, k.key) for k in plan.blocked_by],
            "leases": [self._slot0(k, admitted, now) for k in plan.leases],
            "budgets": budgets,
        }
        phase, index, found = json.loads(
            await self._take(args=[repr(now), json.dumps(ops), admitted.holder])
        )
        if phase == "ok":
            return
        if phase == "budget":
            raise CoordinationBlocked(spent(plan.budgets[index - 1], now))
        keyed = (plan.blocked_by if phase == "blocked" else plan.leases)[index - 1]
        holder = _row(found)
        assert holder is not None
        raise CoordinationBlocked(blocked_by(keyed, holder, now))

    async def give_back(
        self, admitted: Admitted, succeeded: bool, now: float
    ) -> tuple[list[Keyed], list[Keyed]]:
        plan = admitted.plan
        ops = {
            "leases": [redis_key(k.rule, 0, k.key) for k in plan.leases],
            "closes": [redis_key(k.rule, 0, k.key) for k in plan.closes] if succeeded else [],
            "puts": (
                [self._slot0(k, admitted, now) for k in (*plan.opens, *plan.cools)]
                if succeeded
                else []
            ),
        }
        found = json.loads(
            await self._give_back(args=[repr(now), admitted.holder, json.dumps(ops)])
        )
        if not succeeded:
            return [], []
        # cjson encodes an empty table as {}: nothing closed.
        closed = [plan.closes[i - 1] for i in found] if isinstance(found, list) else []
        return list(plan.opens), closed

    @staticmethod
    def _slot0(keyed: Keyed, admitted: Admitted, now: float) -> list[Any]:
        row = new_row(keyed, admitted, now, 0, now + keyed.seconds)
        return [redis_key(keyed.rule, 0, keyed.key), row.until, _fields(row)]

    async def blocking(self, plan: Plan, now: float) -> list[Blocked]:
        found: list[Blocked] = []
        for keyed in (*plan.blocked_by, *plan.leases):
            row = _row(await self.redis.hgetall(redis_key(keyed.rule, 0, keyed.key)))
            if row is not None and row.until > now:
                found.append(blocked_by(keyed, row, now))
        for keyed in plan.budgets:
            slot = int(now // keyed.seconds)
            row = _row(await self.redis.hgetall(redis_key(keyed.rule, slot, keyed.key)))
            if row is not None and row.until > now and row.count >= keyed.limit:
                found.append(spent(keyed, now))
        return found

    async def rows(self, entity: str | None, key: str | None, now: float) -> list[StateRow]:
        pattern = f"{PREFIX}:*" if key is None else f"{PREFIX}:*:*:{key.translate(_GLOB)}"
        found: list[StateRow] = []
        async for name in self.redis.scan_iter(match=pattern, count=1000):
            row = _row(await self.redis.hgetall(name))
            if row is None or row.until <= now or (entity is not None and row.entity != entity):
                continue
            if key is not None and row.key != key:
                continue
            found.append(row)
            if len(found) >= 1000:
                break
        return sorted(found, key=lambda r: (r.entity, r.key, r.rule))

    async def remove(self, rule: str, key: str, now: float) -> list[StateRow]:
        removed: list[StateRow] = []
        async for name in self.redis.scan_iter(match=f"{PREFIX}:{rule}:*:{key.translate(_GLOB)}"):
            row = _row(await self.redis.hgetall(name))
            if row is not None and row.rule == rule and row.key == key:
                await self.redis.delete(name)
                if row.until > now:
                    removed.append(replace(row))
        return removed

    async def purge(self, now: float) -> int:
        return 0  # every row expires at its `until` by itself

    async def rekey(self, canonical: Canonical, now: float) -> int:
        moved = 0
        async for name in self.redis.scan_iter(match=f"{PREFIX}:*", count=1000):
            row = _row(await self.redis.hgetall(name))
            if row is None or row.until <= now or canonical(row.entity, row.key) == row.key:
                continue
            key = canonical(row.entity, row.key)
            there = _row(await self.redis.hgetall(redis_key(row.rule, row.slot, key)))
            kept = replace(row, key=key)
            if there is not None and there.until > now:
                kept = merged(there, row)
            moved += await self._move(
                args=[
                    name,
                    redis_key(row.rule, row.slot, key),
                    json.dumps(_fields(kept)),
                    repr(kept.until),
                    repr(row.until),  # as `_fields` wrote it
                ]
            )
        return moved

    async def aclose(self) -> None:
        await self.redis.aclose()
