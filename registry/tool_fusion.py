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
) -> list[tuple[str, float]]:
    """The best ``limit`` names of the two rankings (best first each), with
    their fused scores (higher is better; ties by name)."""
    if k <= 0 or semantic_weight < 0:
        raise ValueError(f"k must be > 0 and semantic_weight >= 0 (k {k}, {semantic_weight})")
    scores: dict[str, float] = {}
    for weight, ranking in ((1.0, lexical), (semantic_weight, semantic)):
        for rank, name in enumerate(ranking, start=1):
            scores[name] = scores.get(name, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]
