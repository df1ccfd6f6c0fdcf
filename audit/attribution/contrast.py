"""What explains the difference between two variants: the ``pair_attributions`` rows of one probe
set's attributed pairs (pair integrated gradients where the variants align token for token,
audit/attribution/pairs.py; word occlusion for every pair, audit/attribution/occlusion.py).

Like audit/attribution/variants.py it reads the run's inputs and settings (``ProbeInputs``, the
target, ``AuditConfig``), so ``audit.attribution`` does not export it; the explain stage calls it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from audit.attribution.driver import baseline_token_of
from audit.attribution.integrated import IntegrationSettings
from audit.attribution.occlusion import OcclusionPair, WordUnit, neutral_token, occlusion_values, word_units
from audit.attribution.pairs import (
    AlignedPair,
    PairAttribution,
    aligned,
    pair_integrated_gradients,
    pair_tolerance,
)
from audit.batching import Encoded
from audit.config import AuditConfig
from audit.probe_inputs import ProbeInputs, SetScores
from audit.tables import TABLES
from audit.targets import Target

PAIR_IG = "pair_integrated_gradients"
OCCLUSION = "occlusion"
PAIR_COLUMNS = ["probe_set", "instance_id", "group_a", "group_b", "output", "delta"]


@dataclass(frozen=True)
class Pair:
    """One attributed pair of variants of a set: their indices, encodings and the compared column."""

    row: dict[str, Any]
    """probe_set, instance_id, group_a, group_b, output, delta (the effects row)."""
    index_a: int
    index_b: int
    a: Encoded
    b: Encoded
    output_index: int


def explained_pairs(
    item: ProbeInputs, scores: SetScores, effects: pd.DataFrame, instance_ids: Sequence[str]
) -> pd.DataFrame:
    """The effects rows of these instances' pairs of groups (not "rest") on the output their
    variants' attributions explain (``ScoreHead.attribution_output``): PAIR_COLUMNS."""
    rows = effects[
        (effects["probe_set"] == item.name)
        & (effects["group_b"] != "rest")
        & effects["instance_id"].isin(list(instance_ids))
    ]
    if rows.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    index_of = {eid: i for i, eid in enumerate(item.example_ids)}
    wanted = set(map(str, instance_ids))
    outputs = {}
    for instance in item.probe_set.instances:
        if instance.instance_id not in wanted:
            continue
        indices = [index_of[f"{item.name}/{instance.instance_id}/{v.variant}"] for v in instance.variants]
        labels = [v.label for v in instance.variants]
        outputs[instance.instance_id] = item.head.attribution_output(labels, scores.scores[indices])
    chosen = rows[rows["output"] == rows["instance_id"].map(outputs)]
    return chosen[PAIR_COLUMNS].reset_index(drop=True)


def attributed_pairs(
    item: ProbeInputs, scores: SetScores, effects: pd.DataFrame, instance_ids: Sequence[str]
) -> tuple[list[Pair], Counter[str]]:
    """The one choice of pairs both the explain stage (pair_attributions) and the patch stage
    (patching) work on: these instances' pairs of groups on the explained output
    (``explained_pairs``) whose texts differ and are one model input each (``usable_pairs``); and
    how many were left out why ("windows", "identical"). Pair integrated gradients and patching
    further need the two to align token for token (``audit.attribution.pairs.aligned``)."""
    return usable_pairs(item, explained_pairs(item, scores, effects, instance_ids))


