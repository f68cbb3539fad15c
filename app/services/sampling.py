"""Sample size, allocation to strata, and the repeatable random draw (method section 2.14).

Pure functions on counts: no database, so each rule can be checked against hand-computed cases.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence
from fractions import Fraction
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
DEFAULT_MARGIN = Fraction(1, 20)  # e = 0.05
DEFAULT_MINIMUM = 30


def sample_size(population: int, margin: Fraction = DEFAULT_MARGIN) -> int:
    """Yamane's n = ceil(N / (1 + N·e²)), computed exactly (no float rounding at the ceiling)."""
    if population < 0:
        raise ValueError("the population cannot be negative")
    if not 0 < margin < 1:
        raise ValueError("the margin of error must be between 0 and 1")
    if population == 0:
        return 0
    return math.ceil(Fraction(population) / (1 + population * margin * margin))


def allocate(
    frame_sizes: Mapping[K, int], total: int, minimum: int = DEFAULT_MINIMUM
) -> dict[K, int]:
    """Split `total` across strata in proportion to their frame sizes N_h.

    Every stratum gets at least min(N_h, minimum) and at most N_h. Strata whose proportional
    share falls below their minimum are fixed at it and the rest of the total is shared again
    among the others, until nothing moves; the final integer parts use the largest
    remainder, so they sum exactly to the total (ties: larger N_h first, then key order). When
    the minimums alone exceed the total, the minimums win and the sum is larger than the total;
    when the total exceeds the frame, every stratum is taken whole.
    """
    if total < 0 or minimum < 0 or any(n < 0 for n in frame_sizes.values()):
        raise ValueError("sizes, total and minimum must not be negative")
    keys = list(frame_sizes)
    floor_of = {k: min(frame_sizes[k], minimum) for k in keys}
    if sum(floor_of.values()) >= total:
        return floor_of
    if total >= sum(frame_sizes.values()):
        return dict(frame_sizes)

    fixed: dict[K, int] = {}
    while True:
        free = [k for k in keys if k not in fixed]
        remaining = total - sum(fixed.values())
        weight = sum(frame_sizes[k] for k in free)
        share = {k: Fraction(remaining * frame_sizes[k], weight) for k in free}
        # No share can exceed its N_h: the total is below the frame, and fixing a stratum at
        # its floor only lowers what is left for the others.
        low = {k for k in free if share[k] < floor_of[k]}
        if not low:
            break
        for k in low:
            fixed[k] = floor_of[k]

    parts = {k: math.floor(share[k]) for k in free}
    left = remaining - sum(parts.values())
    order = sorted(
        free,
        key=lambda k: (-(share[k] - parts[k]), -frame_sizes[k], keys.index(k)),
    )
    for k in order[:left]:
        parts[k] += 1
    return {k: fixed.get(k, parts.get(k, 0)) for k in keys}


def draw(units: Sequence[str], size: int, seed: str) -> list[str]:
    """A simple random sample of `size` unit codes, the same for the same seed and units.

    The units are sorted first, so the order they were imported in does not matter; the
    generator is seeded from the text seed (random's SHA-512 seeding, stable across versions).
    """
    pool = sorted(set(units))
    if size >= len(pool):
        return pool
    return sorted(random.Random(seed).sample(pool, size))  # noqa: S311 - statistical, not secret


def stratum_seed(campaign_seed: str, stratum_key: str) -> str:
    """Each stratum draws from its own stream, so adding a stratum leaves the others' draws."""
    return f"{campaign_seed}/{stratum_key}"
