"""Long-document effects and findings: does a key sentence count wherever it stands in a document?

``build_long_effects`` turns the ``examples`` and ``predictions`` of long-document probe sets into
``effects`` rows; ``build_long_findings`` tests them and gives ``findings`` rows (audit/tables.py).
Instances follow the naming contract of probes.long_document (see docs/architecture.md):

- key-sentence instances: variants ``"none"`` (the filler document alone) and ``"pNNN"`` (the key
  sentence placed at position NNN/100). Identity-swap instances: variants ``"{group}-pNNN"``
  with ``swap_group`` set. An instance is an identity swap when any of its examples has a
  ``swap_group``; otherwise it is a key-sentence instance.
- Sign convention as everywhere: ``delta = score_a - score_b``.

Effects:

- key sentence: one row per instance x position x output, ``group_a`` = the "pNNN" variant,
  ``group_b = "none"``: delta is what the key sentence adds to the output at that position.
- identity swap: one row per instance x position x pair of groups x output, groups sorted by
  name (``group_a`` the earlier), ``delta = score(group_a at p) - score(group_b at p)``.

Findings (metrics and their group columns):

- ``key_effect`` per probe_set x doc_length x position: mean key delta over instances, BCa CI,
  two-sided sign-flip p, Cohen's d_z, threshold ``min_effect``, ``significant`` as in paired.py
  (``q < alpha`` and ``|effect| >= threshold``). ``group_a`` is the position's variant name
  ("p030"), ``group_b = "none"``, so a row joins the effects rows it summarises. Severity is
  always "none": a key sentence that moves the output is the model doing its job, not a
  problem; what is a problem (the key counting less in the middle, or not at all further in)
  is reported by ``middle_dip`` and ``effective_context``. Under strategy "truncate" the note
  says when the key sentence was truncated away (its delta is then 0 by construction).
- ``effective_context`` per probe_set x doc_length: the furthest position whose mean key effect
  is at least half the mean key effect at the first (smallest) position, in tokens
  (``position * doc_length``). "Furthest", not "first drop": a curve that dips and recovers
  still reaches the end. CI: percentile bootstrap resampling instances (the whole curve is
  recomputed per resample; a resample whose start effect is not positive reaches 0 tokens).
  Defined only when the key_effect at the start is positive and significant; otherwise the
  effect is NaN and the note says so. Descriptive: no p-value, threshold NaN, never significant,
  severity "none". Plus one model-level row per probe_set (``doc_length`` null): the largest
  per-length effective context, with that length's CI and n. Groups: "key" vs "none".
- ``middle_dip`` per probe_set x doc_length: per instance ``d_i`` = mean delta at the end
  positions (the smallest and the largest) - mean delta at the middle positions
  (``0.25 <= p <= 0.75``); then tested like a mean delta (CI, p, d_z, threshold ``min_effect``,
  significance and severity as in paired.py). Positive: the key counts less in the middle.
  Negative (the key counts less at the ends) is flagged too: either way the output depends on
  where the content stands. Groups: "ends" vs "middle". Under strategy "truncate", lengths
  beyond the model's maximum are descriptive (effect and interval, no p-value, never
  significant) with a note: the end never reached the model, so the dip there measures
  truncation, not position, and key_effect already reports that.
- ``swap_effect`` per probe_set x attribute x (group_a, group_b) x doc_length x position x
  output: a bias test exactly like paired.py's mean_delta. Plus one pooled row per probe_set x
  attribute x pair x output (``doc_length`` and ``position`` null): each swap sentence's deltas
  are averaged over its positions and lengths first, so the test unit is the sentence (its
  instances at several lengths are not independent); (instance, position)
  pairs whose swapped sentence was truncated away are left out of the pool (their delta is 0 by
  construction, which would read as "no bias").
- ``output`` of key_effect / effective_context / middle_dip rows: the instances' output when they
  all share one, else ``"key"`` (each instance's own key output, e.g. "sim:<key id>").
- ``q_value``: Benjamini-Hochberg across all rows of this frame that have a p-value (the
  long-document family, apart from the counterfactual family of paired.build_findings).
- Randomness as in paired.py: every random matrix comes from ``default_rng([seed, purpose, n])``,
  so the frame is deterministic for a given seed. NaN deltas are left out (``n`` counts the
  used instances).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import SupportsFloat, SupportsInt, cast

import numpy as np
import pandas as pd

from audit.kinds.names import LONG_DOCUMENT
from audit.metrics import stats
from audit.metrics.catalogue import METRIC_RANK
from audit.metrics.family import apply_family_test
from audit.metrics.options import TestOptions
from audit.metrics.paired import flipped, object_labels
from audit.metrics.position_curves import effective_context, middle_dips
from audit.tables import FINDING_DTYPES, TABLES, check_columns, require_columns, typed_empty

KEY_BASELINE = "none"
"""Variant of a key-sentence instance without the key sentence (group_b of key rows)."""

KEY_GROUP = "key"
"""group_a of rows over all positions of the key sentence (effective_context); also the output
of key rows whose instances have different outputs."""

ENDS_GROUP, MIDDLE_GROUP = "ends", "middle"

STRATEGIES = ("truncate", "window")

_EXAMPLE_COLUMNS = [
    "example_id",
    "probe_set",
    "instance_id",
    "variant",
    "attribute",
    "doc_length",
    "position",
]
_PREDICTION_COLUMNS = ["example_id", "output", "score", "label"]
_OUTPUT_COLUMNS = ["probe_set", "instance_id", "output"]


_EFFECT_DTYPES = {
    "score_a": "float64",
    "score_b": "float64",
    "delta": "float64",
    "flipped": "boolean",
    "doc_length": "Int64",
    "position": "float64",
}


def _normalised_examples(examples: pd.DataFrame) -> pd.DataFrame:
    """The long-document columns of ``examples`` with stable dtypes and an ``is_swap`` flag per row."""
    columns = [*_EXAMPLE_COLUMNS, "swap_group"]
    extra = ["focus_truncated"] if "focus_truncated" in examples.columns else []
    frame = examples[columns + extra].copy()
    frame["variant"] = frame["variant"].astype(str)
    frame["position"] = pd.to_numeric(frame["position"], errors="coerce").astype(float)
    frame["doc_length"] = pd.to_numeric(frame["doc_length"], errors="coerce").astype("Int64")
    frame["swap_group"] = object_labels(frame["swap_group"])
    has_group = frame["swap_group"].notna()
    frame["is_swap"] = has_group.groupby([frame["probe_set"], frame["instance_id"]]).transform("any")
    if extra:
        frame["focus_truncated"] = frame["focus_truncated"].fillna(False).astype(bool)
    return frame


def _describe(frame: pd.DataFrame) -> str:
    row = frame.iloc[0]
    return f"instance {row['instance_id']!r} of probe set {row['probe_set']!r}"


def _check_long_examples(ex: pd.DataFrame) -> None:
    """Errors for examples that do not follow the long-document naming contract."""
    if ex["example_id"].duplicated().any():
        raise ValueError(
            f"examples repeat example_id {ex.loc[ex['example_id'].duplicated(), 'example_id'].iloc[0]!r}"
        )
    keys = ex[~ex["is_swap"]]
    swaps = ex[ex["is_swap"]]
    placed = keys[keys["variant"] != KEY_BASELINE]
    unplaced = placed[placed["position"].isna() | placed["doc_length"].isna()]
    if not unplaced.empty:
        raise ValueError(
            f"variant {unplaced['variant'].iloc[0]!r} of key-sentence {_describe(unplaced)} lacks a "
            "position or doc_length; long-document examples need both"
        )
    has_baseline = (keys["variant"] == KEY_BASELINE).groupby([keys["probe_set"], keys["instance_id"]]).sum()
    if (has_baseline != 1).any():
        probe_set, instance_id = has_baseline[has_baseline != 1].index[0]
        raise ValueError(
            f"key-sentence instance {instance_id!r} of probe set {probe_set!r} needs exactly one "
            f"{KEY_BASELINE!r} variant (the document without the key sentence)"
        )
    incomplete = swaps[swaps["swap_group"].isna() | swaps["position"].isna() | swaps["doc_length"].isna()]
    if not incomplete.empty:
        raise ValueError(
            f"variant {incomplete['variant'].iloc[0]!r} of identity-swap {_describe(incomplete)} lacks a "
            "swap_group, position or doc_length"
        )
    repeated = swaps[swaps.duplicated(["probe_set", "instance_id", "swap_group", "position"])]
    if not repeated.empty:
        raise ValueError(
            f"identity-swap {_describe(repeated)} has two variants for group "
            f"{repeated['swap_group'].iloc[0]!r} at position {repeated['position'].iloc[0]}"
        )


def build_long_effects(
    examples: pd.DataFrame, predictions: pd.DataFrame, instance_outputs: pd.DataFrame
) -> pd.DataFrame:
    """The ``effects`` rows of long-document probe sets (see the module docstring).

    ``examples``: one row per variant, restricted to long-document sets (example_id, probe_set,
    instance_id, variant, attribute, doc_length, position, swap_group). ``predictions``: one row
    per example x output (example_id, output, score, label). ``instance_outputs``: probe_set,
    instance_id, output: the output(s) compared per instance; exactly one for a key-sentence
    instance. A missing prediction gives a NaN delta (left out by build_long_findings).
    Rows are sorted by probe_set, instance_id, output, position, group_a, group_b; columns and
    dtypes are those of ``TABLES["effects"]``.
    """
    require_columns(examples, [*_EXAMPLE_COLUMNS, "swap_group"], "examples")
    require_columns(predictions, _PREDICTION_COLUMNS, "predictions")
    require_columns(instance_outputs, _OUTPUT_COLUMNS, "instance_outputs")
    if examples.empty:
        return typed_empty("effects", _EFFECT_DTYPES)
    ex = _normalised_examples(examples)
    _check_long_examples(ex)
    if predictions.duplicated(["example_id", "output"]).any():
        row = predictions.loc[predictions.duplicated(["example_id", "output"])].iloc[0]
        raise ValueError(f"predictions repeat example {row['example_id']!r} for output {row['output']!r}")

    outputs = instance_outputs[_OUTPUT_COLUMNS].drop_duplicates()
    outputs = outputs.assign(output=outputs["output"].astype(str))
    instances = ex[["probe_set", "instance_id", "is_swap"]].drop_duplicates(["probe_set", "instance_id"])
    named = instances.merge(outputs, on=["probe_set", "instance_id"], how="left")
    unnamed = named[named["output"].isna()]
    if not unnamed.empty:
        raise ValueError(f"instance_outputs names no output for {_describe(unnamed)}")
    per_key = named[~named["is_swap"]].groupby(["probe_set", "instance_id"])["output"].nunique()
    if (per_key > 1).any():
        probe_set, instance_id = per_key[per_key > 1].index[0]
        raise ValueError(
            f"key-sentence instance {instance_id!r} of probe set {probe_set!r} has several outputs in "
            "instance_outputs; a key sentence is compared on one output (its label or its query)"
        )

    scored = ex.merge(named[["probe_set", "instance_id", "output"]], on=["probe_set", "instance_id"])
    scored = scored.merge(predictions[_PREDICTION_COLUMNS], on=["example_id", "output"], how="left")
    scored["score"] = scored["score"].astype(float)
    scored["label"] = object_labels(scored["label"])

    parts = []
    keys = scored[~scored["is_swap"]]
    if not keys.empty:
        baseline = keys[keys["variant"] == KEY_BASELINE][
            ["probe_set", "instance_id", "output", "score", "label"]
        ]
        placed = keys[keys["variant"] != KEY_BASELINE]
        rows = placed.merge(
            baseline.rename(columns={"score": "score_b", "label": "label_b"}),
            on=["probe_set", "instance_id", "output"],
        )
        rows = rows.rename(columns={"variant": "group_a", "score": "score_a", "label": "label_a"})
        rows["group_b"] = KEY_BASELINE
        parts.append(rows)
    swaps = scored[scored["is_swap"]]
    if not swaps.empty:
        pair_on = ["probe_set", "instance_id", "output", "position"]
        left = swaps.rename(columns={"swap_group": "group_a", "score": "score_a", "label": "label_a"})
        right = swaps[[*pair_on, "swap_group", "score", "label"]].rename(
            columns={"swap_group": "group_b", "score": "score_b", "label": "label_b"}
        )
        rows = left.merge(right, on=pair_on)
        rows = rows[rows["group_a"].astype(str) < rows["group_b"].astype(str)]
        parts.append(rows)
    effects = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if effects.empty:
        return typed_empty("effects", _EFFECT_DTYPES)
    effects["delta"] = effects["score_a"] - effects["score_b"]
    effects["label_a"] = object_labels(effects["label_a"])
    effects["label_b"] = object_labels(effects["label_b"])
    effects["flipped"] = flipped(effects["label_a"], effects["label_b"])
    effects = effects.sort_values(
        ["probe_set", "instance_id", "output", "position", "group_a", "group_b"], kind="mergesort"
    )
    effects = effects[TABLES["effects"]].reset_index(drop=True)
    return effects.astype({c: t for c, t in _EFFECT_DTYPES.items()})


# ---------------------------------------------------------------------------------------------
# Findings


@dataclass
class _Row:
    """One findings row before BH and significance."""

    probe_set: str
    attribute: str
    group_a: str
    group_b: str
    metric: str
    output: str
    doc_length: int | None
    position: float | None
    note: str | None = None
    effect: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    ci_method: str | None = None
    p_value: float = math.nan
    effect_size: float = math.nan
    n: int = 0
    threshold: float = math.nan
    q_value: float = math.nan
    significant: bool = False
    severity: str = "none"
    descriptive: bool = False
    """Keeps effect and interval but no p-value: never significant, not in the BH family."""


def _whole(value: object) -> int:
    """A groupby key known to be an integer (pandas types group keys as Hashable)."""
    return int(cast(SupportsInt, value))


def _real(value: object) -> float:
    """A groupby key known to be a number."""
    return float(cast(SupportsFloat, value))


def _shared_output(outputs: pd.Series) -> str:
    unique = outputs.astype(str).unique()
    return str(unique[0]) if len(unique) == 1 else KEY_GROUP


def _focus_lost(effects: pd.DataFrame, ex: pd.DataFrame) -> pd.Series:
    """Per effects row: the key (or swapped) sentence was truncated away in a compared variant."""
    if "focus_truncated" not in ex.columns:
        raise ValueError("examples is missing column 'focus_truncated' (the key sentence was cut away)")
    on = ["probe_set", "instance_id"]
    lost = pd.Series(False, index=effects.index)
    key_flags = ex.loc[~ex["is_swap"], [*on, "variant", "focus_truncated"]]
    keyed = (
        effects[[*on, "group_a"]]
        .reset_index()
        .merge(key_flags.rename(columns={"variant": "group_a"}), on=[*on, "group_a"], how="inner")
    )
    lost[keyed["index"].to_numpy()] = keyed["focus_truncated"].to_numpy(dtype=bool)
    swap_flags = ex.loc[ex["is_swap"], [*on, "swap_group", "position", "focus_truncated"]]
    for group in ("group_a", "group_b"):
        merged = (
            effects[[*on, group, "position"]]
            .reset_index()
            .merge(swap_flags.rename(columns={"swap_group": group}), on=[*on, group, "position"], how="inner")
        )
        index = merged["index"].to_numpy()
        lost[index] = lost[index].to_numpy() | merged["focus_truncated"].to_numpy(dtype=bool)
    return lost


def _repeated_positions(examples: pd.DataFrame) -> dict[tuple[str, int, float], float]:
    """Key positions whose documents are, in every instance, the documents of an earlier position:
    in a short document several positions fall on the same sentence boundary. Maps
    (probe_set, doc_length, position) to that earlier position."""
    if "text" not in examples.columns:
        return {}
    keyed = examples[examples["position"].notna() & examples["swap_group"].isna()]
    repeated: dict[tuple[str, int, float], float] = {}
    for (probe_set, doc_length), cell in keyed.groupby(["probe_set", "doc_length"]):
        texts = cell.pivot_table(index="instance_id", columns="position", values="text", aggfunc="first")
        positions = sorted(texts.columns)
        for later_index, later in enumerate(positions):
            for earlier in positions[:later_index]:
                if texts[later].equals(texts[earlier]):
                    repeated[(str(probe_set), _whole(doc_length), _real(later))] = _real(earlier)
                    break
    return repeated


def _truncation_note(n_lost: int, n: int, model_max_length: int, what: str) -> str | None:
    if n_lost == 0:
        return None
    if n_lost == n:
        return (
            f"{what} beyond the model's {model_max_length}-token limit: truncated away, "
            "so its effect is 0 by construction"
        )
    return f"{what} truncated away in {n_lost} of {n} instances"


def _test_columns(
    items: list[tuple[_Row, np.ndarray]], random: stats.RandomMatrices, options: TestOptions
) -> None:
    """Fill effect, CI, p-value, d_z and n of each row from its per-instance values (in place);
    columns with the same n share one bootstrap and one sign-flip matrix, as in paired.py. The
    p-value of a descriptive row is dropped."""
    results = stats.mean_tests(
        [values for _, values in items],
        random,
        confidence=options.confidence,
        n_permutations=options.n_permutations,
    )
    for (row, _), result in zip(items, results, strict=True):
        row.effect = result.effect
        row.ci_low, row.ci_high, row.ci_method = result.ci_low, result.ci_high, result.ci_method
        row.p_value = math.nan if row.descriptive else result.p_value
        row.effect_size = result.effect_size
        row.n = result.n


def _key_curves(keys: pd.DataFrame) -> dict[tuple[str, str, int], tuple[pd.DataFrame, str]]:
    """Per probe_set x attribute x doc_length: the instances x positions matrix of key deltas and
    the output the rows summarising it name."""
    curves = {}
    for (probe_set, attribute, doc_length), rows in keys.groupby(
        ["probe_set", "attribute", "doc_length"], sort=True
    ):
        curve = rows.pivot_table(index="instance_id", columns="position", values="delta", aggfunc="mean")
        key = (str(probe_set), str(attribute), _whole(doc_length))
        curves[key] = (curve.sort_index(axis=1), _shared_output(rows["output"]))
    return curves


def _split_effects(effects: pd.DataFrame, ex: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Key-sentence and identity-swap effects rows with finite deltas (and their truncation flag)."""
    frame = effects.copy()
    frame["position"] = pd.to_numeric(frame["position"], errors="coerce").astype(float)
    frame["doc_length"] = pd.to_numeric(frame["doc_length"], errors="coerce").astype("Int64")
    frame["delta"] = frame["delta"].astype(float)
    frame["output"] = frame["output"].astype(str)
    unplaced = frame[frame["position"].isna() | frame["doc_length"].isna()]
    if not unplaced.empty:
        raise ValueError(
            f"effects row of {_describe(unplaced)} has no position or doc_length: pass the rows of "
            "build_long_effects only"
        )
    swap_instances = ex.loc[ex["is_swap"], ["probe_set", "instance_id"]].drop_duplicates()
    flagged = frame.merge(swap_instances.assign(_swap=True), on=["probe_set", "instance_id"], how="left")
    flagged.index = frame.index
    is_swap = flagged["_swap"].fillna(False).astype(bool)
    is_key = ~is_swap & (frame["group_b"].astype(str) == KEY_BASELINE)
    stray = frame[~is_swap & ~is_key]
    if not stray.empty:
        raise ValueError(
            f"effects row of {_describe(stray)} is neither a key-sentence row (group_b {KEY_BASELINE!r}) "
            "nor an identity swap in examples"
        )
    frame["lost"] = _focus_lost(frame, ex)
    finite = np.isfinite(frame["delta"].to_numpy(dtype=float))
    return frame[is_key & finite], frame[is_swap & finite]


