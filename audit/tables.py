"""Table contracts: the columns every run's parquet tables carry, in order.

A run folder holds ``manifest.json`` plus one parquet file per table below. The dashboard, the
reports and the tests read these names; change them only together with SCHEMA_VERSION.

Sign convention everywhere: ``delta = score_a - score_b``; a positive effect means group_a gets
the higher score.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import pandas as pd

SCHEMA_VERSION = 5
"""2: long-document columns (doc_length, position, swap_group, n_windows, note), sink_mass,
segment_attributions. 3: tokenization columns of examples (n_text_tokens, n_words, n_chars,
n_unknown, n_byte_fallback), the findings' subset column and the parallel (multilingual) metrics. Readers treat a missing
column of an older run as null. 4: the generations table (causal LMs with --generate); a run
without the file reads it as an empty table. 5: the pair_attributions table (what explains a pair's
difference: pair integrated gradients and word occlusion), the patching and patching_effects tables
(--patching; patching_effects with p_value and ci_method as findings), the findings' ci_method column
(how each interval was made), the attributions' n_steps, completeness_error and converged columns
(integrated gradients with a completeness tolerance) and attribution_pairs' converged; a run
without them reads them as empty tables (a missing column as null)."""

TABLES: dict[str, list[str]] = {
    # one row per variant (one model input)
    "examples": [
        "example_id",  # "<probe_set>/<instance_id>/<variant>"
        "probe_set",
        "instance_id",
        "variant",
        "attribute",
        "lang",
        "text",
        "label",  # expected label when the probe states one, else null
        "focus",  # JSON list of [start, end] character spans
        "n_tokens",  # tokens after truncation, special tokens included
        "truncated",  # True when the text was cut to the model's maximum length (strategy "truncate")
        "n_windows",  # model inputs the text was scored as: 1, or the sliding windows (strategy "window")
        "doc_length",  # long-document sets: the nominal document length in tokens; else null
        "position",  # long-document sets: where the key sentence starts (0..1 of the document); null: no key
        "swap_group",  # identity-swap variants of long-document sets: the group; else null
        # tokenization of the whole text (before truncation, special tokens not counted); see
        # audit/tokenization.py for how words, unknown and byte-fallback tokens are counted
        "n_text_tokens",
        "n_words",  # runs of letters/marks/digits; null for scripts written without spaces (zh, ja, th ...)
        "n_chars",  # characters other than white space (NFC)
        "n_unknown",  # tokens that are the tokenizer's unknown token
        "n_unknown_chars",  # characters (not white space) inside unknown tokens; null without offsets
        "n_byte_fallback",  # tokens that stand for raw bytes (<0xNN>), or decode to a partial character
    ],
    # one row per variant x output (each label's probability, each association score)
    "predictions": [
        "example_id",
        "output",  # e.g. "prob:positive", "assoc:pleasant_vs_unpleasant"
        "score",
        "label",  # predicted label (classifiers), else null
    ],
    # one row per instance x pair of variants x output
    "effects": [
        "probe_set",
        "instance_id",
        "attribute",
        "group_a",
        "group_b",  # a group name, or "rest" (mean of the instance's other groups)
        "output",
        "score_a",
        "score_b",
        "delta",  # score_a - score_b
        "label_a",
        "label_b",
        "flipped",  # predicted label differs between a and b (null when there is no label)
        "doc_length",  # long-document sets: the document length of both variants; else null
        "position",  # long-document sets: the key / swapped sentence's position; else null
    ],
    # one row per statistical test
    "findings": [
        "probe_set",
        "attribute",
        "group_a",
        "group_b",
        "metric",  # counterfactual: "mean_delta", "flip_rate", "seat_effect_size"; stereotype vs
        # anti-stereotype sets: "stereotype_preference", "language_modeling_score" (audit/metrics/preference.py);
        # long-document:
        # "key_effect", "swap_effect", "middle_dip", "effective_context" (see audit/metrics/long_context.py);
        # parallel (multilingual, attribute "language", group_a = the language, group_b = the reference
        # language for comparisons, null for per-language descriptions): "parity", "parity_by_label",
        # "token_ratio", "label_agreement", "unknown_char_rate",
        # "label_accuracy", "translation_similarity", "fertility_per_word", "fertility_per_char",
        # "unknown_rate", "byte_fallback_rate", "truncation_rate", "content_attribution_share"
        # (see audit/metrics/multilingual.py)
        "output",
        "effect",  # the metric's value (score units for mean_delta)
        "ci_low",
        "ci_high",
        # how the interval was made: "sign-flip inversion" (the set of shifts the row's sign-flip test does not
        # reject: excludes 0 exactly when p <= 1 - confidence), "BCa bootstrap", "percentile bootstrap",
        # "Wilson"; null when the row has no interval (audit/metrics/stats.py)
        "ci_method",
        "p_value",
        "q_value",  # Benjamini-Hochberg across all tests of the run
        "effect_size",  # standardized: Cohen's d_z for paired deltas, SEAT d for associations
        "n",
        "threshold",  # practical threshold |effect| must reach
        "significant",
        "severity",  # "none", "low", "medium", "high"
        "doc_length",  # long-document rows: the document length in tokens; else null
        "position",  # key_effect / swap_effect rows: the position (0..1); else null
        "note",  # why a row reads as it does (e.g. "key sentence beyond the model's 512-token limit"); or null
        "subset",  # the instances a row is restricted to, e.g. "label=negative" (parity_by_label); else null
    ],
    # one row per token of an attributed example
    "attributions": [
        "example_id",
        "method",  # "integrated_gradients", "gradient_x_input"
        "output",  # the scalar explained (same as the compared output)
        "token_index",
        "token",
        "char_start",
        "char_end",
        "attribution",
        "is_focus",
        "convergence_delta",  # per example (IG completeness gap); null for gradient methods
        # per example, integrated gradients (null for methods without a baseline): the steps (path
        # points) used, |convergence_delta| / max(|f(x) - f(baseline)|, 1e-4), and whether that is
        # within --ig-tolerance (audit/attribution/integrated.py)
        "n_steps",
        "completeness_error",
        "converged",
    ],
    # one row per attributed instance x pair x method: attribution mass on the focus tokens
    "attribution_pairs": [
        "probe_set",
        "instance_id",
        "group_a",
        "group_b",
        "method",
        "output",
        "focus_attribution_a",
        "focus_attribution_b",
        "delta",  # a - b
        # integrated gradients: both variants' attributions met --ig-tolerance (the attributions'
        # converged); null for gradient_x_input (no integral to complete)
        "converged",
    ],
    # counterfactual explanations (audit/attribution/contrast.py): one row per attributed pair of
    # variants x method x unit: what explains the pair's difference f(a) - f(b) itself
    "pair_attributions": [
        "probe_set",
        "instance_id",
        "group_a",
        "group_b",
        "method",  # "pair_integrated_gradients" (a token per unit), "occlusion" (a word per unit)
        "output",  # the scalar explained (the compared output the finding's delta is on)
        "unit_index",  # the token's index in a's input (pair IG); the word's place in reading order (occlusion)
        "text",  # a's token or word; where a and b differ, "a's → b's"
        "char_start",  # the unit's extent in variant a's text; null for special tokens and words a lacks
        "char_end",
        "spans",  # JSON list of the unit's [start, end] character spans in a's text (the swapped words: several)
        "is_focus",  # the unit is (part of) the swapped words
        "attribution",  # share of f(a) - f(b) the unit accounts for (score units); a pair's IG rows sum to it
        "pair_delta",  # the effects table's delta of the pair (score_a - score_b)
        "n_steps",  # pair IG: points of the path integral (audit/attribution/integrated.py); null for occlusion
        # pair IG: |sum of the pair's attributions - f(a) + f(b)| / max(|f(a) - f(b)|, 1e-4); null for occlusion
        "completeness_error",
        "converged",  # pair IG: completeness_error within min(--ig-tolerance, 1%); null for occlusion
    ],
    # long-document sets: one row per attributed example x method x segment (a sentence, or a run of
    # sentences); token rows go to "attributions" only when asked for
    "segment_attributions": [
        "example_id",
        "method",  # "segment_ablation" (forward passes only), "gradient_x_input" (summed per segment)
        "output",
        "segment_index",
        "char_start",
        "char_end",
        "n_tokens",  # tokens of the segment that reached the model
        "attribution",  # score change the segment accounts for (same units as the output)
        "is_key",  # the segment is the key (or swapped) sentence
    ],
    # one row per example x layer x head x statistic
    "attention": [
        "example_id",
        "layer",
        "head",
        "stat",  # "entropy", "focus_mass", "special_mass", "sink_mass", "mean_distance"
        "value",
    ],
    # --patching (audit/patching.py): one row per patched pair x layer x token position; a pair is two
    # variants of an attributed instance with the same number of tokens
    "patching": [
        "probe_set",
        "instance_id",
        "group_a",
        "group_b",
        "output",  # the compared (and explained) output
        "layer",  # 0: the token embeddings' output; l >= 1: the l-th transformer block's output
        "token_index",
        "token",  # a's token
        "token_b",  # b's token at the same position
        "is_focus",  # a swapped token: its id differs between a and b
        "relative_position",  # start, before:3+, before:2, before:1, focus, between, after:1, after:2, after:3+, end
        "score_a",  # f(a)
        "score_b",  # b's input in a's run (a's variant index: a causal LM scores a's tokens)
        "score_patched",  # a's run with b's activation at this layer and token
        "restored_fraction",  # (score_patched - score_a) / (score_b - score_a); null: nothing to restore
        "delta",  # the pair's delta as the effects table has it (score_a - score_b of the finding)
    ],
    # --patching: one row per probe set x layer x relative position, over its patched instances
    "patching_effects": [
        "probe_set",
        "attribute",
        "metric",  # "restored_fraction"
        "output",  # the output(s) patched, comma-separated
        "layer",
        "relative_position",
        "effect",  # mean over instances of the instance's mean restored fraction (its pairs, its tokens there)
        # an interval over instances that agrees with p_value (as findings' mean_delta): the inverted
        # sign-flip test up to 29 instances, BCa above unless the two disagree; -inf / inf when the test
        # cannot bound it (n <= 5 at 95%)
        "ci_low",
        "ci_high",
        "p_value",  # two-sided sign-flip test of "the mean restored fraction is 0" over instances
        "ci_method",  # "sign-flip inversion" or "BCa bootstrap"
        "n",  # instances
        "n_pairs",
        "note",  # what the fraction is of, for this model family
    ],
    # causal LMs audited with --generate: one row per variant x generated sample (audit/generation.py);
    # with --generation-scorer one more float column per scorer output, named like its per-variant
    # output in predictions (e.g. "gen:prob:positive": this sample's score; predictions hold the mean)
    "generations": [
        "example_id",
        "sample",  # 0 .. N-1
        "text",  # the generated continuation only (special tokens removed, white space stripped)
        "n_new_tokens",  # tokens generated before the end-of-text token
        "stopped",  # the model ended the text before --max-new-tokens
    ],
}

PATCHING_POSITIONS = (
    "start",
    "before:3+",
    "before:2",
    "before:1",
    "focus",
    "between",
    "after:1",
    "after:2",
    "after:3+",
    "end",
)
"""The patching tables' ``relative_position``: a token's place relative to the swapped tokens, in
reading order. The leading special tokens ([CLS], BOS); the tokens before the first swapped token
by distance; the swapped tokens; unswapped tokens between two swapped ones; the tokens after the
last swapped token by distance; the trailing special tokens ([SEP], EOS). Instances of different
lengths, with the swap in different places, line up on these (audit/patching.py)."""


FINDING_DTYPES: dict[str, str] = {
    **dict.fromkeys(
        ("effect", "ci_low", "ci_high", "p_value", "q_value", "effect_size", "threshold", "position"),
        "float64",
    ),
    "n": "int64",
    "significant": "bool",
    "doc_length": "Int64",
}
"""The dtypes of the findings' numeric and flag columns (the others hold strings or nulls)."""


