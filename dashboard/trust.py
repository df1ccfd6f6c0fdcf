"""How much to trust an explanation, as the dashboard shows it: integrated gradients' completeness per
attributed example and per explained pair, and whether two methods tell the same story.

Pure pandas over the ``attributions`` and ``pair_attributions`` tables (no Streamlit, no torch).
Integrated gradients is complete when an example's token attributions add up to the difference they
explain, f(x) - f(baseline); a run that records ``converged`` (and ``completeness_error``,
``n_steps``) per example is read as it says; an older run's is computed from ``convergence_delta``
the way the explain stage warns about it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd

IG = "integrated_gradients"
GRADIENT_X_INPUT = "gradient_x_input"
PAIR_IG = "pair_integrated_gradients"
OCCLUSION = "occlusion"
FALLBACK_TOLERANCE = 0.1
"""Runs without a ``converged`` column: the share of f(x) - f(baseline) the convergence delta may
reach (the explain stage's warning threshold of those runs, audit.stages.explain.IG_TOLERANCE)."""
PAIR_KEYS = ["probe_set", "instance_id", "group_a", "group_b"]


@dataclass(frozen=True)
class Completeness:
    """One example's (or pair's) integrated-gradients completeness."""

    relative_error: float
    converged: bool
    n_steps: int | None = None

    def describe(self) -> str:
        steps = f", {self.n_steps} steps" if self.n_steps is not None else ""
        error = (
            "n/a"
            if math.isnan(self.relative_error)
            else "less than 0.1%"
            if self.relative_error < 0.001
            else f"{self.relative_error:.1%}"
        )
        state = "complete" if self.converged else "NOT converged"
        return f"{state} (attributions miss the explained difference by {error}{steps})"


def example_completeness(attributions: pd.DataFrame) -> dict[str, Completeness]:
    """Per example with integrated-gradients rows: its completeness."""
    ig = attributions[attributions["method"] == IG]
    if ig.empty:
        return {}
    result = {}
    for example_id, rows in ig.groupby("example_id", sort=False):
        first = rows.iloc[0]
        steps = _int(first.get("n_steps")) if "n_steps" in rows.columns else None
        error = _float(first.get("completeness_error")) if "completeness_error" in rows.columns else math.nan
        if "converged" in rows.columns and _flag(first.get("converged")) is not None:
            result[str(example_id)] = Completeness(error, bool(_flag(first.get("converged"))), steps)
            continue
        delta = _float(first.get("convergence_delta"))
        if math.isnan(delta):
            continue
        total = float(pd.to_numeric(rows["attribution"], errors="coerce").sum())
        explained = abs(total - delta)
        relative = abs(delta) / max(explained, 1e-12)
        result[str(example_id)] = Completeness(relative, relative <= FALLBACK_TOLERANCE, steps)
    return result


def unconverged_line(attributions: pd.DataFrame) -> str | None:
    """One warning line when integrated gradients did not converge for some of these examples."""
    completeness = example_completeness(attributions)
    off = [c for c in completeness.values() if not c.converged]
    if not off:
        return None
    worst = max(c.relative_error for c in off)
    return (
        f"Integrated gradients did not converge for {len(off)} of {len(completeness)} example(s) shown (worst "
        f"error {worst:.0%}): their colours do not add up to the score difference they explain; read them as "
        "indicative only, or compare with gradient × input."
    )


def pair_completeness(rows: pd.DataFrame) -> Completeness | None:
    """A pair's pair-IG completeness (its rows of pair_attributions), None without pair IG rows."""
    ig = rows[rows["method"] == PAIR_IG]
    if ig.empty:
        return None
    first = ig.iloc[0]
    converged = _flag(first.get("converged"))
    return Completeness(
        _float(first.get("completeness_error")), bool(converged) if converged is not None else False,
        _int(first.get("n_steps")),
    )  # fmt: skip


def pairs_of(pair_rows: pd.DataFrame) -> list[tuple[str, str]]:
    """The (group_a, group_b) pairs explained, in the table's order."""
    unique = pair_rows[["group_a", "group_b"]].drop_duplicates()
    return [(str(a), str(b)) for a, b in unique.itertuples(index=False)]


def focus_sum(rows: pd.DataFrame) -> float:
    focus = rows["is_focus"].astype("boolean").fillna(False).astype(bool)
    values = pd.to_numeric(rows.loc[focus, "attribution"], errors="coerce")
    return float(values.sum()) if len(values) else math.nan


def top_unit(rows: pd.DataFrame) -> tuple[str, bool] | None:
    """The unit with the largest |attribution| and whether it is the swapped words."""
    if rows.empty:
        return None
    values = pd.to_numeric(rows["attribution"], errors="coerce").abs().fillna(0.0).to_numpy()
    best = rows.iloc[int(values.argmax())]
    return str(best["text"]), bool(best["is_focus"])


def disagreements(
    pair_rows: pd.DataFrame, variant_attributions: dict[str, pd.DataFrame]
) -> list[tuple[str, str]]:
    """Where two methods disagree about one pair, each as (one line, which to trust and why).

    Checked: occlusion and variant a's own integrated gradients rank different shared words first
    (``context_disagreement``); occlusion ranks a shared word first (the context carries the swap);
    per variant, integrated gradients and gradient × input give the focus tokens opposite signs.
    ``variant_attributions`` maps a variant's name to its rows of the attributions table."""
    found: list[tuple[str, str]] = []
    occlusion = pair_rows[pair_rows["method"] == OCCLUSION]
    if not occlusion.empty and "group_a" in occlusion.columns:
        own = variant_attributions.get(str(occlusion["group_a"].iloc[0]))
        context = context_disagreement(occlusion, own) if own is not None else None
        if context is not None:
            found.append(context)
    top = top_unit(occlusion)
    if top is not None and not top[1]:
        found.append(
            (
                f"Occlusion ranks the shared word {top[0]!r} above the swapped words; pair IG credits the "
                "swapped tokens only.",
                "Both hold: pair IG only credits tokens that differ between the variants, while occlusion "
                f"shows that the delta needs {top[0]!r} too. Read the swapped words as the cause and "
                f"{top[0]!r} as the context that carries it.",
            )
        )
    for variant, rows in variant_attributions.items():
        ig, gxi = rows[rows["method"] == IG], rows[rows["method"] == GRADIENT_X_INPUT]
        if ig.empty or gxi.empty:
            continue
        a, b = focus_sum(ig), focus_sum(gxi)
        if a * b < 0:
            converged = example_completeness(rows)
            trust = (
                "integrated gradients converged, so trust it: gradient × input is the slope at the text alone "
                "and ignores how the score moves on the way from the baseline"
                if converged and all(c.converged for c in converged.values())
                else "integrated gradients did not converge either, so neither is reliable for this variant: "
                "trust the pair's occlusion"
            )
            found.append(
                (
                    f"In variant {variant!r}, integrated gradients and gradient × input give the focus words "
                    f"opposite signs ({a:+.4f} vs {b:+.4f}).",
                    trust,
                )
            )
    return found


def unit_spans(row: pd.Series) -> list[tuple[int, int]]:
    """A pair_attributions row's character spans on variant a's text."""
    try:
        spans = json.loads(str(row["spans"]))
    except (TypeError, ValueError):
        return []
    return [(int(s), int(e)) for s, e in spans]


def ig_by_unit(units: pd.DataFrame, attributions: pd.DataFrame) -> pd.Series:
    """Per occlusion unit (index as ``units``), the sum of variant a's integrated-gradients token
    attributions whose characters overlap the unit's spans (special tokens reach no unit)."""
    ig = attributions[attributions["method"] == IG]
    starts = pd.to_numeric(ig["char_start"], errors="coerce").to_numpy()
    ends = pd.to_numeric(ig["char_end"], errors="coerce").to_numpy()
    values = pd.to_numeric(ig["attribution"], errors="coerce").fillna(0.0).to_numpy()
    totals = []
    for _, row in units.iterrows():
        total = 0.0
        for start, end, value in zip(starts, ends, values, strict=True):
            if math.isnan(start) or math.isnan(end) or end <= start:
                continue
            if any(start < s_end and s_start < end for s_start, s_end in unit_spans(row)):
                total += float(value)
        totals.append(total)
    return pd.Series(totals, index=units.index, dtype="float64")


def context_disagreement(occlusion: pd.DataFrame, variant_a: pd.DataFrame) -> tuple[str, str] | None:
    """Occlusion's top shared word against variant a's own integrated gradients: two independent
    measurements (the pair's difference with the word neutralised, a's score from the baseline) of
    which context word matters most. One line when they name different words, None when they name
    the same one or either has nothing to rank."""
    shared = occlusion[~occlusion["is_focus"].astype("boolean").fillna(False).astype(bool)]
    if shared.empty or variant_a[variant_a["method"] == IG].empty:
        return None
    by_occlusion = pd.to_numeric(shared["attribution"], errors="coerce").abs().fillna(0.0)
    by_ig = ig_by_unit(shared, variant_a).abs()
    if by_occlusion.max() == 0 or by_ig.max() == 0:
        return None
    first_occlusion, first_ig = by_occlusion.idxmax(), by_ig.idxmax()
    if first_occlusion == first_ig:
        return None
    word_occlusion, word_ig = str(shared.loc[first_occlusion, "text"]), str(shared.loc[first_ig, "text"])
    converged = example_completeness(variant_a)
    ig_state = (
        "integrated gradients converged for a"
        if converged and all(c.converged for c in converged.values())
        else "integrated gradients did not converge for a"
    )
    return (
        f"Occlusion ranks the shared word {word_occlusion!r} first, integrated gradients on variant a ranks "
        f"{word_ig!r} first.",
        f"For the pair's difference trust occlusion: it measures how much of the delta needs each word, while "
        f"integrated gradients explains a's own score against the baseline, not the difference ({ig_state}).",
    )


AGREEMENT = (
    "The methods agree on the swapped words: pair IG splits the delta among the tokens that differ (exactly, "
    "when converged), occlusion says how much each shared word carries it."
)


def _float(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number


def _int(value: object) -> int | None:
    number = _float(value)
    return None if math.isnan(number) else int(number)


def _flag(value: object) -> bool | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return bool(value)