@dataclass(frozen=True)
class _Cells:
    """What the rows of one call are built with."""

    truncating: bool
    model_max_length: int
    min_effect: float


def _key_effect_rows(
    keys: pd.DataFrame, examples: pd.DataFrame, cells: _Cells
) -> tuple[list[tuple[_Row, np.ndarray]], dict[tuple[str, str, int, float], _Row]]:
    """key_effect rows per probe_set x attribute x doc_length x position, and the same rows by that key."""
    tested: list[tuple[_Row, np.ndarray]] = []
    key_rows: dict[tuple[str, str, int, float], _Row] = {}
    repeated = _repeated_positions(examples)
    for (probe_set, attribute, doc_length, position), rows in keys.groupby(
        ["probe_set", "attribute", "doc_length", "position"], sort=True
    ):
        row = _Row(
            probe_set=str(probe_set),
            attribute=str(attribute),
            group_a=str(rows["group_a"].iloc[0]),
            group_b=KEY_BASELINE,
            metric="key_effect",
            output=_shared_output(rows["output"]),
            doc_length=_whole(doc_length),
            position=_real(position),
            threshold=cells.min_effect,
        )
        if cells.truncating:
            n_lost = int(rows["lost"].sum())
            row.note = _truncation_note(n_lost, len(rows), cells.model_max_length, "key sentence")
            row.descriptive = n_lost == len(rows)  # 0 by construction: described, not tested
        earlier = repeated.get((row.probe_set, _whole(doc_length), _real(position)))
        if earlier is not None:  # the same documents as an earlier position: one test is enough
            same = (
                f"same documents as position {earlier:g}: at this length both fall on one sentence boundary"
            )
            row.note = same if row.note is None else f"{row.note}; {same}"
            row.descriptive = True
        key_rows[(row.probe_set, row.attribute, _whole(doc_length), _real(position))] = row
        tested.append((row, rows["delta"].to_numpy(dtype=float)))
    return tested, key_rows


