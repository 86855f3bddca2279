"""The classes a reading head names a screen text by: a hashed word, or its length.

The reading warm-up (``pixelpilot.train.reading``) teaches heads on the image tokens to name
the words they show in these classes, and the read guide (``pixelpilot.vlm.read_guide``) asks
the same heads where the instruction's quoted word is: both sides must class a text alike,
so the classes live here, beside the decoding that uses them, and training imports them.
"""

from __future__ import annotations

import zlib

BUCKETS = 4096  # word classes of the reading warm-up's head: a stable hash of the word
LONGEST = 15  # the length classes' longest word: longer words share its class


def bare_word(text: str) -> str:
    """A screen text without the spaces and punctuation around it (the word the classes
    and the reading bags name)."""
    return text.strip().strip(".,;:!?\"'()")


def word_class(text: str) -> int | None:
    """The warm-up's class of a screen text: its lower-cased word without the punctuation
    around it, hashed into ``BUCKETS`` (None for a text with no letter or digit)."""
    word = bare_word(text).lower()
    if not any(c.isalnum() for c in word):
        return None
    return zlib.crc32(word.encode()) % BUCKETS


def length_class(text: str) -> int | None:
    """The length warm-up's class of a screen text (round 38): its characters without the
    punctuation around it (``LONGEST`` at most), times two, plus one when it starts with a
    capital (None for a text with no letter or digit). A paragraph's words are many and each
    rare, so a hashed word class is learnt for few of them (click-link's at 0.03); what a
    word's length and first letter look like is the same for every word."""
    word = bare_word(text)
    if not any(c.isalnum() for c in word):
        return None
    return min(len(word), LONGEST) * 2 + int(word[0].isupper())
