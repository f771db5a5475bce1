"""Packing's layout: which short clips share a 30 s window, and where each one lies in it.

On CPU the encoder is most of the cost of a short clip. So clips of one tenant that share a
language and decoding options are laid end to end, with silence between them
(``pack_gap_ms``), and the window is encoded once; each clip is then decoded on its own part of
that encoding (``PackedWindow``). The gap keeps the encoder's view of one clip's edges apart
from the next clip's sounds. Packs are filled up to ``pack_fill_s``, and the encoding of the
silence after the clips is reused.
"""


from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from asr_server.whisper.pack_attribution import PackedWindow
from asr_server.whisper.pack_clips import Clip, Clips
from asr_server.whisper.transcription import Window

STEP_S = 0.02  # one timestamp token: clips start on this grid so timestamps shift exactly


def pack_windows(windows: Sequence[Window], clips: Clips, gap_s: float, window_s: float,
                 max_packs: int | None = None, pack_s: float | None = None) -> list[Window | PackedWindow]:
    """Replace the windows of packable clips (those ``clips`` holds) by packs; other windows
    pass through.

    Clips share a pack only with clips of the same tenant, language, task and decoding options:
    the tenant is part of the grouping, not a check made after. A pack of one is
    left as the plain window it was. With ``max_packs`` (the batch size), each group's clips are
    dealt over at most that many packs, as full as the clips allow; the clips that fit in none
    are dealt again, into packs that come after all of those (the next tier). Within a tier,
    units are ordered by their oldest clip, which keeps the scheduler's oldest-first rule: the
    oldest clip always lands in the first tier."""
    gap_s = _on_grid(gap_s)
    pack_s = window_s if pack_s is None else min(pack_s, window_s)
    limit = pack_s - STEP_S
    arrival = {id(window): n for n, window in enumerate(windows)}
    groups: dict[Hashable, list[_Offer]] = {}
    units: list[tuple[tuple[int, int], Window | PackedWindow]] = []
    for window in windows:
        clip = clips.of(window.owner)
        if clip is None or not clip.packable:
            units.append(((0, arrival[id(window)]), window))
            continue
        owner = window.owner
        key = (clip.tenant, owner.language, owner.options.task, owner.generation_key)
        groups.setdefault(key, []).append((window, clip))
    for group in groups.values():
        for tier, members in _tiers(group, gap_s, limit, max_packs):
            first = (tier, min(arrival[id(w)] for w, _ in members))
            if len(members) == 1:
                units.append((first, members[0][0]))
                continue
            offsets = [0.0]
            for window, _ in members[:-1]:
                offsets.append(_next_offset(offsets[-1] + window.owner.duration, gap_s))
            units.append((first, PackedWindow([clip for _, clip in members], offsets, pack_s)))
    return [unit for _, unit in sorted(units, key=lambda pair: pair[0])]


_Offer = tuple[Window, Clip]  # a packable clip's window, with the clip

MIN_CLIP_S = 1.0  # the shortest clip a batch is held back for (see has_room)


def has_room(unit: Window | PackedWindow, clips: Clips, gap_s: float, window_s: float) -> bool:
    """Whether a unit's window could still take a clip of ``MIN_CLIP_S``, by the rule that
    ``pack_windows`` packs with. The scheduler holds back a batch with room while other uploads
    are being prepared."""
    members = [clips.of(part) for part in unit.transcriptions]
    if isinstance(unit, PackedWindow):
        end = unit.spans()[-1][1]
    elif members[0] is not None and members[0].packable:
        end = unit.owner.duration
    else:
        return False
    return _next_offset(end, _on_grid(gap_s)) + MIN_CLIP_S <= window_s - STEP_S


def _tiers(offers: list[_Offer], gap_s: float, limit: float, max_packs: int | None) -> list[tuple[int, list[_Offer]]]:
    """The packs of one group, tier by tier: each tier at most ``max_packs`` packs."""
    out: list[tuple[int, list[_Offer]]] = []
    tier = 0
    while offers:
        packs, offers = _deal(offers, gap_s, limit, max_packs)
        out.extend((tier, pack) for pack in packs)
        tier += 1
    return out


def _deal(offers: list[_Offer], gap_s: float, limit: float,
          max_packs: int | None = None) -> tuple[list[list[_Offer]], list[_Offer]]:
    """Deal clips, in arrival order, over the fewest packs their audio needs, as one deals
    cards: the n-th clip goes to pack n mod k, or to the next pack with room, or to a new one
    while there are fewer than ``max_packs``. Returns the packs and the clips left over.

    Capped at a batch's worth of packs, the packs that run now are full, and the clips left
    over wait for the next step, where new clips may join them."""
    need = sum(w.owner.duration for w, _ in offers) + gap_s * (len(offers) - 1)
    count = max(1, int(np.ceil(need / limit)))
    if max_packs is not None:
        count = min(count, max_packs)
    packs: list[list[_Offer]] = [[] for _ in range(count)]
    ends = [0.0] * len(packs)
    left: list[_Offer] = []
    for n, offer in enumerate(offers):
        duration = offer[0].owner.duration
        for step in range(len(packs)):
            i = (n + step) % len(packs)
            end = _next_offset(ends[i], gap_s) + duration if packs[i] else duration
            # An empty pack takes any clip, so that each tier places at least one.
            if not packs[i] or end <= limit:
                packs[i].append(offer)
                ends[i] = end
                break
        else:
            if max_packs is not None and len(packs) >= max_packs:
                left.append(offer)
                continue
            packs.append([offer])
            ends.append(duration)
    return [pack for pack in packs if pack], left


def _on_grid(gap_s: float) -> float:
    """A gap of whole timestamp steps, so that every clip starts on the grid."""
    return round(gap_s / STEP_S) * STEP_S


def _next_offset(end: float, gap_s: float) -> float:
    """Where the next clip starts: after the gap, rounded up to the timestamp grid."""
    steps = int(np.ceil(round((end + gap_s) / STEP_S, 6)))
    return steps * STEP_S