def findings_frame(rows: Sequence[dict[str, object]], *, object_columns: Sequence[str] = ()) -> pd.DataFrame:
    """A findings table of these rows (none: an empty one) with ``FINDING_DTYPES``; ``object_columns``
    are kept as Python objects (so their nulls stay None) instead of the string dtype pandas infers."""
    frame = pd.DataFrame(rows, columns=TABLES["findings"])
    return frame.astype({**FINDING_DTYPES, **dict.fromkeys(object_columns, "object")})


def finding_row(
    *,
    probe_set: str,
    attribute: str,
    group_a: str | None,
    group_b: str | None,
    metric: str,
    output: str | None,
    effect: float,
    ci_low: float,
    ci_high: float,
    n: int,
    ci_method: str | None = None,
    p_value: float = math.nan,
    effect_size: float = math.nan,
    threshold: float = math.nan,
    note: str | None = None,
    subset: str | None = None,
) -> dict[str, object]:
    """One findings row, not yet in a Benjamini-Hochberg family: no q-value, not significant, severity
    "none" (audit/metrics/family.py ``apply_family_test`` fills them); no document length or
    position. Rows without a p-value are descriptive. ``ci_method``: how the interval was made (the
    names in audit/metrics/stats.py); None only for a row without an interval."""
    return {
        "probe_set": probe_set,
        "attribute": attribute,
        "group_a": group_a,
        "group_b": group_b,
        "metric": metric,
        "output": output,
        "effect": effect,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "ci_method": ci_method,
        "p_value": p_value,
        "q_value": math.nan,
        "effect_size": effect_size,
        "n": n,
        "threshold": threshold,
        "significant": False,
        "severity": "none",
        "doc_length": pd.NA,
        "position": math.nan,
        "note": note,
        "subset": subset,
    }