def _middle_dip_rows(
    curves: dict[tuple[str, str, int], tuple[pd.DataFrame, str]], cells: _Cells
) -> list[tuple[_Row, np.ndarray]]:
    tested = []
    for (probe_set, attribute, doc_length), (curve, curve_output) in curves.items():
        dips = middle_dips(curve)
        if dips is None or dips.size == 0:
            continue
        row = _Row(
            probe_set=probe_set,
            attribute=attribute,
            group_a=ENDS_GROUP,
            group_b=MIDDLE_GROUP,
            metric="middle_dip",
            output=curve_output,
            doc_length=doc_length,
            position=None,
            threshold=cells.min_effect,
        )
        if cells.truncating and doc_length > cells.model_max_length:
            row.note = (
                f"documents of {doc_length} tokens exceed the model's {cells.model_max_length}-token limit: "
                "the end never reached the model, so this dip measures truncation, not position "
                "(descriptive: not tested; key_effect reports the truncation)"
            )
            row.descriptive = True
        tested.append((row, dips))
    return tested


_SWAP_PAIR = ["probe_set", "attribute", "group_a", "group_b"]


def _swap_rows(swaps: pd.DataFrame, cells: _Cells) -> list[tuple[_Row, np.ndarray]]:
    """swap_effect rows per pair x doc_length x position x output."""
    tested = []
    for (probe_set, attribute, group_a, group_b, doc_length, position, output), rows in swaps.groupby(
        [*_SWAP_PAIR, "doc_length", "position", "output"], sort=True
    ):
        row = _Row(
            probe_set=str(probe_set),
            attribute=str(attribute),
            group_a=str(group_a),
            group_b=str(group_b),
            metric="swap_effect",
            output=str(output),
            doc_length=_whole(doc_length),
            position=_real(position),
            threshold=cells.min_effect,
        )
        if cells.truncating:
            n_lost = int(rows["lost"].sum())
            row.note = _truncation_note(n_lost, len(rows), cells.model_max_length, "swapped sentence")
            row.descriptive = n_lost == len(rows)
        tested.append((row, rows["delta"].to_numpy(dtype=float)))
    return tested


