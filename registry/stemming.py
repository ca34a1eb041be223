"""The Porter stemmer (M. F. Porter, "An algorithm for suffix stripping",
Program 14(3), 1980; the reference at https://tartarus.org/martin/PorterStemmer/),
as SQLite FTS5's ``porter`` tokenizer had it for tool search: "approve",
"approved" and "approval" meet on "approv". One change: step 1c (a final
y after a vowel becomes i) is applied again at the end, so that "deploys"
and "deployment" meet on "deploi" as Porter's own steps would not (step 4
strips "ment" after 1c ran). It is applied to the index and to the query alike, so
only its consistency matters, not whether a stem is a word.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

_MIN_LENGTH = 3  # Porter leaves words of one or two letters alone; so do we up to three


def _consonant(word: str, i: int) -> bool:
    letter = word[i]
    if letter in "aeiou":
        return False
    if letter == "y":
        return i == 0 or not _consonant(word, i - 1)
    return True


def _measure(stem: str) -> int:
    """m in [C](VC)^m[V]: how many vowel-consonant sequences ``stem`` has."""
    m, vowel_seen = 0, False
    for i in range(len(stem)):
        if _consonant(stem, i):
            if vowel_seen:
                m += 1
            vowel_seen = False
        else:
            vowel_seen = True
    return m


def _has_vowel(stem: str) -> bool:
    return any(not _consonant(stem, i) for i in range(len(stem)))


def _double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _consonant(word, len(word) - 1)


def _cvc(word: str) -> bool:
    """Ends consonant-vowel-consonant, the last not w, x or y ("hop", not "snow")."""
    if len(word) < 3:
        return False
    n = len(word)
    return (
        _consonant(word, n - 3)
        and not _consonant(word, n - 2)
        and _consonant(word, n - 1)
        and word[-1] not in "wxy"
    )


def _replace(word: str, rules: tuple[tuple[str, str], ...], m_min: int) -> str:
    """The first rule whose suffix ``word`` ends with, applied when what is
    left measures more than ``m_min`` (the first match decides either way)."""
    for suffix, replacement in rules:
        if word.endswith(suffix):
            stem = word[: -len(suffix)]
            return stem + replacement if _measure(stem) > m_min else word
    return word


def _step1a(word: str) -> str:
    if word.endswith("sses") or word.endswith("ies"):
        return word[:-2]
    if word.endswith("ss"):
        return word
    if word.endswith("s"):
        return word[:-1]
    return word


def _step1b(word: str) -> str:
    if word.endswith("eed"):
        return word[:-1] if _measure(word[:-3]) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            word = word[: -len(suffix)]
            if word.endswith(("at", "bl", "iz")):
                return word + "e"
            if _double_consonant(word) and word[-1] not in "lsz":
                return word[:-1]
            if _measure(word) == 1 and _cvc(word):
                return word + "e"
            return word
    return word


def _step1c(word: str) -> str:
    if word.endswith("y") and _has_vowel(word[:-1]):
        return word[:-1] + "i"
    return word


_STEP2 = (
    ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"),
    ("izer", "ize"), ("abli", "able"), ("alli", "al"), ("entli", "ent"), ("eli", "e"),
    ("ousli", "ous"), ("ization", "ize"), ("ation", "ate"), ("ator", "ate"),
    ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"),
    ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"),
)  # fmt: skip
_STEP3 = (
    ("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"),
    ("ful", ""), ("ness", ""),
)  # fmt: skip
_STEP4 = (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent",
    "ion", "ou", "ism", "ate", "iti", "ous", "ive", "ize",
)  # fmt: skip


def _step4(word: str) -> str:
    # Longest suffix first: "ement" before "ment" before "ent".
    for suffix in sorted(_STEP4, key=len, reverse=True):
        if word.endswith(suffix):
            stem = word[: -len(suffix)]
            if suffix == "ion" and not stem.endswith(("s", "t")):
                return word
            return stem if _measure(stem) > 1 else word
    return word


def _step5(word: str) -> str:
    if word.endswith("e"):
        stem = word[:-1]
        m = _measure(stem)
        if m > 1 or (m == 1 and not _cvc(stem)):
            word = stem
    if word.endswith("ll") and _measure(word) > 1:
        word = word[:-1]
    return word


_STEPS: tuple[Callable[[str], str], ...] = (
    _step1a,
    _step1b,
    _step1c,
    lambda w: _replace(w, _STEP2, 0),
    lambda w: _replace(w, _STEP3, 0),
    _step4,
    _step5,
    _step1c,
)


@functools.lru_cache(maxsize=1 << 16)  # a catalog's vocabulary: each word stemmed once
def stem(word: str) -> str:
    """``word`` (lower case) reduced to its Porter stem; a word with a digit
    or of three letters or fewer as it is."""
    if len(word) <= _MIN_LENGTH or not word.isascii() or not word.isalpha():
        return word
    for step in _STEPS:
        word = step(word)
    return word
