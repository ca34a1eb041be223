"""The unfinished runs of a replica that is gone, taken over by a live one.

A run is a DBOS workflow owned by the replica that runs it: its executor id
is the replica's id (`gateway.storage.replicas`). DBOS's own start-up
recovery takes up only the runs of its own executor id -- right for one
process, wrong for several: a replica that dies is not there to restart, or
comes back under a new random id. So every replica running flows looks, once
a heartbeat while any are pending and whenever the replicas seen move, for
unfinished runs whose owner is not among the live replicas
(its row not renewed for `replica_stale_seconds`, or absent), and hands them
to DBOS's recovery, which re-queues each once however many replicas ask.
Only a replica that has itself been renewing its row all that while judges
a stale row (`ReplicaDirectory.gone`): after a database outage every row
looks stale, and the runs of replicas that are alive must stay theirs. A
replica that stopped cleanly has no row: its runs are taken at once.

On SQLite with one process (the embedded default) its executor is DBOS's
`local`, recovered at every start; the sweep then only takes up runs left by
the workers of an earlier `serve --workers` on the same file. With workers,
each is a replica here as on PostgreSQL.
"""

from __future__ import annotations

import logging

from gateway.flows.engine import FlowEngine
from gateway.flows.store import FlowStore
from gateway.storage.periodic import ALONE_SECONDS
from gateway.storage.replicas import ReplicaDirectory

logger = logging.getLogger(__name__)


class RunTakeover:
    def __init__(self, engine: FlowEngine, store: FlowStore, replicas: ReplicaDirectory) -> None:
        self.engine = engine
        self.store = store
        self.replicas = replicas
        self._found = True  # runs of other executors pending at the last look (first: unknown)

    def interval(self) -> float:
        """A heartbeat while runs of another executor were pending at the
        last look (their owner may go); else once a minute. A replica that
        starts, stops or goes stale is seen at this one's next heartbeat,
        which wakes the sweep (`ReplicaDirectory.on_others`; the flows'
        jobs): the runs of one that is gone are found then, so another
        replica merely running -- with no run pending -- is no reason to
        look every heartbeat."""
        if self._found:
            return self.replicas.heartbeat_seconds
        return max(ALONE_SECONDS, self.replicas.heartbeat_seconds)

    async def sweep(self) -> list[str]:
        """Take over the runs of replicas that are gone; returns their ids."""
        if not self.engine.launched:
            # Runs exist only where flows do; a replica that has served no flow
            # request yet still takes over the others'.
            if not await self.store.any():
                self._found = False
                return []
            await self.engine.ensure()
        # This process's own executor is never gone (`local` is not a replica id).
        pending = await self.engine.pending_executors() - {self.engine.executor_id}
        self._found = bool(pending)
        if not pending:
            return []
        gone = await self.replicas.gone(pending)
        if not gone:
            return []
        runs = await self.engine.recover(sorted(gone))
        if runs:
            logger.warning(
                "replica %s takes over %d unfinished flow run(s) of replica(s) gone: %s",
                self.replicas.id,
                len(runs),
                ", ".join(sorted(gone)),
            )
        return runs
