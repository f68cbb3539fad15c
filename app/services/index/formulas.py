"""The SIPAS formulas (docs/sipas-method.md, section 2) applied to counts.

Pure functions: no database, no I/O. The SQL layer aggregates the submissions that count into
per-cell, per-item counts (`ItemCounts`, and `PairCounts` for intervals of composites) and calls
these functions; Python only applies the formulas to the counts.

Conventions

- Indices are percentages in [0, 100], kept at full (float) precision. Rounding happens only in
  `display` (section 2.7); no composite is ever built from displayed values.
- A count is a float so that weighted counts (section 2.9, `w = N_h / n_h`) go through the same
  code as plain ones. "No answer" is not a valid answer: it is simply not counted in `n_valid`.
- A cell without valid answers has a **null** index (None), never 0 (section 2.1).
- `by_level` maps `str(code)` of each answer code (``"4"``, ``"rat_nhieu"``) to its count.

Documented choices

- **Null parts of a composite** (`weighted_mean`, `overall_index`, `pillar_index`): by default
  (`missing="null"`) a composite with a null part is null, because a mean over fewer parts is a
  different quantity from the one published for the other cells. `missing="renormalise"` takes
  the weighted mean over the parts present (the weights re-normalised over them), null only when
  every part is null. The element level is the exception fixed by the method (2.2): an element
  is the mean of its *non-null* criteria.
- **Ties in a ranking** (`rank`, method 2.12): units are ranked on the value as published
  (rounded half up to 2 decimals), so two values tie when their displayed values coincide:
  83.866 and 83.874 both display 83.87 and share a rank, and a reader never sees two equal
  figures with different ranks.
- **One z** (`Z95` = 1.959964, the 97.5% normal quantile as the method writes it) for every
  interval, Wilson's and the composites' alike; never a rounded 1.96.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, Generic, Literal, TypeVar

from app.services.instrument import (
    DEFAULT_BANDS,
    Code,
    ElementRule,
    GradeBand,
    Questionnaire,
    Thresholds,
    criteria_of,
)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Missing = Literal["null", "renormalise"]
Interval = tuple[float, float]
Combine = Callable[[Mapping[str, V], Mapping[str, float], Missing], V]
"""A weighted combination of parts: (part values, part weights, `missing`) → the whole."""

Z95: Final = 1.959964
"""The 97.5% quantile of the standard normal distribution as the method fixes it (2.10): the
one multiplier of every 95% interval, Wilson's included."""
_COUNT_TOLERANCE: Final = 1e-9


# ---- counts ------------------------------------------------------------------------------------


def _at_most(part: float, whole: float) -> bool:
    """part <= whole, allowing float noise in weighted sums."""
    return part <= whole + _COUNT_TOLERANCE * max(1.0, abs(whole))


@dataclass(frozen=True, slots=True)
class ItemCounts:
    """The counts of one item in one reporting cell.

    `n_valid` = N_i (valid answers; no answer excluded), `n_positive` = S_i (answers in the
    item's positive set; for satisfaction5 the answers 4 and 5), `by_level` = count per answer
    code, keyed by `str(code)`. For a multiple-choice item `n_valid` is the number of respondents
    who answered the item and `by_level` the number who chose each option (may sum past n_valid).
    """

    n_valid: float
    n_positive: float = 0.0
    by_level: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = [self.n_valid, self.n_positive, *self.by_level.values()]
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError("counts must be finite and not negative")
        if not _at_most(self.n_positive, self.n_valid):
            raise ValueError("more positive answers than valid answers")
        if any(not _at_most(v, self.n_valid) for v in self.by_level.values()):
            raise ValueError("an answer level counts more than the valid answers")


@dataclass(frozen=True, slots=True)
class PairCounts:
    """Counts of two items i, j over the respondents who gave a valid answer to both (2.10).

    `n_both` = n_ij, `both_positive` = n_ij^11, `first_positive` = n_ij^1· (positive on i),
    `second_positive` = n_ij^·1 (positive on j). For weighted data each is a sum of w_r² (not
    w_r), because the linearised variance sums squared weighted scores.
    """

    n_both: float
    both_positive: float
    first_positive: float
    second_positive: float

    def swapped(self) -> PairCounts:
        """The same counts seen as the pair (j, i)."""
        return PairCounts(
            self.n_both, self.both_positive, self.second_positive, self.first_positive
        )