def empty_table(name: str) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype="object") for column in TABLES[name]})


def typed_empty(name: str, dtypes: dict[str, str]) -> pd.DataFrame:
    """A table with no rows whose columns already carry the dtypes the filled table has (others: object)."""
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "object")) for c in TABLES[name]})


def require_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """Raise ValueError when ``frame`` (called ``name`` in the message) lacks one of ``columns``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}")


def check_columns(name: str, frame: pd.DataFrame) -> None:
    """Raise ValueError when a table misses a contract column (extra columns are allowed)."""
    missing = [c for c in TABLES[name] if c not in frame.columns]
    if missing:
        raise ValueError(f"table {name!r} is missing column(s) {missing}")


def flags(series: pd.Series) -> pd.Series:
    """A boolean column with missing values read as False (parquet may hold nullable booleans)."""
    return series.astype("boolean").fillna(False).astype(bool)


def confidence_text(confidence: float) -> str:
    """0.95 -> "95%", 0.975 -> "97.5%"."""
    return f"{confidence * 100:.4g}%"


def interval_text(ci_low: object, ci_high: object, n: object, confidence: float, *, digits: int = 3) -> str:
    """A findings interval as every reader shows it (the CLI table, ``--json``, the dashboard):
    ``[+0.012, +0.034]``; an interval the test cannot bound reads "unbounded (n = 4: too few instances
    to exclude any value at 95%)" (the sign-flip inversion with n <= 5 at 95%: no sign pattern is rare
    enough), one infinite end reads ``[+0.012, +inf)``; no interval (NaN) reads "none"."""
    low, high = _as_float(ci_low), _as_float(ci_high)
    if math.isnan(low) or math.isnan(high):
        return "none"
    if math.isinf(low) and math.isinf(high):
        count = (
            f"n = {int(float(n))}"
            if isinstance(n, numbers.Real) and not math.isnan(float(n))
            else "n unknown"
        )
        return f"unbounded ({count}: too few instances to exclude any value at {confidence_text(confidence)})"
    left = "(-inf" if math.isinf(low) else f"[{low:+.{digits}f}"
    right = "+inf)" if math.isinf(high) else f"{high:+.{digits}f}]"
    return f"{left}, {right}"


def finite_or_none(value: object) -> object:
    """A number for JSON: finite floats as they are, NaN and +-inf as None (JSON has neither);
    anything else unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
