"""The words tool search ranks by, from a query or from a tool's text: split
where a name joins them (``crm__findContact-v2`` is crm, find, contact, v2),
lower-cased, without the words every sentence has (a stopword list), each
reduced to its stem (`registry.stemming`). The index and the query go
through the same function, so they meet on the same terms.

The stopwords are the usual English function words (Lucene's
``EnglishAnalyzer`` set and the question and auxiliary words of the
SMART list): "what time is 9am Pacific in Berlin" must match on time,
9am, pacific and berlin -- never on "what", "is" and "in", which every
description has.
"""

from __future__ import annotations

import re

from registry.stemming import stem

MAX_WORD = 64
_WORD = re.compile(r"[^\W_]+")
# lower-to-upper ("findContact") and an acronym's end ("HTTPServer").
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because
    been before being below between both but by can cannot could did do does doing
    down during each few for from further had has have having he her here hers herself
    him himself his how i if in into is it its itself just let me more most my myself
    no nor not of off on once only or other ought our ours ourselves out over own
    please same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up us very was we were what
    when where which while who whom why will with would you your yours yourself
    yourselves s t d ll m re ve don doesn didn isn wasn weren won wouldn shouldn couldn
    hasn haven hadn mustn needn shan
    e g eg ie etc via
    """.split()  # noqa: SIM905 -- a list to read, not 170 quoted strings
)


def split_words(text: str) -> list[str]:
    """``text``'s words as written, split at underscores, hyphens and case
    changes: ``crm__findContact-v2`` -> crm, find, Contact, v2."""
    return [w for part in _WORD.findall(text) for w in _CAMEL.split(part) if w]


def terms(text: str) -> list[str]:
    """``text``'s terms, in order, repeats kept (a term's frequency counts):
    lower-cased stems of its words that are not stopwords nor bare numbers."""
    out: list[str] = []
    for word in split_words(text):
        lowered = word.lower()[:MAX_WORD]
        if lowered in STOPWORDS or lowered.isdecimal():
            continue
        out.append(stem(lowered))
    return out


INITIAL = "^"  # marks a term that is a name's initials: it meets only a word written so


def initials(name: str) -> list[str]:
    """The acronyms a name's consecutive words make, two or three at a
    time, as terms: ``merge_pull_request`` -> ^mp ^pr ^mpr -- a user
    writes "PR" for a pull request, "PO" for a purchase order. Drawn from
    the name alone, so no list of abbreviations is kept."""
    words = [w.lower() for w in split_words(name) if not w.isdecimal()]
    return [
        INITIAL + "".join(w[0] for w in words[i : i + size])
        for size in (2, 3)
        for i in range(len(words) - size + 1)
    ]


def written_initials(query: str) -> list[str]:
    """The query's words that may be a name's initials, as written (two or
    three letters, not stopwords): "PR" is ^pr, but "going" is not ^go,
    as its stem would be."""
    words = (w.lower() for w in split_words(query))
    return [INITIAL + w for w in words if 2 <= len(w) <= 3 and w not in STOPWORDS]