def pooled(cells: Iterable[ItemCounts]) -> ItemCounts:
    """Section 2.8, `pooled`: the counts of several cells summed, to recompute any formula over
    all their respondents (and the merged baseline of 2.13)."""
    n_valid = 0.0
    n_positive = 0.0
    by_level: dict[str, float] = {}
    for cell in cells:
        n_valid += cell.n_valid
        n_positive += cell.n_positive
        for level, count in cell.by_level.items():
            by_level[level] = by_level.get(level, 0.0) + count
    return ItemCounts(n_valid, n_positive, by_level)


# ---- weights (2.9) -----------------------------------------------------------------------------


def stratum_weight(frame_size: float, responses: float) -> float:
    """Section 2.9: `w = N_h / n_h` (N_h dossiers in the frame, n_h valid responses)."""
    if frame_size < 0 or responses <= 0:
        raise ValueError("a stratum weight needs N_h >= 0 and n_h > 0")
    return frame_size / responses


def weighted(strata: Mapping[K, ItemCounts], weights: Mapping[K, float]) -> ItemCounts:
    """Section 2.9: every count becomes Σ_h w_h · count_h (one weight per stratum)."""
    missing = [h for h in strata if h not in weights]
    if missing:
        raise ValueError(f"no weight for strata {missing!r}")
    return pooled(
        ItemCounts(
            c.n_valid * weights[h],
            c.n_positive * weights[h],
            {level: v * weights[h] for level, v in c.by_level.items()},
        )
        for h, c in strata.items()
    )


# ---- proportions (2.1, 2.4, 2.5, 2.10) ---------------------------------------------------------


def share(part: float, whole: float) -> float | None:
    """100 · part / whole; None when whole is 0 (an empty cell is null, never 0)."""
    if whole < 0 or part < 0 or not _at_most(part, whole):
        raise ValueError(f"not a share: {part} of {whole}")
    if whole == 0:
        return None
    return 100.0 * part / whole


def criterion_index(counts: ItemCounts) -> float | None:
    """Section 2.1: `CI_i = 100 · S_i / N_i`; `N_i = 0` gives None. Full precision."""
    return share(counts.n_positive, counts.n_valid)


def effective_n(sum_w: float, sum_w2: float) -> float | None:
    """Kish's effective sample size `(Σ w)² / Σ w²` of weighted answers; equals n unweighted.
    For item i the SQL layer has both: `n_valid` and the diagonal pair count `n_both` (Σ w²)."""
    if sum_w < 0 or sum_w2 < 0:
        raise ValueError("sums of weights must not be negative")
    return sum_w * sum_w / sum_w2 if sum_w2 > 0 else None


def wilson_interval(
    positive: float, n: float, z: float = Z95, n_effective: float | None = None
) -> Interval | None:
    """Section 2.10: the Wilson score interval of p = S/n, in percent; None when n = 0.

    centre = (p + z²/2m) / (1 + z²/m), half-width = z / (1 + z²/m) · sqrt(p(1−p)/m + z²/4m²),
    with m = n. With weighted counts (2.9) the weighted n is the frame size, not the number of
    answers, and would give a far too narrow interval: pass `n_effective` (see `effective_n`)
    and it is used as m, while p stays the weighted S/n.
    """
    if n < 0 or positive < 0 or not _at_most(positive, n):
        raise ValueError(f"not a proportion: {positive} of {n}")
    if n == 0:
        return None
    p = min(positive / n, 1.0)
    if n_effective is not None:
        if n_effective <= 0:
            raise ValueError("the effective sample size must be positive")
        n = n_effective
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    return (max(0.0, 100.0 * (centre - half)), min(100.0, 100.0 * (centre + half)))