def _pooled_swap_rows(swaps: pd.DataFrame, min_effect: float) -> list[tuple[_Row, np.ndarray]]:
    """swap_effect rows per pair x output over every length and position, one unit per swap sentence."""
    tested = []
    for (probe_set, attribute, group_a, group_b, output), rows in swaps.groupby(
        [*_SWAP_PAIR, "output"], sort=True
    ):
        kept = rows[~rows["lost"]]
        n_left_out = len(rows) - len(kept)
        lengths = ", ".join(str(int(v)) for v in sorted(rows["doc_length"].unique()))
        note = f"each swap sentence's mean over its positions and document lengths {lengths}"
        if n_left_out:
            note += f"; {n_left_out} (instance, position) pair(s) with the swapped sentence truncated away left out"
        # one unit per swap sentence: its instances at every length ("<swap id>-<length>") are one
        # sentence in longer or shorter filler, not independent observations
        swap_id = kept["instance_id"].str.rsplit("-", n=1).str[0]
        pooled = kept.groupby(swap_id)["delta"].mean().to_numpy(dtype=float)
        row = _Row(
            probe_set=str(probe_set),
            attribute=str(attribute),
            group_a=str(group_a),
            group_b=str(group_b),
            metric="swap_effect",
            output=str(output),
            doc_length=None,
            position=None,
            threshold=min_effect,
            note=note,
        )
        if pooled.size:
            tested.append((row, pooled))
    return tested


