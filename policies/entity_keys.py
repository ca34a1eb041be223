"""The one form in which a business entity's key is compared.

A coordination rule keeps a customer or an order apart from other calls only
if every spelling of that key is the same key. Callers (and the agents that
build their inputs) spell one customer many ways: `CU-ABC123`, `cu-abc123`,
` CU-ABC123`, the fullwidth form an IME types (U+FF23 U+FF35 ...), or the same text with
a zero-width space pasted in. Compared as written, each would dodge a hold on
the others. So every key is put in one canonical form before it is compared
or stored:

1. Unicode NFKC (UAX #15): compatibility characters become their plain form
   (fullwidth letters and digits, ligatures, superscripts).
2. Format characters (general category Cf: zero-width space and joiners, the
   byte order mark, bidirectional controls, soft hyphen) are removed. They
   are invisible, so two keys that differ only in them look the same to a
   person; removing them (rather than refusing the call) also means a key
   pasted with one still finds its hold.
3. Case folded (Unicode full case folding, `str.casefold`: `ß` is `ss`),
   unless the entity is declared `case: sensitive`, then NFKC again, as the
   Unicode standard's NFKC_Casefold does (folding can undo normalisation).
4. Whitespace around the key stripped (inside it is kept: `A B` is not `AB`).

Control characters, an empty result and over-long keys are refused by the
caller of this function (`policies.coordination`), after canonicalising, so
that a key made only of format characters is refused as empty.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

Case = Literal["insensitive", "sensitive"]


def canonical_key(raw: str, case: Case = "insensitive") -> str:
    """``raw`` in the form every comparison of an entity key uses; the same
    form again when given its own result (removing a format character can
    bring a letter and its combining mark together, which NFKC then
    composes: the steps repeat until nothing changes)."""
    text = raw
    for _ in range(_MAX_ROUNDS):
        again = _once(text, case)
        if again == text:
            break
        text = again
    return text


_MAX_ROUNDS = 8  # in practice two: a fixed point is reached at once or after one more


def _once(text: str, case: Case) -> str:
    text = unicodedata.normalize("NFKC", _without_format_characters(text))
    if case == "insensitive":
        text = unicodedata.normalize("NFKC", text.casefold())
    return _without_format_characters(text).strip()


def _without_format_characters(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c) != "Cf")