def perception_index(
    counts: ItemCounts, positive_set: Collection[Code] | None = None
) -> float | None:
    """Section 2.4: `PI_j = 100 · (answers in the positive set) / valid answers`.

    With `positive_set`, the positive answers are summed from `by_level` (keys `str(code)`);
    without it, `counts.n_positive` is used. A choice item with no positive set is reported with
    `option_shares` instead.
    """
    if positive_set is None:
        return share(counts.n_positive, counts.n_valid)
    positive = math.fsum(counts.by_level.get(str(code), 0.0) for code in set(positive_set))
    return share(positive, counts.n_valid)


def option_shares(counts: ItemCounts) -> dict[str, float] | None:
    """Sections 2.4 and 2.5: the share of each option, `100 · count(option) / n_valid`.

    For a single-choice item the shares sum to 100. For a multiple-choice expectation item,
    `n_valid` is the number of respondents who answered the item, so the shares may sum past 100.
    None when nobody answered.
    """
    if counts.n_valid == 0:
        return None
    return {level: 100.0 * count / counts.n_valid for level, count in counts.by_level.items()}


def expectation_index(
    counts: ItemCounts, positive_set: Collection[Code] = ("rat_nhieu",)
) -> float | None:
    """Section 2.5, intensity scale: the share choosing a level of the positive set (default
    "rất nhiều"). Multiple-choice expectation items use `option_shares`."""
    return perception_index(counts, positive_set)


# ---- composites (2.2, 2.3) ---------------------------------------------------------------------


def weighted_mean(
    values: Mapping[str, float | None],
    weights: Mapping[str, float],
    missing: Missing = "null",
) -> float | None:
    """`Σ_k w_k · v_k / Σ_k w_k` over the parts named by `weights`.

    A part absent from `values` is null; a value without a weight is an error; parts of weight 0
    play no role. `missing="null"` (default): any null part makes the result null.
    `missing="renormalise"`: the mean over the non-null parts, weights re-normalised over them;
    null when every part is null.
    """
    extra = [k for k in values if k not in weights]
    if extra:
        raise ValueError(f"no weight for {extra!r}")
    if any(not math.isfinite(w) or w < 0 for w in weights.values()):
        raise ValueError("weights must be finite and not negative")
    parts = [(w, values.get(k)) for k, w in weights.items() if w > 0]
    if not parts:
        return None
    present = [(w, v) for w, v in parts if v is not None]
    if not present or (missing == "null" and len(present) < len(parts)):
        return None
    total = math.fsum(w for w, _ in present)
    return math.fsum(w * v for w, v in present) / total


def element_index(
    criteria: Sequence[float | None],
    rule: ElementRule = ElementRule.mean_of_criteria,
    designated: float | None = None,
) -> float | None:
    """Section 2.2: `E_k` = the mean of the non-null criterion indices of element k (default),
    or, under the `designated_item` rule, the index of the designated item. All null → None."""
    if rule is ElementRule.designated_item:
        return designated
    present = [v for v in criteria if v is not None]
    if not present:
        return None
    return math.fsum(present) / len(present)


def overall_index(
    values: Mapping[str, float | None],
    weights: Mapping[str, float],
    missing: Missing = "null",
) -> float | None:
    """Section 2.3: the overall index is the weighted mean of the element indices (sipas-2017:
    5 elements, equal weights) or of the pillar indices (sipas-2023: `0.5·P + 0.5·S`).
    See `weighted_mean` for `missing`."""
    return weighted_mean(values, weights, missing)


def pillar_index(
    elements: Mapping[str, float | None],
    weights: Mapping[str, float],
    missing: Missing = "null",
) -> float | None:
    """Section 2.3 (sipas-2023): a pillar is the weighted mean of its groups/elements."""
    return weighted_mean(elements, weights, missing)


@dataclass(frozen=True, slots=True)
class ElementSpec:
    id: str
    weight: float
    criteria: tuple[str, ...]
    rule: ElementRule = ElementRule.mean_of_criteria
    designated: str | None = None