def _effective_context_rows(
    curves: dict[tuple[str, str, int], tuple[pd.DataFrame, str]],
    key_rows: dict[tuple[str, str, int, float], _Row],
    random: stats.RandomMatrices,
    confidence: float,
) -> list[_Row]:
    """effective_context per probe_set x attribute x doc_length (key rows already tested)."""
    context_rows = []
    for (probe_set, attribute, doc_length), (curve, curve_output) in curves.items():
        start = float(curve.columns.min())
        start_row = key_rows[(probe_set, attribute, doc_length, start)]
        row = _Row(
            probe_set=probe_set,
            attribute=attribute,
            group_a=KEY_GROUP,
            group_b=KEY_BASELINE,
            metric="effective_context",
            output=curve_output,
            doc_length=doc_length,
            position=None,
            n=int(curve.shape[0]),
        )
        if start_row.effect >= start_row.threshold:  # descriptive: needs a practical effect, not a test
            row.effect, row.ci_low, row.ci_high = effective_context(curve, doc_length, random, confidence)
            row.ci_method = stats.PERCENTILE_BOOTSTRAP
            row.note = "tokens; furthest position where the key still moves the output by >= half its effect at the start"
            if not start_row.significant:
                row.note += (
                    f" (the start effect is not significant with {start_row.n} keys: read it with care)"
                )
        else:
            row.note = (
                "the key sentence does not move the output even at the start of the document "
                f"(key_effect at position {start:g}: {start_row.effect:.3g}, below the {start_row.threshold:g} threshold)"
            )
        context_rows.append(row)
    return context_rows


