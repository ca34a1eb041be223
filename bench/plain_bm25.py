"""The baseline tool search must beat: a plain BM25 (Okapi, k1 1.2, b 0.75,
Lucene's IDF) over each tool's name and description as one text, words
lower-cased and split at anything not a letter or digit, with the same
stopword list as the gateway's -- no stemming, no fields, no parameters.
What anyone would write in 40 lines."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from registry.search_words import STOPWORDS

_WORD = re.compile(r"[a-z0-9]+")
K1, B = 1.2, 0.75


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class PlainBM25:
    def __init__(self, tools: Sequence[dict[str, Any]]) -> None:
        self._docs = {
            t["name"]: Counter(_words(f"{t['name']} {t.get('description') or ''}")) for t in tools
        }
        self._lengths = {name: sum(c.values()) for name, c in self._docs.items()}
        self._avg = sum(self._lengths.values()) / max(len(self._docs), 1)
        df: Counter[str] = Counter()
        for counts in self._docs.values():
            df.update(counts.keys())
        n = len(self._docs)
        self._idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}

    def rank(self, query: str, limit: int) -> list[str]:
        words = set(_words(query))
        scores: dict[str, float] = {}
        for name, counts in self._docs.items():
            norm = K1 * (1 - B + B * self._lengths[name] / self._avg)
            score = sum(
                self._idf[w] * counts[w] * (K1 + 1) / (counts[w] + norm) for w in words if counts[w]
            )
            if score > 0:
                scores[name] = score
        return sorted(scores, key=lambda name: (-scores[name], name))[:limit]
