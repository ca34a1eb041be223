"""Fusing tool search's two rankings, lexical (BM25F) and semantic
(embeddings), by reciprocal rank fusion (Cormack, Clarke and Buettcher,
SIGIR 2009): each list adds ``weight / (k + rank)`` to a tool's score.

Ranks rather than scores because a BM25F score and a cosine are on scales
that do not compare, and either's scale moves with the catalog and the
query; a rank does not.
"""

from __future__ import annotations

from collections.abc import Sequence

# Chosen on the tuning split of `bench.tool_search` by a grid over k
# (2..100) and the semantic weight (0.5..3): the best there, its neighbours
# (k 2..5, weight 1.25..1.5) within 0.012 of its recall@5; the held-out
# split was not looked at. A small k: the first few of each leg count most.
K = 5.0
SEMANTIC_WEIGHT = 1.5


def fuse(
    lexical: Sequence[str],
    semantic: Sequence[str],
    limit: int,
    *,
    k: float = K,
    semantic_weight: float = SEMANTIC_WEIGHT,
    semantic_scores: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """The best ``limit`` names of the two rankings (best first each), with
    their fused scores (higher is better; ties by name). With
    ``semantic_scores`` (each semantic name's similarity, in order), names
    of equal similarity share the better rank: tools whose texts are the
    same (one server's copies, a tool offered twice) are not ordered by
    chance on that leg, so the lexical leg -- a query that names the
    server -- decides between them."""
    if k <= 0 or semantic_weight < 0:
        raise ValueError(f"k must be > 0 and semantic_weight >= 0 (k {k}, {semantic_weight})")
    if semantic_scores is not None and len(semantic_scores) != len(semantic):
        raise ValueError("one semantic score per semantic name")
    semantic_ranks = (
        shared_ranks(semantic_scores)
        if semantic_scores is not None
        else list(range(1, len(semantic) + 1))
    )
    scores: dict[str, float] = {}
    for rank, name in enumerate(lexical, start=1):
        scores[name] = scores.get(name, 0.0) + 1.0 / (k + rank)
    for rank, name in zip(semantic_ranks, semantic, strict=True):
        scores[name] = scores.get(name, 0.0) + semantic_weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]


def shared_ranks(scores: Sequence[float]) -> list[int]:
    """Competition ranks of scores sorted best first (1, 1, 3, ...): equal
    scores share the better rank."""
    ranks: list[int] = []
    for position, score in enumerate(scores, start=1):
        tied = ranks and score == scores[position - 2]
        ranks.append(ranks[-1] if tied else position)
    return ranks