@dataclass(frozen=True, slots=True)
class PillarSpec:
    id: str
    weight: float
    elements: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Structure:
    """Item → element → pillar → overall, with the weights. No pillars: overall over elements;
    with pillars, element weights are within their pillar."""

    elements: tuple[ElementSpec, ...]
    pillars: tuple[PillarSpec, ...] = ()

    @classmethod
    def from_questionnaire(cls, q: Questionnaire) -> Structure:
        if q.index is None:
            raise ValueError(f"questionnaire {q.code!r} has no index rules")
        elements = tuple(
            ElementSpec(
                id=e.id,
                weight=e.weight,
                criteria=tuple(item.id for item in criteria_of(q, e.id)),
                rule=e.rule,
                designated=e.designated_item,
            )
            for e in q.elements
        )
        pillars = (
            tuple(PillarSpec(p.id, p.weight, tuple(p.elements)) for p in q.pillars)
            if q.index.overall == "pillars"
            else ()
        )
        return cls(elements, pillars)

    def element(self, element_id: str) -> ElementSpec:
        for e in self.elements:
            if e.id == element_id:
                return e
        raise KeyError(element_id)

    def roll_up(
        self, elements: Mapping[str, V], pillar: Combine[V], overall: Combine[V], missing: Missing
    ) -> tuple[dict[str, V], V]:
        """The pillars and the overall from per-element values, by the structure's weights:
        each pillar combines its elements (`pillar`) and the overall combines the pillars
        (`overall`); without pillars, the overall combines the elements. `compute_indices` and
        `coefficients` both climb the structure through here, so they cannot drift apart."""
        if not self.pillars:
            return {}, overall(elements, {e.id: e.weight for e in self.elements}, missing)
        pillars = {
            p.id: pillar(
                {k: elements[k] for k in p.elements},
                {k: self.element(k).weight for k in p.elements},
                missing,
            )
            for p in self.pillars
        }
        return pillars, overall(pillars, {p.id: p.weight for p in self.pillars}, missing)


@dataclass(frozen=True, slots=True)
class Indices:
    """Full-precision indices of one cell (None = null)."""

    criteria: dict[str, float | None]
    elements: dict[str, float | None]
    pillars: dict[str, float | None]
    overall: float | None


def compute_indices(
    structure: Structure,
    criteria: Mapping[str, ItemCounts],
    missing: Missing = "null",
) -> Indices:
    """Sections 2.1–2.3 for one cell: criterion, element, pillar and overall indices, each
    computed from the full-precision values of the level below (never from rounded ones).
    A criterion absent from `criteria` has no valid answer (null)."""
    ci = {
        item: criterion_index(criteria[item]) if item in criteria else None
        for e in structure.elements
        for item in e.criteria
    }
    elements = {
        e.id: element_index(
            [ci[i] for i in e.criteria],
            e.rule,
            ci.get(e.designated) if e.designated is not None else None,
        )
        for e in structure.elements
    }
    pillars, overall = structure.roll_up(elements, pillar_index, overall_index, missing)
    return Indices(ci, elements, pillars, overall)


Coefs = dict[str, float]


@dataclass(frozen=True, slots=True)
class Coefficients:
    """The c_i of each composite written as `I = 100 · Σ_i c_i · p_i` (2.10); None = null."""

    elements: dict[str, Coefs | None]
    pillars: dict[str, Coefs | None]
    overall: Coefs | None


def _combine(
    parts: Mapping[str, Coefs | None], weights: Mapping[str, float], missing: Missing
) -> Coefs | None:
    """The coefficients of `weighted_mean` over parts that are themselves linear in the p_i."""
    live = [(w, parts.get(k)) for k, w in weights.items() if w > 0]
    present = [(w, c) for w, c in live if c is not None]
    if not present or (missing == "null" and len(present) < len(live)):
        return None
    total = math.fsum(w for w, _ in present)
    out: Coefs = {}
    for w, c in present:
        for item, ci in c.items():
            out[item] = out.get(item, 0.0) + w / total * ci
    return out


def coefficients(
    structure: Structure, non_null: Collection[str], missing: Missing = "null"
) -> Coefficients:
    """The linear coefficients c_i of every composite, given the criteria with `N_i > 0`.

    An element that is the mean of its k non-null criteria gives each of them c = 1/k (the
    designated-item rule gives that item c = 1); a weighted mean of parts multiplies each part's
    coefficients by `w / Σ w` (over the parts present, see `weighted_mean` for `missing`). So
    `100 · Σ c_i · p_i` equals the index from `compute_indices`.
    """
    live = set(non_null)
    elements: dict[str, Coefs | None] = {}
    for e in structure.elements:
        if e.rule is ElementRule.designated_item:
            chosen = [e.designated] if e.designated is not None and e.designated in live else []
        else:
            chosen = [i for i in dict.fromkeys(e.criteria) if i in live]
        elements[e.id] = {i: 1.0 / len(chosen) for i in chosen} if chosen else None
    pillars, overall = structure.roll_up(elements, _combine, _combine, missing)
    return Coefficients(elements, pillars, overall)


