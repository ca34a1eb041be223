"""Tool search's semantic leg: each tool's text embedded once, when it is
indexed, and a query's embedding compared with those of the caller's tools.

Loaded lazily: nothing is imported or read until the first search asks
(`ranking`), and then in a worker thread; until the model is loaded, and
for any tool not embedded yet, search is lexical only. A gateway that never
searches never loads it. Without the extra ``switchboard[semantic]`` it
stays off for good (said once in the log).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from registry.model_process import EmbeddingFailed, ModelProcess, ModelProcessGone
from registry.query_batches import QueryBatches, threaded
from registry.tool_embedder import Embedder, SemanticUnavailable, one_blas_thread

logger = logging.getLogger(__name__)

EMBEDDED_AT_ONCE = 64  # tools per worker-thread turn: a removal is seen between turns
# Tools per pass in the model's process: a search waits for at most the pass
# under way there (~0.1 s for 16 tools' texts).
EMBEDDED_AT_ONCE_APART = 16
# Of a tool's text, what is sent to be embedded: more than the model reads
# of any ordinary text (its first 128 tokens: ~600 characters of English),
# and a chunk then fits the pipe's buffer however long the descriptions.
TEXT_CHARS = 2_000
ROWS_KEPT = 16  # distinct sets of names whose rows are kept (callers with the same tools share one)
# A caller's embedded tools, and their rows in the matrix of every vector.
_Rows = tuple[list[str], Any]


class SemanticLeg:
    def __init__(
        self, load: Callable[[], Embedder] = Embedder.load, apart: ModelProcess | None = None
    ) -> None:
        """The model in a process of its own (``apart``), or loaded here by
        ``load`` and run in worker threads."""
        one_blas_thread()  # this process's products of vectors too
        self._load = load
        self._apart = apart
        self._embedder: Embedder | None = None
        self._texts: dict[str, str] = {}  # what each tool is to be embedded from
        self._vectors: dict[str, Any] = {}  # name -> unit vector, for the current text
        # Texts the model failed on (logged): those tools stay lexical-only
        # rather than holding every caller who has them to lexical search.
        self._failed: set[str] = set()
        self._work: asyncio.Task[None] | None = None
        self.unavailable = False
        # Every vector as one matrix, rebuilt when a vector changed (`_version`),
        # and which of its rows a caller's tools are, kept per set of names
        # (a caller's names are one object while its listing stands): a
        # search of 10,000 tools then gathers no vectors one by one.
        self._version = 0
        self._matrix: tuple[int, Any, dict[str, int]] | None = None
        self._rows_of: dict[int, tuple[Collection[str], int, _Rows | None]] = {}
        self._queries = QueryBatches(apart)

    def close(self) -> None:
        """Stops the model's process, if any."""
        if self._apart is not None:
            self._apart.close()

    def put(self, name: str, text: str) -> None:
        if self._texts.get(name) != text:
            self._texts[name] = text
            self._vectors.pop(name, None)
            self._failed.discard(name)
            self._version += 1

    def remove(self, name: str) -> None:
        self._texts.pop(name, None)
        self._vectors.pop(name, None)
        self._failed.discard(name)
        self._version += 1

    @property
    def pending(self) -> int:
        return len(self._texts) - len(self._vectors) - len(self._failed)

    @property
    def loaded(self) -> bool:
        return self._apart.up if self._apart is not None else self._embedder is not None

    def start(self) -> None:
        """Load the model and embed what is not yet, in the background,
        unless that is under way (or the extra is missing)."""
        if self.unavailable or (self._work is not None and not self._work.done()):
            return
        if self.loaded and not self.pending:
            return
        self._work = asyncio.get_running_loop().create_task(self._catch_up())

    async def settled(self) -> bool:
        """Wait until every tool is embedded (or the leg is off, or its
        process rests after it died): whether it is on."""
        while not self.unavailable and (not self.loaded or self.pending):
            self.start()
            if self._work is not None:
                await asyncio.shield(self._work)
            if not self.loaded:
                break
        return not self.unavailable and self.loaded

    async def ranking(self, query: str, among: Iterable[str], depth: int) -> list[str] | None:
        """The ``depth`` tools of ``among`` nearest ``query``, best first;
        None while the model is not loaded or any of ``among`` is still to
        be embedded (the search is lexical)."""
        scored = await self.scored(query, among, depth)
        return None if scored is None else [name for name, _ in scored]

    async def scored(
        self, query: str, among: Iterable[str], depth: int
    ) -> list[tuple[str, float]] | None:
        """As `ranking`, each with its cosine similarity to ``query``."""
        self.start()
        if not self.loaded:
            return None
        rows = self._rows(among)
        if rows is None:
            # One of them is still to be embedded (a server just registered):
            # it would lose to every embedded tool the fusion gives a
            # semantic rank, so until all of the caller's are, theirs is lexical.
            return None
        names, index = rows
        if not names:
            return []
        matrix = self._all_vectors()  # the one ``index`` is of, whatever is embedded meanwhile
        try:
            nearest = await self._queries.nearest(self._embedder, query, matrix, index, depth)
        except ModelProcessGone:
            return None  # lexical until it is back
        except EmbeddingFailed as error:
            logger.warning("tool search: the model failed on a query (lexical): %s", error)
            return None
        return [(names[i], similarity) for i, similarity in nearest]

    def _rows(self, among: Iterable[str]) -> _Rows | None:
        """``among``'s embedded tools and their rows in `_all_vectors`, or
        None while one of them is still to be embedded; kept per ``among``
        (by identity) until a vector changes."""
        kept = self._rows_of.get(id(among))
        if kept is not None and kept[0] is among and kept[1] == self._version:
            return kept[2]
        rows = self._find_rows(among)
        if isinstance(among, (set, frozenset)):  # an iterator is not kept (nor reusable)
            self._rows_of[id(among)] = (among, self._version, rows)
            while len(self._rows_of) > ROWS_KEPT:
                del self._rows_of[next(iter(self._rows_of))]
        return rows

    def _find_rows(self, among: Iterable[str]) -> _Rows | None:
        import numpy as np

        names: list[str] = []
        for name in among:
            if name in self._vectors:
                names.append(name)
            elif name in self._texts and name not in self._failed:
                return None  # before the matrix: it is not rebuilt for a lexical search
        self._all_vectors()  # the row numbers below are this version's
        assert self._matrix is not None
        row_of = self._matrix[2]
        return names, np.fromiter((row_of[n] for n in names), dtype=np.intp, count=len(names))

    def _all_vectors(self) -> Any:
        """Every vector, one row each (rebuilt once per change)."""
        import numpy as np

        if self._matrix is None or self._matrix[0] != self._version:
            names = list(self._vectors)
            matrix = (
                np.stack([self._vectors[n] for n in names])
                if names
                else np.zeros((0, 1), dtype=np.float32)
            )
            self._matrix = (self._version, matrix, {n: i for i, n in enumerate(names)})
        return self._matrix[1]

    async def _catch_up(self) -> None:
        embed = await self._embedding()
        if embed is None:
            return
        at_once = EMBEDDED_AT_ONCE if self._apart is None else EMBEDDED_AT_ONCE_APART
        # What is to embed, listed once a round (listed again per chunk, the
        # loop would walk all 10,000 texts for each 16); each chunk is what
        # of its part is still to embed, and a tool put meanwhile waits for
        # the next round.
        while todo := self._to_embed(self._texts.items()):
            for start in range(0, len(todo), at_once):
                chunk = self._to_embed(todo[start : start + at_once])
                if not chunk:
                    continue
                try:
                    rows = await embed([t[:TEXT_CHARS] for _, t in chunk])
                    embedded = list(zip(chunk, rows, strict=True))
                except ModelProcessGone:
                    return  # the rest when it is back (a search starts it again)
                except Exception:
                    # Not tried again until the tool's text changes: a search
                    # would otherwise start the same failing turn every time.
                    logger.exception(
                        "tool search: %d tools not embedded (lexical only)", len(chunk)
                    )
                    self._failed.update(name for name, _ in chunk)
                    self._version += 1
                    continue
                for (name, text), row in embedded:
                    if self._texts.get(name) == text:  # not changed or removed meanwhile
                        self._vectors[name] = row
                self._version += 1

    def _to_embed(self, texts: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Those of ``texts`` that are a tool's text now, not yet embedded
        and not failed."""
        return [
            (n, t)
            for n, t in texts
            if n not in self._vectors and n not in self._failed and self._texts.get(n) == t
        ]

    async def _embedding(self) -> Callable[[list[str]], Awaitable[Any]] | None:
        """How tools' texts are embedded, once the model is loaded; None
        while it cannot be (for good: `unavailable`)."""
        apart = self._apart
        if apart is not None:
            if not await apart.started():
                self.unavailable = apart.unavailable is not None
                return None
            return functools.partial(apart.embed, query=False)
        try:
            if self._embedder is None:
                self._embedder = await asyncio.to_thread(self._load)
        except SemanticUnavailable as error:
            self.unavailable = True
            logger.info("tool search is lexical only: %s", error)
            return None
        return threaded(self._embedder)
