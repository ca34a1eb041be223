"""Tool search's queries embedded together: those that arrive while the
model is busy share its next pass.

A pass through the model costs less per query the more queries it carries:
part of it is paid once per pass, whatever it carries (the weights read,
once per layer; docs/performance.md has the figures). Run one pass per
query, eight concurrent searches cost eight passes, in as many threads, on
a machine whose cores the gateway's requests need. Here one pass runs at a
time; the queries that arrived during it go in the next, up to
`MOST_AT_ONCE`. Nothing waits for a batch to fill: a query that finds the
model idle is embedded at once.

With the model in its own process, the next batch is sent before the pass
ahead of it ends, once as many queries wait as that pass carries (`_due`):
the process takes it the moment it is free, instead of waiting for the
event loop to read the answer and send what waits -- while the loop
serves other requests, which on a busy gateway left the model idle about
a fifth of the time (docs/performance.md, "The model kept busy"). Never
more than one batch waits there: a query arriving later goes in the pass
after, not in one of its own.

The pass runs in the model's own process (`registry.model_process`: why),
or in a worker thread when the model is loaded here (tests, benches); the
query's similarity to every tool's vector and its best rows in a worker
thread, while the next pass runs, so the event loop only hands queries in
and answers out and the model does not wait for the scoring. A query's
similarities may differ in the last float32 digits with the company it is
embedded in (OpenBLAS picks its kernel by the number of rows): two tools
within ~1e-5 of each other can swap places.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from registry.model_process import ModelProcessGone

if TYPE_CHECKING:
    from registry.model_process import ModelProcess

MOST_AT_ONCE = 16  # queries in one pass: the cost per query stops falling around here
# A batch's similarities by blocks of this many tools, for up to this many
# queries (`_product`; docs/performance.md, "A query's pass by blocks").
ROWS_AT_ONCE = 256
BLOCKED_QUERIES = 8


class QueryEmbedder(Protocol):
    def embed(self, texts: list[str]) -> Any: ...


@dataclass(frozen=True)
class _Asked:
    query: str
    matrix: Any  # every tool's vector, a row each
    index: Any  # the rows of the caller's tools in ``matrix``
    depth: int
    answer: asyncio.Future[list[tuple[int, float]]]


class QueryBatches:
    def __init__(self, apart: ModelProcess | None = None) -> None:
        # Where a pass runs: the model's own process (`registry.model_process`;
        # while it is not up, every search of the pass fails with
        # `ModelProcessGone`), else the caller's embedder, in a worker thread.
        self._apart = apart
        self._waiting: list[_Asked] = []
        # The batches sent and not answered yet, each with its size: one,
        # or in the model's process two (the second waiting there, `_due`).
        self._passes: dict[asyncio.Task[None], int] = {}
        self._most_in_flight = 1 if apart is None else 2
        # A batch's similarities, worked out beside the next batch's pass
        # (`_score`): the model does not wait for them.
        self._scoring: set[asyncio.Task[None]] = set()

    async def nearest(
        self, embedder: QueryEmbedder | None, query: str, matrix: Any, index: Any, depth: int
    ) -> list[tuple[int, float]]:
        """The ``depth`` positions of ``index`` whose rows of ``matrix`` are
        nearest ``query``, best first (ties: the earlier position), each with
        its cosine similarity. Raises what embedding the query raised."""
        loop = asyncio.get_running_loop()
        asked = _Asked(query, matrix, index, depth, loop.create_future())
        self._waiting.append(asked)
        # A pass of a loop that closed without ending it would never answer.
        if any(task.done() or task.get_loop() is not loop for task in self._passes):
            self._passes = {
                t: n for t, n in self._passes.items() if not t.done() and t.get_loop() is loop
            }
        self._send(embedder)
        return await asked.answer

    def _due(self) -> bool:
        """Whether what waits goes to the model now: when no pass is under
        way, at once; with one under way in the model's process, once a
        batch as large as that pass has formed (a smaller one would pay a
        pass's fixed share for fewer queries: `MOST_AT_ONCE`)."""
        if not self._waiting or len(self._passes) >= self._most_in_flight:
            return False
        ahead = max(self._passes.values(), default=0)
        return len(self._waiting) >= min(ahead, MOST_AT_ONCE)

    def _send(self, embedder: QueryEmbedder | None) -> None:
        """Start a pass of what waits, if it is due (`_due`)."""
        loop = asyncio.get_running_loop()
        while self._due():
            taken = self._waiting[:MOST_AT_ONCE]
            del self._waiting[:MOST_AT_ONCE]
            batch = [a for a in taken if not a.answer.done()]  # a cancelled search is not embedded
            if batch:
                self._passes[loop.create_task(self._pass(embedder, batch))] = len(batch)

    async def _pass(self, embedder: QueryEmbedder | None, batch: list[_Asked]) -> None:
        """One batch through the model, its scoring started, and then what
        has become due sent."""
        try:
            vectors: list[Any] = await self._vectors(embedder, batch)
        except asyncio.CancelledError:  # the loop is closing: no search waits forever
            _cancel([*batch, *self._waiting])
            self._passes.clear()
            raise
        except Exception as error:
            # Not the model's (`_vectors` gives each query its own): every
            # search of the batch fails with it, and the next pass goes on.
            _settle(batch, [error] * len(batch))
        else:
            task = asyncio.get_running_loop().create_task(_score(batch, vectors))
            self._scoring.add(task)
            task.add_done_callback(self._scoring.discard)
        current = asyncio.current_task()
        if current is not None:
            self._passes.pop(current, None)
        self._send(embedder)

    async def _vectors(
        self, embedder: QueryEmbedder | None, batch: list[_Asked]
    ) -> list[Any | BaseException]:
        """Each query's vector. If the batch's pass fails, each query is
        embedded alone, so that one query the model cannot take fails only
        its own search; a process not up fails them all."""
        embed = self._embedding(embedder)
        try:
            return list(await embed([a.query for a in batch]))
        except ModelProcessGone:
            raise
        except Exception:
            return [await _alone(embed, a.query) for a in batch]

    def _embedding(self, embedder: QueryEmbedder | None) -> Callable[[list[str]], Awaitable[Any]]:
        if self._apart is not None:
            return self._apart.embed
        assert embedder is not None
        return threaded(embedder)


def threaded(embedder: QueryEmbedder) -> Callable[[list[str]], Awaitable[Any]]:
    """``embedder.embed`` run in a worker thread (the model loaded here)."""

    async def embed(texts: list[str]) -> Any:
        return await asyncio.to_thread(embedder.embed, texts)

    return embed


async def _score(batch: list[_Asked], vectors: list[Any]) -> None:
    """Each search of ``batch`` answered from its query's vector: its
    nearest rows, worked out in a worker thread."""
    try:
        answers = await asyncio.to_thread(_nearest, batch, vectors)
    except asyncio.CancelledError:
        _cancel(batch)
        raise
    except Exception as error:
        answers = [error] * len(batch)
    _settle(batch, answers)


def _settle(batch: list[_Asked], answers: list[list[tuple[int, float]] | BaseException]) -> None:
    for asked, answer in zip(batch, answers, strict=True):
        if asked.answer.done():
            continue
        if isinstance(answer, BaseException):
            asked.answer.set_exception(answer)
        else:
            asked.answer.set_result(answer)


def _cancel(waiting: list[_Asked]) -> None:
    for asked in waiting:
        if not asked.answer.done():
            asked.answer.cancel()


async def _alone(embed: Callable[[list[str]], Awaitable[Any]], query: str) -> Any:
    """``query``'s vector, or what embedding it raised."""
    try:
        return (await embed([query]))[0]
    except ModelProcessGone:
        raise
    except Exception as error:
        return error


def _nearest(
    batch: list[_Asked], vectors: list[Any]
) -> list[list[tuple[int, float]] | BaseException]:
    """Each query's nearest rows, given its vector (or what embedding it raised)."""
    similarities = _similarities(batch, vectors)
    return [
        v if isinstance(v, BaseException) else _best(similarities[k][a.index], a.depth)
        for k, (a, v) in enumerate(zip(batch, vectors, strict=True))
    ]


def _similarities(batch: list[_Asked], vectors: list[Any]) -> dict[int, Any]:
    """Each embedded query's similarity to every row of its matrix: one
    product per matrix (the batch's queries nearly always share one)."""
    import numpy as np

    by_matrix: dict[int, list[int]] = {}
    for k, (asked, vector) in enumerate(zip(batch, vectors, strict=True)):
        if not isinstance(vector, BaseException):
            by_matrix.setdefault(id(asked.matrix), []).append(k)
    similarities: dict[int, Any] = {}
    for ks in by_matrix.values():
        product = _product(batch[ks[0]].matrix, np.stack([vectors[k] for k in ks]).T)
        for column, k in enumerate(ks):
            similarities[k] = product[:, column]
    return similarities


def _product(matrix: Any, queries: Any) -> Any:
    """``matrix @ queries``: every tool's similarity to each query, a column
    each. For a few queries, by blocks of `ROWS_AT_ONCE` tools: one
    product of every row first copies them all into packed panels, which
    costs more than the arithmetic; where OpenBLAS has a small-matrix
    kernel (its AVX-512 builds among others: rows x queries x dimensions
    <= 10^6), a block's product reads the rows where they lie. (Where it
    has none, a block is packed as the whole is: not measured.) One
    query's is a matrix-vector product, which packs nothing."""
    import numpy as np

    if not 2 <= queries.shape[1] <= BLOCKED_QUERIES or len(matrix) <= ROWS_AT_ONCE:
        return matrix @ queries
    out = np.empty((len(matrix), queries.shape[1]), dtype=np.result_type(matrix, queries))
    for start in range(0, len(matrix), ROWS_AT_ONCE):
        end = start + ROWS_AT_ONCE
        np.matmul(matrix[start:end], queries, out=out[start:end])
    return out


def _best(similarity: Any, depth: int) -> list[tuple[int, float]]:
    """The ``depth`` highest of ``similarity``, as a stable sort of all of them
    would order them (ties: the earlier position), without sorting all."""
    import numpy as np

    if len(similarity) > depth > 0:
        cut = np.partition(-similarity, depth - 1)[depth - 1]
        # Every tie at the cut, in order; NaN (sorted last) kept when the cut is NaN.
        candidates = np.flatnonzero(~(-similarity > cut))
    else:
        candidates = np.arange(len(similarity))
    order = candidates[np.argsort(-similarity[candidates], kind="stable")][:depth]
    return [(int(i), float(similarity[i])) for i in order]