def composite_value(coefs: Mapping[str, float], counts: Mapping[str, ItemCounts]) -> float:
    """`I = 100 · Σ_i c_i · S_i / N_i` (2.10); every item with c_i ≠ 0 needs N_i > 0."""
    return 100.0 * math.fsum(c * _p(item, counts) for item, c in coefs.items() if c != 0)


def _p(item: str, counts: Mapping[str, ItemCounts]) -> float:
    c = counts.get(item)
    if c is None or c.n_valid == 0:
        raise ValueError(f"item {item!r} has a coefficient but no valid answer")
    return c.n_positive / c.n_valid


# ---- uncertainty of composites (2.10) ----------------------------------------------------------


def composite_se(
    coefs: Mapping[str, float],
    counts: Mapping[str, ItemCounts],
    pairs: Mapping[tuple[str, str], PairCounts],
    n_respondents: int,
) -> float | None:
    """Section 2.10: the linearised standard error of `I = 100 · Σ_i c_i · p_i`, in points.

    `z_r = Σ_i c_i · a_ri · (y_ri − p_i) / n_i` and `SE = 100 · sqrt(n/(n−1) · Σ_r z_r²)`, where
    n and the sum run over every respondent of the cell: one who answered none of the
    composite's items has z_r = 0 but counts in n, and that n is the composite's reported n.
    Computed from sufficient statistics:

        Σ_r z_r² = Σ_i Σ_j c_i c_j / (n_i n_j) · M_ij,
        M_ij = n_ij^11 − p_j · n_ij^1· − p_i · n_ij^·1 + p_i p_j · n_ij.

    `pairs` holds (i, j) or (j, i) for i ≠ j; a pair absent means nobody answered both (M = 0).
    The diagonal (i, i) may be omitted for unweighted counts: M_ii = n_i p_i (1 − p_i). For
    weighted data supply every pair, diagonal included, as sums of w_r² (see `PairCounts`).
    None when n < 2.
    """
    if n_respondents < 2:
        return None
    total = sum_z_squared(coefs, counts, pairs)
    n = n_respondents
    return 100.0 * math.sqrt(max(0.0, n / (n - 1) * total))


def sum_z_squared(
    coefs: Mapping[str, float],
    counts: Mapping[str, ItemCounts],
    pairs: Mapping[tuple[str, str], PairCounts],
) -> float:
    """Σ_r z_r² of `composite_se` (section 2.10) from the pair counts."""
    items = [i for i, c in coefs.items() if c != 0]
    p = {i: _p(i, counts) for i in items}
    total = 0.0
    for a, i in enumerate(items):
        for j in items[a:]:
            pair = pairs.get((i, j))
            if pair is None and (j, i) in pairs:
                pair = pairs[(j, i)].swapped()
            if pair is None and i == j:
                n_i, s_i = counts[i].n_valid, counts[i].n_positive
                pair = PairCounts(n_i, s_i, s_i, s_i)
            if pair is None:
                continue
            m = (
                pair.both_positive
                - p[j] * pair.first_positive
                - p[i] * pair.second_positive
                + p[i] * p[j] * pair.n_both
            )
            term = coefs[i] * coefs[j] / (counts[i].n_valid * counts[j].n_valid) * m
            total += term if i == j else 2.0 * term
    return total