def _model_context_rows(context_rows: list[_Row]) -> list[_Row]:
    """One effective_context row per probe_set x attribute: the largest over the document lengths."""
    model_rows = []
    for (probe_set, attribute), group in _by_probe_set(context_rows).items():
        reached = [row for row in group if math.isfinite(row.effect)]
        model_row = _Row(
            probe_set=probe_set,
            attribute=attribute,
            group_a=KEY_GROUP,
            group_b=KEY_BASELINE,
            metric="effective_context",
            output=_shared_output(pd.Series([row.output for row in group])),
            doc_length=None,
            position=None,
        )
        if reached:
            best = max(reached, key=lambda row: (row.effect, -(row.doc_length or 0)))
            model_row.effect, model_row.ci_low, model_row.ci_high = best.effect, best.ci_low, best.ci_high
            model_row.ci_method = best.ci_method
            model_row.n = best.n
            model_row.note = f"tokens; the largest effective context over the document lengths (at {best.doc_length} tokens)"
        else:
            model_row.n = max(row.n for row in group)
            model_row.note = (
                "the key sentence does not move the output even at the start, at any document length"
            )
        model_rows.append(model_row)
    return model_rows


def _test_family(rows: list[_Row], alpha: float) -> None:
    """q-value, significance and severity of the tested rows, as the long-document BH family (in place)."""
    tested = apply_family_test(
        pd.DataFrame(
            {
                "metric": [row.metric for row in rows],
                "effect": np.array([row.effect for row in rows], dtype=float),
                "p_value": np.array([row.p_value for row in rows], dtype=float),
                "threshold": np.array([row.threshold for row in rows], dtype=float),
            }
        ),
        alpha,
        LONG_DOCUMENT,
    )
    for row, q, flag, grade in zip(
        rows, tested["q_value"], tested["significant"], tested["severity"], strict=True
    ):
        row.q_value, row.significant, row.severity = float(q), bool(flag), str(grade)


