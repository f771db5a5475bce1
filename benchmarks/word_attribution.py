"""Which words of a transcript came from another clip: the measure of clips kept apart.

A word of a clip's transcript is foreign when it is in another clip's reference or
alone-transcript and in neither of this clip's own, and is not within edit distance
``MISREADING_DISTANCE`` of one of this clip's own words (a misreading such as "clubs" for
"cloves"). Used by benchmarks/foreign_words.py and by tests/whisper/test_trimming.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MISREADING_DISTANCE = 2  # a word this close to one of the clip's own is a misreading, not foreign


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped; an apostrophe inside a word is kept."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def foreign_words(packed: Mapping[str, str], references: Mapping[str, str],
                  alone: Mapping[str, str]) -> dict[str, list[str]]:
    """For each clip, the words of its text that are foreign to it (see the module)."""
    own = {name: set(words(references[name])) | set(words(alone[name])) for name in references}
    out: dict[str, list[str]] = {}
    for name, text in packed.items():
        others = set().union(*(own[other] for other in own if other != name))
        found = [word for word in words(text)
                 if word in others and word not in own[name]
                 and not any(edit_distance(word, mine) <= MISREADING_DISTANCE for mine in own[name])]
        if found:
            out[name] = found
    return out
