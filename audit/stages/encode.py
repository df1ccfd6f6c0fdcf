"""encode: every probe set's variants as model inputs (one input, cut and flagged, or sliding
windows: audit/windows.py), and the examples table. Runs before the run folder exists: windows
that do not fit and colliding example ids are the user's to fix."""

from __future__ import annotations

import json

import pandas as pd

from audit.attribution import focus_token_mask
from audit.errors import UserError
from audit.probe_inputs import ProbeInputs
from audit.stages.progress import Timer
from audit.stages.state import Encoding, Prepared
from audit.tables import TABLES
from audit.targets import Target
from audit.tokenization import token_counts
from audit.windows import LongInputPolicy, encode_long, seen_until
from probes.schema import ProbeSet


def encode(prepared: Prepared, timer: Timer) -> Encoding:
    with timer.stage("encode"):
        sets = [encode_probe_set(s, prepared.target, prepared.policy) for s in prepared.probe_sets]
        return Encoding(sets, examples_table(sets))


def encode_probe_set(probe_set: ProbeSet, target: Target, policy: LongInputPolicy) -> ProbeInputs:
    variants = probe_set.variants
    texts = encode_long(target.tokenizer, [v.text for v in variants], target.max_length, policy)
    ids = [f"{probe_set.name}/{v.instance_id}/{v.variant}" for v in variants]
    focus_lost = [
        any(s.end > s.start for s in v.focus)
        and not any(
            any(focus_token_mask(window, [(s.start, s.end) for s in v.focus])) for window in text.windows
        )
        for v, text in zip(variants, texts, strict=True)
    ]
    partly_lost = [
        not lost and text.truncated and any(s.end > seen_until(text) for s in v.focus)
        for v, text, lost in zip(variants, texts, focus_lost, strict=True)
    ]
    ids_by_instance: dict[str, set[tuple[tuple[int, ...], ...]]] = {}
    for v, text in zip(variants, texts, strict=True):
        ids_by_instance.setdefault(v.instance_id, set()).add(tuple(tuple(w.input_ids) for w in text.windows))
    identical = [len(ids_by_instance[v.instance_id]) == 1 for v in variants]
    coverage = token_counts(target.tokenizer, [v.text for v in variants], [v.lang for v in variants])
    return ProbeInputs(
        probe_set, target.head(probe_set), ids, texts, focus_lost, identical, partly_lost, coverage
    )


def examples_table(inputs: list[ProbeInputs]) -> pd.DataFrame:
    rows = []
    for item in inputs:
        for example_id, variant, text, lost, identical, partly, coverage in zip(
            item.example_ids,
            item.probe_set.variants,
            item.texts,
            item.focus_lost,
            item.inputs_identical,
            item.focus_partly_lost,
            item.coverage,
            strict=True,
        ):
            rows.append(
                {
                    "example_id": example_id,
                    "probe_set": item.probe_set.name,
                    "instance_id": variant.instance_id,
                    "variant": variant.variant,
                    "attribute": variant.attribute,
                    "lang": variant.lang,
                    "text": variant.text,
                    "label": variant.label,
                    "focus": json.dumps([[s.start, s.end] for s in variant.focus]),
                    # tokens that reached the model: the cut input, or every token of a windowed text
                    "n_tokens": text.first.n_tokens if len(text.windows) == 1 else text.n_tokens,
                    "truncated": text.truncated,
                    "n_windows": len(text.windows),
                    "doc_length": variant.doc_length,
                    "position": variant.position,
                    "swap_group": variant.swap_group,
                    "n_text_tokens": coverage.n_text_tokens,
                    "n_words": coverage.n_words,
                    "n_chars": coverage.n_chars,
                    "n_unknown": coverage.n_unknown,
                    "n_unknown_chars": coverage.n_unknown_chars,
                    "n_byte_fallback": coverage.n_byte_fallback,
                    "focus_truncated": lost,
                    "inputs_identical": identical,
                    "focus_partly_truncated": partly,
                }
            )
    frame = pd.DataFrame(
        rows, columns=[*TABLES["examples"], "focus_truncated", "inputs_identical", "focus_partly_truncated"]
    )
    frame = frame.astype(
        {
            "doc_length": "Int64",
            "position": "float64",
            "swap_group": "string",
            "n_words": "Int64",
            "n_unknown_chars": "Int64",
        }
    )
    duplicated = frame.loc[frame["example_id"].duplicated(), "example_id"]
    if not duplicated.empty:
        raise UserError(
            f"example id {duplicated.iloc[0]!r} stands for two variants; '/' inside instance ids or "
            "variant names can make ids collide: rename them"
        )
    return frame