def composite_se_from_rows(
    coefs: Mapping[str, float],
    rows: Sequence[Mapping[str, int | None]],
    weights: Sequence[float] | None = None,
) -> float | None:
    """Section 2.10 computed directly from respondent rows (the reference for `composite_se`).

    Each row maps item → 1 (satisfied), 0 (valid, not satisfied) or None/absent (no answer).
    `n_i = Σ_r w_r a_ri`, `p_i = Σ_r w_r a_ri y_ri / n_i`,
    `z_r = Σ_i c_i · w_r · a_ri · (y_ri − p_i) / n_i`, `SE = 100 · sqrt(n/(n−1) · Σ_r z_r²)`.
    """
    n = len(rows)
    w = list(weights) if weights is not None else [1.0] * n
    if len(w) != n:
        raise ValueError("one weight per row")
    if n < 2:
        return None
    items = [i for i, c in coefs.items() if c != 0]
    n_i = {
        i: math.fsum(wr for wr, row in zip(w, rows, strict=True) if row.get(i) is not None)
        for i in items
    }
    s_i = {
        i: math.fsum(wr for wr, row in zip(w, rows, strict=True) if row.get(i) == 1) for i in items
    }
    if any(n_i[i] == 0 for i in items):
        raise ValueError("an item with a coefficient has no valid answer")
    p = {i: s_i[i] / n_i[i] for i in items}
    total = 0.0
    for wr, row in zip(w, rows, strict=True):
        z = 0.0
        for i in items:
            y = row.get(i)
            if y is not None:
                z += coefs[i] * wr * (y - p[i]) / n_i[i]
        total += z * z
    return 100.0 * math.sqrt(n / (n - 1) * total)


def composite_interval(value: float, se: float, z: float = Z95) -> Interval:
    """Section 2.10: `I ± z · SE` (z = `Z95`), clipped to [0, 100] (value and SE in points)."""
    return (max(0.0, value - z * se), min(100.0, value + z * se))


# ---- small cells and presentation (2.7, 2.11) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Estimate:
    """One published quantity of one cell at full precision, with its small-cell flags."""

    value: float | None
    interval: Interval | None
    n_respondents: int
    low_reliability: bool
    suppressed: bool


def small_cell_flags(
    n_respondents: int, thresholds: Thresholds = Thresholds()
) -> tuple[bool, bool]:
    """Section 2.11: (low_reliability, suppressed): fewer than 30 respondents is low
    reliability, fewer than 5 suppressed (both thresholds from the questionnaire)."""
    return (
        n_respondents < thresholds.low_reliability_below,
        n_respondents < thresholds.suppress_below,
    )


def estimate(
    value: float | None,
    interval: Interval | None,
    n_respondents: int,
    thresholds: Thresholds = Thresholds(),
) -> Estimate:
    """An `Estimate` carrying the flags of 2.11; nothing is removed here (see `publish`)."""
    low, suppressed = small_cell_flags(n_respondents, thresholds)
    return Estimate(value, interval, n_respondents, low, suppressed)


def criterion_estimate(
    counts: ItemCounts,
    n_respondents: int,
    thresholds: Thresholds = Thresholds(),
    n_effective: float | None = None,
) -> Estimate:
    """A criterion (or any proportion) with its Wilson interval (2.1, 2.10, 2.11); weighted
    counts need `n_effective` (see `wilson_interval`)."""
    return estimate(
        criterion_index(counts),
        wilson_interval(counts.n_positive, counts.n_valid, n_effective=n_effective),
        n_respondents,
        thresholds,
    )


def composite_estimate(
    coefs: Mapping[str, float] | None,
    counts: Mapping[str, ItemCounts],
    pairs: Mapping[tuple[str, str], PairCounts],
    n_respondents: int,
    thresholds: Thresholds = Thresholds(),
) -> Estimate:
    """A composite (element, pillar, overall) from its coefficients, with the linearised
    interval (2.10, 2.11). `coefs` None (a null composite) gives a null estimate."""
    if coefs is None:
        return estimate(None, None, n_respondents, thresholds)
    value = composite_value(coefs, counts)
    se = composite_se(coefs, counts, pairs, n_respondents)
    interval = composite_interval(value, se) if se is not None else None
    return estimate(value, interval, n_respondents, thresholds)


def publish(e: Estimate) -> Estimate:
    """Section 2.11: a suppressed estimate loses its value and interval in every output that is
    not the raw data; the respondent count and flags stay. Raw outputs use the `Estimate`
    itself."""
    return replace(e, value=None, interval=None) if e.suppressed else e