def _check_long_arguments(model_max_length: int, strategy: str) -> None:
    if model_max_length < 1:
        raise ValueError(f"model_max_length must be at least 1, got {model_max_length}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")


def build_long_findings(
    effects: pd.DataFrame,
    examples: pd.DataFrame,
    options: TestOptions,
    *,
    model_max_length: int,
    strategy: str,
) -> pd.DataFrame:
    """The ``findings`` rows of long-document probe sets (see the module docstring).

    ``effects``: rows of ``build_long_effects``. ``examples``: the examples of the same sets
    with ``focus_truncated`` (the key / swapped sentence was cut away by truncation) and
    ``swap_group``. ``model_max_length``: the model's maximum input in tokens; ``strategy``:
    "truncate" or "window" (how inputs beyond it were scored; notes on truncation only for
    "truncate"). Rows are sorted by probe_set, metric (key_effect, effective_context,
    middle_dip, swap_effect), attribute, pair, output, doc_length, position (nulls last).
    Deterministic for a given ``options.seed``.
    """
    check_columns("effects", effects)
    require_columns(examples, [*_EXAMPLE_COLUMNS, "swap_group", "focus_truncated"], "examples")
    _check_long_arguments(model_max_length, strategy)
    if effects.empty:
        return typed_empty("findings", FINDING_DTYPES)
    ex = _normalised_examples(examples)
    keys, swaps = _split_effects(effects, ex)
    outputs_per_instance = keys.groupby(["probe_set", "instance_id"])["output"].nunique()
    if (outputs_per_instance > 1).any():
        probe_set, instance_id = outputs_per_instance[outputs_per_instance > 1].index[0]
        raise ValueError(
            f"key-sentence instance {instance_id!r} of probe set {probe_set!r} has several outputs"
        )
    # embedding swaps each compare with their own query ("sim:<swap id>"): pool them under one
    # output name per probe set, as key sentences are, or every swap row would hold one instance
    if not swaps.empty:
        own = swaps.groupby("probe_set")["output"].transform("nunique") > 1
        swaps = swaps.assign(output=swaps["output"].where(~own, "own query"))

    cells = _Cells(strategy == "truncate", model_max_length, options.min_effect)
    random = stats.RandomMatrices(options.seed, options.n_resamples)
    curves = _key_curves(keys)
    tested, key_rows = _key_effect_rows(keys, examples, cells)
    tested += _middle_dip_rows(curves, cells)
    tested += _swap_rows(swaps, cells)
    tested += _pooled_swap_rows(swaps, options.min_effect)
    _test_columns(tested, random, options)
    tested_rows = [row for row, _ in tested]
    _test_family(tested_rows, options.alpha)
    context_rows = _effective_context_rows(curves, key_rows, random, options.confidence)
    context_rows += _model_context_rows(context_rows)
    return _findings_frame(tested_rows + context_rows)


