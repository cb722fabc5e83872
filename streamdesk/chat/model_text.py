"""Model text made safe to show, save and send on, piece by piece as it arrives.

Model text is hostile input. JSON may carry any UTF-16 code unit as an escape, so a piece can
hold U+0000 (PostgreSQL refuses it in text: the reply's saves then fail) or a lone surrogate
(no encoding takes it: the reply cannot be saved or sent). A character outside the BMP can
also reach us split in two: the high surrogate ending one delta, the low one starting the
next. ``PieceCleaner`` joins such a pair again, holding a trailing high surrogate back until
the next piece, and replaces every NUL and every unpaired surrogate with U+FFFD, the
replacement character. What was shown is what is saved: the relay publishes cleaned pieces.
"""
from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
# What no database keeps (PostgreSQL refuses NUL in text) and no encoding writes (a surrogate
# that pairs with nothing). The web layer refuses it in requests (web/validation.py).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with NUL and surrogates that do not pair replaced (for whole strings, such as an
    upstream's error message)."""
    if not UNSTORABLE.search(text):
        return text
    # Through UTF-16: a valid pair becomes its character, a lone surrogate U+FFFD.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace("\x00", REPLACEMENT)


class PieceCleaner:
    """One per field of a reply (text, reasoning): a pair cannot straddle two fields."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = ""  # a high surrogate that ended the last piece

    def clean(self, piece: str) -> str:
        """The piece as it may be shown; "" while all it holds is half a pair. On the
        per-chunk path: one regular-expression search for ordinary text."""
        if self._held:
            piece, self._held = self._held + piece, ""
        elif not UNSTORABLE.search(piece):
            return piece
        if "\ud800" <= piece[-1] <= "\udbff":
            piece, self._held = piece[:-1], piece[-1]
        return storable(piece)
