"""Long-document sets: a key sentence (or an identity swap) at several positions of filler
documents of several lengths; the output should depend on the key sentence, not on where it sits
(audit/metrics/long_context.py). Explained by sentence segments (forward passes only); attention is
measured on the key-sentence documents."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import pandas as pd
from rich.progress import Progress

from audit.attribution.segments import segment_attribution_rows
from audit.attribution.variants import token_attributions
from audit.config import AuditConfig
from audit.kinds.base import Comparison, Evidence, Explaining, Explanation, Kind
from audit.metrics.long_context import build_long_effects, build_long_findings
from audit.probe_inputs import ProbeInputs
from audit.tables import TABLES, flags
from audit.targets import Target
from audit.windows import EncodedText, seen_until
from probes.schema import ProbeSet, Span

LONG_ATTRIBUTION_METHODS = ("segment_ablation",)
"""Long documents are explained by sentence: each segment replaced by padding, one forward pass
each (no backward pass, so memory stays that of scoring), recorded in the manifest."""
MAX_SEGMENTS = 32


class LongDocument(Kind):
    name = "long_document"
    in_default_run = False
    attributes_top_instances = False

    def compare(self, sets: list[ProbeInputs], evidence: Evidence) -> Comparison:
        """The key sentence's effect by length and position, effective context, middle dip,
        identity swaps."""
        examples, predictions, target, config = (
            evidence.examples,
            evidence.predictions,
            evidence.target,
            evidence.config,
        )
        names = {item.probe_set.name for item in sets}
        rows = examples[examples["probe_set"].isin(names)]
        instance_outputs = pd.DataFrame(
            [
                {"probe_set": item.probe_set.name, "instance_id": instance.instance_id, "output": output}
                for item in sets
                for instance in item.probe_set.instances
                for output in item.head.outputs_of(instance)
            ],
            columns=["probe_set", "instance_id", "output"],
        )
        effects = build_long_effects(
            rows, predictions[predictions["example_id"].isin(rows["example_id"])], instance_outputs
        )
        findings = build_long_findings(
            effects,
            rows,
            config.test_options,
            model_max_length=target.max_length,
            strategy=config.long_inputs,
        )
        findings = note_partial_cuts(findings, rows)
        return Comparison(effects, findings, lost_key_notes(rows, target.max_length))

    def explain(self, sets: list[ProbeInputs], explaining: Explaining) -> Explanation:
        """Segment attributions (sentences; forward passes only, so memory stays that of one
        forward) for a few documents of each set; token rows only when asked for."""
        config, target, bars = explaining.config, explaining.target, explaining.bars
        segment_frames, token_frames = [], []
        for item in sets:
            selected = long_document_variants(item, explaining.compared.effects, config.long_attribute_top)
            if not selected:
                continue
            scores = explaining.scores[item.name]
            instances = {i.instance_id: i for i in item.probe_set.instances}
            variants = item.probe_set.variants
            output_names = [item.head.outputs_of(instances[variants[i].instance_id])[0] for i in selected]
            segment_frames.append(segment_rows(item, selected, output_names, target, config, bars))
            if config.long_token_attributions:
                token_frames.append(
                    token_attributions(item, scores, selected, output_names, target, config, bars)
                )
        segments = (
            pd.concat(segment_frames, ignore_index=True)
            if segment_frames
            else pd.DataFrame(columns=TABLES["segment_attributions"])
        )
        tokens = (
            pd.concat(token_frames, ignore_index=True)
            if token_frames
            else pd.DataFrame(columns=TABLES["attributions"])
        )
        return Explanation(segments=segments, tokens=tokens)

    def attention_variants(self, item: ProbeInputs) -> list[int]:
        """The key-sentence documents (where the key sentence's attention mass is the question),
        not the identity swaps."""
        keyed = {i.instance_id for i in item.probe_set.instances if i.role == "key_sentence"}
        return [index for index, v in enumerate(item.probe_set.variants) if v.instance_id in keyed]

    def manifest_entry(self, probe_set: ProbeSet, config: AuditConfig) -> dict[str, Any]:
        """How the set was built for this model and how it was explained."""
        spec = probe_set.long_document
        if spec is None:
            return {}
        variants = probe_set.variants
        return {
            "long_document": {
                "doc_lengths": sorted({v.doc_length for v in variants if v.doc_length is not None}),
                "positions": sorted({v.position for v in variants if v.position is not None}),
                "filler_source": spec.filler_source,
                "attributions": {
                    "methods": list(LONG_ATTRIBUTION_METHODS),
                    "max_segments": MAX_SEGMENTS,
                    "instances": config.long_attribute_top,
                    "token_level": config.long_token_attributions,
                },
            }
        }

    def summary_lines(self, findings: pd.DataFrame, manifest: dict[str, Any]) -> list[str]:
        """Per long-document set: in how many cells the key sentence moved the output, and the
        model's effective context against its limit."""
        if findings.empty:
            return []
        lines = []
        long_inputs = manifest.get("long_inputs", {})
        limit = long_inputs.get("max_length", "?")
        for probe_set, rows in findings[findings["metric"] == "key_effect"].groupby("probe_set"):
            moved = int(flags(rows["significant"]).sum())
            context = findings[
                (findings["probe_set"] == probe_set)
                & (findings["metric"] == "effective_context")
                & findings["doc_length"].isna()
            ]
            reach = context["effect"].iloc[0] if len(context) else float("nan")
            reach_text = "not measurable" if reach != reach else f"{reach:.0f} tokens"
            lines.append(
                f"{probe_set}: the key sentence moved the output in {moved} of {len(rows)} length x position "
                f"cells; effective context {reach_text} (model limit {limit}, {long_inputs.get('strategy', '?')})"
            )
        return lines


def lost_key_notes(rows: pd.DataFrame, max_length: int) -> list[str]:
    """Per set, the documents whose key sentence truncation cut off entirely."""
    notes = []
    keyed = rows[rows["position"].notna()]
    for probe_set, group in keyed.groupby("probe_set"):
        lost = int(group["focus_truncated"].sum())
        if lost:
            notes.append(
                f"{lost} of {len(group)} documents of {probe_set} lost their key sentence to truncation at the "
                f"model's {max_length}-token limit: its effect there is 0 by construction (see the findings' "
                "notes); --long-inputs window scores whole documents"
            )
    return notes


def note_partial_cuts(findings: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """key_effect / swap_effect cells where truncation cut the sentence in half say so: the model
    read only part of it there, so the effect is neither the whole sentence's nor 0."""
    partly = examples[examples["focus_partly_truncated"] & examples["position"].notna()]
    if partly.empty or findings.empty:
        return findings
    counts = partly.groupby(["probe_set", "doc_length", "position"])["instance_id"].nunique()
    findings = findings.copy()
    for index, row in findings[findings["metric"].isin(["key_effect", "swap_effect"])].iterrows():
        n = counts.get((row["probe_set"], row["doc_length"], row["position"]))
        if n:
            text = f"sentence partly cut off by truncation in {int(n)} instance(s): only its start reached the model"
            findings.at[index, "note"] = text if pd.isna(row["note"]) else f"{row['note']}; {text}"
    return findings


def long_document_variants(item: ProbeInputs, effects: pd.DataFrame, top: int) -> list[int]:
    """Variants given segment attributions: the ``top`` keys and the ``top`` swaps whose documents
    moved the output most (ranked apart: a swap's effect is a difference between groups, far smaller
    than a key's), at every length, at the first, middle and last position; documents whose key
    was cut away entirely are left out (nothing of it reached the model)."""
    rows = effects[effects["probe_set"] == item.probe_set.name]
    if rows.empty or top == 0:
        return []
    roles = {i.instance_id: i.role for i in item.probe_set.instances}
    ranked = rows.assign(
        size=rows["delta"].abs(),
        key=rows["instance_id"].str.rsplit("-", n=1).str[0],
        role=rows["instance_id"].map(roles),
    )
    keys: set[str] = set()
    for _, group in ranked.groupby("role"):
        keys |= set(group.groupby("key")["size"].max().sort_values(ascending=False).index[:top])
    positions = sorted({v.position for v in item.probe_set.variants if v.position is not None})
    chosen_positions = {positions[0], positions[len(positions) // 2], positions[-1]} if positions else set()
    return [
        index
        for index, variant in enumerate(item.probe_set.variants)
        if variant.instance_id.rsplit("-", 1)[0] in keys
        and variant.position in chosen_positions
        and not item.focus_lost[index]
    ]


def seen_text(text: str, encoded: EncodedText, focus: Sequence[Span]) -> tuple[str, list[tuple[int, int]]]:
    """The part of a text the model saw, and the key spans inside it: a truncated document is
    segmented where it was read, not over characters that never reached the model."""
    if not encoded.truncated:
        return text, [(s.start, s.end) for s in focus]
    reach = seen_until(encoded)
    return text[:reach], [(s.start, min(s.end, reach)) for s in focus if s.start < reach]


def segment_rows(
    item: ProbeInputs,
    selected: list[int],
    output_names: list[str],
    target: Target,
    config: AuditConfig,
    bars: Progress,
) -> pd.DataFrame:
    """Segment attributions of these variants of one set."""
    variants = item.probe_set.variants
    n_windows = sum(len(item.texts[i].windows) for i in selected)
    task = bars.add_task(f"segments {item.probe_set.name}", total=n_windows * len(LONG_ATTRIBUTION_METHODS))
    seen = [seen_text(variants[i].text, item.texts[i], variants[i].focus) for i in selected]
    return segment_attribution_rows(
        forward=item.head.forward,
        windows=[list(item.texts[i].windows) for i in selected],
        example_ids=[item.example_ids[i] for i in selected],
        texts=[text for text, _ in seen],
        key_spans=[spans for _, spans in seen],
        output_indices=[item.head.outputs.index(name) for name in output_names],
        output_names=item.head.outputs,
        methods=LONG_ATTRIBUTION_METHODS,
        aggregate=config.aggregate,
        pad_id=target.tokenizer.pad_token_id,
        device=target.device,
        max_segments=MAX_SEGMENTS,
        batch_tokens=config.batch_tokens,
        on_done=partial(bars.advance, task),
    )