def pair_attribution_rows(
    item: ProbeInputs,
    scores: SetScores,
    chosen: Sequence[Pair],
    target: Target,
    config: AuditConfig,
    on_done: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """The ``pair_attributions`` rows of one set's pairs (``attributed_pairs``): occlusion for every
    pair; pair integrated gradients also where the two align token for token and integrated
    gradients is among the attribution methods."""
    if not chosen:
        return empty_pair_attributions()
    variants = item.probe_set.variants
    occlusion = [
        OcclusionPair(
            a=pair.a,
            b=pair.b,
            variant_a=pair.index_a,
            variant_b=pair.index_b,
            output_index=pair.output_index,
            score_a=float(scores.scores[pair.index_a, pair.output_index]),
            score_b=float(scores.scores[pair.index_b, pair.output_index]),
            units=word_units(variants[pair.index_a].text, variants[pair.index_b].text),
        )
        for pair in chosen
    ]
    neutral, _ = neutral_token(target.tokenizer)
    values = occlusion_values(
        item.head.forward,
        occlusion,
        neutral_id=neutral,
        pad_id=baseline_token_of(target.tokenizer),
        device=target.device,
        batch_tokens=config.batch_tokens,
    )
    rows: list[dict[str, Any]] = [
        row
        for pair, occluded, unit_values in zip(chosen, occlusion, values, strict=True)
        for row in occlusion_rows(pair, occluded.units, unit_values, item)
    ]
    if on_done is not None:
        on_done(len(chosen))
    if "integrated_gradients" in config.attribution_methods:
        rows += integrated_rows(item, chosen, target, config, on_done)
    return pair_frame(rows)


def usable_pairs(item: ProbeInputs, pairs: pd.DataFrame) -> tuple[list[Pair], Counter[str]]:
    """The pairs whose texts differ and are each one model input (sliding windows are left out),
    and how many were left out why ("windows", "identical")."""
    index_of = {eid: i for i, eid in enumerate(item.example_ids)}
    chosen = []
    skipped: Counter[str] = Counter()
    for record in pairs.to_dict("records"):
        row = {str(key): value for key, value in record.items()}
        prefix = f"{row['probe_set']}/{row['instance_id']}/"
        index_a, index_b = (
            index_of.get(prefix + str(row["group_a"])),
            index_of.get(prefix + str(row["group_b"])),
        )
        if index_a is None or index_b is None:
            continue
        text_a, text_b = item.texts[index_a], item.texts[index_b]
        if len(text_a.windows) != 1 or len(text_b.windows) != 1:
            skipped["windows"] += 1
            continue
        if item.probe_set.variants[index_a].text == item.probe_set.variants[index_b].text:
            skipped["identical"] += 1
            continue
        output_index = item.head.outputs.index(str(row["output"]))
        chosen.append(Pair(row, index_a, index_b, text_a.windows[0], text_b.windows[0], output_index))
    return chosen, skipped


def integrated_rows(
    item: ProbeInputs,
    chosen: Sequence[Pair],
    target: Target,
    config: AuditConfig,
    on_done: Callable[[int], None] | None,
) -> list[dict[str, Any]]:
    """Pair integrated gradients of the aligned pairs: their rows."""
    ready = [pair for pair in chosen if aligned(pair.a, pair.b)]
    if not ready:
        return []
    results = pair_integrated_gradients(
        item.head.forward,
        target.embedding_layer(),
        [AlignedPair(p.a, p.b, p.index_a, p.index_b, p.output_index) for p in ready],
        pad_id=baseline_token_of(target.tokenizer),
        device=target.device,
        settings=pair_settings(config),
        batch_tokens=config.batch_tokens,
        on_done=on_done,
    )
    return [
        row
        for pair, result in zip(ready, results, strict=True)
        for row in pair_rows(pair, result, item, target)
    ]


def pair_settings(config: AuditConfig) -> IntegrationSettings:
    """The run's integrated-gradients settings (--ig-steps, --ig-max-steps, --ig-rule), held to
    ``pair_tolerance`` of each pair's delta."""
    return IntegrationSettings(
        n_steps=config.ig_steps,
        max_steps=config.ig_max_steps,
        tolerance=pair_tolerance(config.ig_tolerance),
        rule=config.ig_rule,
    )


def pair_rows(pair: Pair, result: PairAttribution, item: ProbeInputs, target: Target) -> list[dict[str, Any]]:
    tokens_a = target.tokenizer.convert_ids_to_tokens([int(i) for i in pair.a.input_ids])
    tokens_b = target.tokenizer.convert_ids_to_tokens([int(i) for i in pair.b.input_ids])
    focus = [(s.start, s.end) for s in item.probe_set.variants[pair.index_a].focus]
    rows = []
    for index, (id_a, id_b) in enumerate(zip(pair.a.input_ids, pair.b.input_ids, strict=True)):
        start, end = pair.a.offsets[index]
        special = bool(pair.a.special[index])
        differs = id_a != id_b
        overlaps = any(start < f_end and f_start < end for f_start, f_end in focus)
        rows.append(
            {
                "unit_index": index,
                "text": f"{tokens_a[index]} → {tokens_b[index]}" if differs else str(tokens_a[index]),
                "char_start": None if special else int(start),
                "char_end": None if special else int(end),
                "spans": "[]" if special or end <= start else json.dumps([[int(start), int(end)]]),
                "is_focus": bool(differs or (not special and end > start and overlaps)),
                "attribution": float(result.attributions[index]),
            }
        )
    common = {
        "n_steps": result.n_steps,
        "completeness_error": result.completeness_error,
        "converged": result.converged,
    }
    return [{**pair_columns(pair, PAIR_IG), **row, **common} for row in rows]


def occlusion_rows(
    pair: Pair, units: Sequence[WordUnit], values: np.ndarray, item: ProbeInputs
) -> list[dict[str, Any]]:
    focus = [(s.start, s.end) for s in item.probe_set.variants[pair.index_a].focus]
    rows = []
    for index, (unit, value) in enumerate(zip(units, values, strict=True)):
        overlaps = any(s < f_end and f_start < e for s, e in unit.spans_a for f_start, f_end in focus)
        rows.append(
            {
                "unit_index": index,
                "text": unit.text,
                "char_start": min((s for s, _ in unit.spans_a), default=None),
                "char_end": max((e for _, e in unit.spans_a), default=None),
                "spans": json.dumps([[s, e] for s, e in unit.spans_a]),
                "is_focus": bool(unit.swapped or overlaps),
                "attribution": float(value),
            }
        )
    return [{**pair_columns(pair, OCCLUSION), **row} for row in rows]


def pair_columns(pair: Pair, method: str) -> dict[str, Any]:
    """The columns every row of one pair and method shares."""
    return {
        **{
            column: str(pair.row[column])
            for column in ("probe_set", "instance_id", "group_a", "group_b", "output")
        },
        "method": method,
        "pair_delta": float(pair.row["delta"]),
    }


def pair_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The table of these rows, with its dtypes (pair IG's columns null on occlusion rows)."""
    if not rows:
        return empty_pair_attributions()
    frame = pd.DataFrame(rows)
    for column in ("n_steps", "completeness_error", "converged"):
        if column not in frame.columns:
            frame[column] = None
    frame = frame[TABLES["pair_attributions"]]
    frame = frame.astype(
        {c: "object" for c in ("char_start", "char_end", "n_steps", "completeness_error", "converged")}
    )
    frame = frame.where(frame.notna(), None)
    return frame.astype(PAIR_DTYPES)


PAIR_DTYPES: dict[str, str] = {
    **dict.fromkeys(
        ("probe_set", "instance_id", "group_a", "group_b", "method", "output", "text", "spans"), "string"
    ),
    "unit_index": "int64",
    "char_start": "Int64",
    "char_end": "Int64",
    "is_focus": "bool",
    "attribution": "float64",
    "pair_delta": "float64",
    "n_steps": "Int64",
    "completeness_error": "Float64",
    "converged": "boolean",
}


def empty_pair_attributions() -> pd.DataFrame:
    """The table with no rows, its columns already typed."""
    return pd.DataFrame({c: pd.Series(dtype=PAIR_DTYPES[c]) for c in TABLES["pair_attributions"]})
