"""Grouping speaker embeddings into voices: scipy's agglomerative clustering on cosine distance.

Average linkage, cut at a distance threshold when the number of speakers is unknown, or at the
number of clusters a hint gives (``num_speakers``, or the threshold's count moved into
``min_speakers``..``max_speakers``). Labels are then renumbered by first appearance, so that
the first voice heard is 0 within a recording whatever order the clustering found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Cosine distance at which two groups of windows are taken for two voices (average linkage),
# tuned on benchmarks/diarization.py's conversations (docs/decisions.md).
THRESHOLD = 0.35
MAX_SPEAKERS = 20  # the largest hint a task may give


@dataclass(frozen=True)
class Hints:
    """What a task says of its speakers; all None: unknown."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    def bounds(self) -> tuple[int, int]:
        if self.num_speakers is not None:
            return self.num_speakers, self.num_speakers
        return self.min_speakers or 1, self.max_speakers or MAX_SPEAKERS


def first_seen_order(labels: np.ndarray) -> np.ndarray:
    """``labels`` renumbered 0, 1, ... in the order each first occurs."""
    mapping: dict[int, int] = {}
    for label in labels.tolist():
        mapping.setdefault(label, len(mapping))
    return np.array([mapping[label] for label in labels.tolist()], dtype=int)


def cluster(embeddings: np.ndarray, hints: Hints | None = None, threshold: float = THRESHOLD) -> np.ndarray:
    """One speaker index per embedding (rows in time order), the first heard 0."""
    count = len(embeddings)
    if count == 0:
        return np.zeros(0, dtype=int)
    low, high = (hints or Hints()).bounds()
    high = min(high, count)
    if count == 1 or high <= 1:
        return np.zeros(count, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage  # the diarize extra's

    tree = linkage(embeddings, method="average", metric="cosine")
    labels = fcluster(tree, t=threshold, criterion="distance")
    found = len(set(labels.tolist()))
    if not low <= found <= high:
        labels = fcluster(tree, t=min(max(found, low), high), criterion="maxclust")
    return first_seen_order(labels)
