"""A light English stemmer for tool search: the inflections a user and a
tool's text differ by (plural, past, -ing) meet on one stem, and nothing
more aggressive -- "order" must not become "ord", nor "status" "statu".

Its rules are those of the "S-stemmer" (Harman, "How effective is
suffixing?", JASIS 42(1), 1991) for plurals, then -ed/-ing removal with the
undoubling and silent-e steps of Porter's step 1b (Porter, "An algorithm for
suffix stripping", 1980), then a final silent e is dropped so that
"approve", "approved" and "approving" are one stem. It is applied to the
index and to the query alike, so only its consistency matters, not whether
a stem is a word.
"""

from __future__ import annotations

_VOWELS = frozenset("aeiouy")
_KEEP_DOUBLE = frozenset("lsz")  # "fall", "pass", "buzz": a double that belongs to the word
_MIN_STEM = 3


def stem(word: str) -> str:
    """``word`` (lower case, letters or digits) reduced to its stem."""
    if len(word) <= _MIN_STEM or not word.isalpha():
        return word
    word = _plural(word)
    word = _past_or_progressive(word)
    if word.endswith("e") and len(word) > _MIN_STEM and not word.endswith("ee"):
        word = word[:-1]
    return word


def _plural(word: str) -> str:
    # Harman's S-stemmer: -ies -> -y, -es -> -e, -s -> (nothing), except
    # after a vowel or s ("bus", "class", "this" are not plurals).
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("sses") or word.endswith(("xes", "zes", "ches", "shes")):
        return word[:-2]
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss", "is", "os")):
        return word[:-1]
    return word


def _past_or_progressive(word: str) -> str:
    for suffix in ("ied", "ing", "ed"):
        if not word.endswith(suffix):
            continue
        base = word[: -len(suffix)]
        if suffix == "ied":
            return base + "y" if len(base) >= 2 else word
        # Porter 1b: only when what is left still holds a vowel ("sing",
        # "red" are words, not inflections) and is long enough to mean
        # something on its own.
        if len(base) < _MIN_STEM or not _VOWELS.intersection(base[:-1] or base):
            return word
        if len(base) >= 2 and base[-1] == base[-2] and base[-1] not in _VOWELS | _KEEP_DOUBLE:
            return base[:-1]  # "shipping" -> "ship", "planned" -> "plan"
        return base
    return word