_CENT: Final = Decimal("0.01")


def display(value: float | None) -> Decimal | None:
    """Section 2.7: round half up to 2 decimals, for presentation only.

    The float is read through its shortest repr, i.e. the decimal it stands for: 100·1067/4000
    is the exact 26.675 and shows 26.68, where the binary expansion (26.67499...) would give
    26.67.
    """
    if value is None:
        return None
    return Decimal(repr(value)).quantize(_CENT, rounding=ROUND_HALF_UP)


def display_text(value: float | None) -> str | None:
    """`display` as the string the API shows beside the number (e.g. "83.87")."""
    shown = display(value)
    return None if shown is None else str(shown)


@dataclass(frozen=True, slots=True)
class Presented:
    """An estimate as the API shows it: suppression applied, then rounded for display."""

    value: Decimal | None
    low: Decimal | None
    high: Decimal | None
    n_respondents: int
    low_reliability: bool
    suppressed: bool


def present(e: Estimate) -> Presented:
    """The API-facing form of an estimate: `publish`, then `display` of the full-precision
    value and bounds (never a value rebuilt from displayed parts)."""
    p = publish(e)
    low, high = (None, None) if p.interval is None else p.interval
    return Presented(
        display(p.value),
        display(low),
        display(high),
        p.n_respondents,
        p.low_reliability,
        p.suppressed,
    )


# ---- aggregation above one unit (2.8) ----------------------------------------------------------


def unit_mean(values: Iterable[float | None]) -> float | None:
    """Section 2.8, `unit_mean`: the plain mean of the units' own indices, null units ignored
    (how the national figure averages provinces). Compare `pooled`, which sums the counts."""
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else None


# ---- dossier rating (2.6) ----------------------------------------------------------------------


def indicator_mean(points_sum: float, n_rated: float) -> float | None:
    """Section 2.6: the mean score (0–2) of one indicator over the dossiers that rated it."""
    if n_rated < 0 or points_sum < 0:
        raise ValueError("counts must not be negative")
    return points_sum / n_rated if n_rated > 0 else None


def dossier_total(points: Mapping[str, int | None]) -> int:
    """Section 2.6: a dossier's total, the sum of its indicators' points (None = not rated)."""
    return sum(v for v in points.values() if v is not None)


def band_for(total: int, bands: Sequence[GradeBand] = DEFAULT_BANDS) -> GradeBand | None:
    """Section 2.6: the grade band whose [min_total, max_total] holds the total."""
    for band in bands:
        if band.min_total <= total <= band.max_total:
            return band
    return None


@dataclass(frozen=True, slots=True)
class DossierSummary:
    n_dossiers: float
    mean_total: float | None
    per_band: dict[str, float]
    outside_bands: float


def dossier_summary(
    totals: Mapping[int, float], bands: Sequence[GradeBand] = DEFAULT_BANDS
) -> DossierSummary:
    """Section 2.6, per unit: the mean total and the count per band, from the number of rated
    dossiers at each total (`{total: count}`, as a GROUP BY gives it). Every band is listed,
    with 0 when empty; dossiers whose total is in no band are counted apart."""
    if any(c < 0 for c in totals.values()):
        raise ValueError("counts must not be negative")
    n = math.fsum(totals.values())
    mean = math.fsum(t * c for t, c in totals.items()) / n if n > 0 else None
    per_band = {band.code: 0.0 for band in bands}
    outside = 0.0
    for total, count in totals.items():
        band = band_for(total, bands)
        if band is None:
            outside += count
        else:
            per_band[band.code] += count
    return DossierSummary(n, mean, per_band, outside)


# ---- ranking (2.12) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ranked(Generic[K]):
    """One unit in a ranking. `rank` None: null value, unranked. `distinguishable_from_next`:
    False when this unit's interval overlaps the next ranked unit's, None when there is no next
    ranked unit or an interval is missing. `not_distinguishable_from`: the adjacent ranked units
    (before and after) whose intervals overlap this one's."""

    unit: K
    value: float | None
    rank: int | None
    distinguishable_from_next: bool | None
    not_distinguishable_from: tuple[K, ...]