def _by_probe_set(rows: list[_Row]) -> dict[tuple[str, str], list[_Row]]:
    grouped: dict[tuple[str, str], list[_Row]] = {}
    for row in rows:
        grouped.setdefault((row.probe_set, row.attribute), []).append(row)
    return grouped


def _findings_frame(rows: list[_Row]) -> pd.DataFrame:
    if not rows:
        return typed_empty("findings", FINDING_DTYPES)
    frame = pd.DataFrame(
        {
            "probe_set": [row.probe_set for row in rows],
            "attribute": [row.attribute for row in rows],
            "group_a": [row.group_a for row in rows],
            "group_b": [row.group_b for row in rows],
            "metric": [row.metric for row in rows],
            "output": pd.Series([row.output for row in rows], dtype=object),
            "effect": [row.effect for row in rows],
            "ci_low": [row.ci_low for row in rows],
            "ci_high": [row.ci_high for row in rows],
            "ci_method": pd.Series([row.ci_method for row in rows], dtype=object),
            "p_value": [row.p_value for row in rows],
            "q_value": np.array([row.q_value for row in rows], dtype=float),
            "effect_size": [row.effect_size for row in rows],
            "n": np.array([row.n for row in rows], dtype=np.int64),
            "threshold": [row.threshold for row in rows],
            "significant": np.array([row.significant for row in rows], dtype=bool),
            "severity": [row.severity for row in rows],
            "doc_length": pd.array([row.doc_length for row in rows], dtype="Int64"),
            "position": [math.nan if row.position is None else row.position for row in rows],
            "note": pd.Series([row.note for row in rows], dtype=object),
        }
    )
    frame["_metric_rank"] = frame["metric"].map(METRIC_RANK)
    frame["_pair"] = np.where(
        frame["metric"] == "swap_effect", frame["group_a"] + "\x00" + frame["group_b"], ""
    )
    frame = frame.sort_values(
        ["probe_set", "_metric_rank", "attribute", "_pair", "output", "doc_length", "position"],
        kind="mergesort",
        na_position="last",
    )
    frame["subset"] = pd.Series(None, index=frame.index, dtype="object")
    return frame[TABLES["findings"]].reset_index(drop=True)