def _overlap(a: Interval | None, b: Interval | None) -> bool | None:
    if a is None or b is None:
        return None
    return a[0] <= b[1] and b[0] <= a[1]


def rank(
    values: Mapping[K, float | None],
    intervals: Mapping[K, Interval | None] | None = None,
) -> list[Ranked[K]]:
    """Section 2.12: units in descending order of their published value, competition ranks
    (1, 2, 2, 4).

    Units are compared on `display(value)` (rounded half up to 2 decimals), so units whose
    published values are equal share a rank; within a tie the full-precision value, then input
    order, decides who is listed first. Null values come last, unranked, in input order.
    Adjacent ranked units whose 95% intervals overlap (closed intervals: touching counts) are
    not distinguishable.
    """
    ivs: Mapping[K, Interval | None] = intervals or {}
    ranked_units = [(u, v) for u, v in values.items() if v is not None]
    shown = {u: display(v) for u, v in ranked_units}
    ranked_units.sort(key=lambda uv: (-(shown[uv[0]] or 0), -uv[1]))
    ranks: list[int] = []
    for pos, (u, _) in enumerate(ranked_units):
        tied = pos and shown[u] == shown[ranked_units[pos - 1][0]]
        ranks.append(ranks[-1] if tied else pos + 1)
    overlaps = [
        _overlap(ivs.get(ranked_units[k][0]), ivs.get(ranked_units[k + 1][0]))
        for k in range(len(ranked_units) - 1)
    ]
    out: list[Ranked[K]] = []
    for pos, (u, v) in enumerate(ranked_units):
        neighbours: list[K] = []
        if pos > 0 and overlaps[pos - 1]:
            neighbours.append(ranked_units[pos - 1][0])
        nxt = overlaps[pos] if pos < len(overlaps) else None
        if nxt:
            neighbours.append(ranked_units[pos + 1][0])
        out.append(Ranked(u, v, ranks[pos], None if nxt is None else not nxt, tuple(neighbours)))
    out.extend(Ranked(u, None, None, None, ()) for u, v in values.items() if v is None)
    return out


# ---- change over time (2.13) -------------------------------------------------------------------


def successor_of(unit: K, successors: Mapping[K, K]) -> K:
    """The unit that carries `unit` today, following successor links (renames, merges) to the
    end; a unit without a link is its own successor."""
    seen = {unit}
    while unit in successors:
        unit = successors[unit]
        if unit in seen:
            raise ValueError(f"successor links form a cycle through {unit!r}")
        seen.add(unit)
    return unit


def merge_baseline(
    baseline: Mapping[K, Mapping[str, ItemCounts]], successors: Mapping[K, K]
) -> dict[K, dict[str, ItemCounts]]:
    """Section 2.13: the baseline counts re-cut to today's units. Predecessors that map to the
    same successor are pooled item by item (2.8 `pooled`), so a merged unit's baseline index is
    recomputed from their counts, not averaged from their indices."""
    groups: dict[K, dict[str, list[ItemCounts]]] = {}
    for unit, items in baseline.items():
        target = groups.setdefault(successor_of(unit, successors), {})
        for item, counts in items.items():
            target.setdefault(item, []).append(counts)
    return {u: {i: pooled(cs) for i, cs in items.items()} for u, items in groups.items()}


@dataclass(frozen=True, slots=True)
class Change:
    """`points` = value − baseline value (percentage points); `rank_change` = baseline rank −
    current rank (positive: moved up). None when either side is null or unranked."""

    points: float | None
    rank_change: int | None


def changes(current: Sequence[Ranked[K]], baseline: Sequence[Ranked[K]]) -> dict[K, Change]:
    """Section 2.13, per current unit, against a baseline already keyed by current units
    (`merge_baseline`, then the indices and `rank` of the baseline)."""
    base = {r.unit: r for r in baseline}
    out: dict[K, Change] = {}
    for r in current:
        b = base.get(r.unit)
        points = (
            r.value - b.value
            if b is not None and r.value is not None and b.value is not None
            else None
        )
        moved = (
            b.rank - r.rank if b is not None and r.rank is not None and b.rank is not None else None
        )
        out[r.unit] = Change(points, moved)
    return out
