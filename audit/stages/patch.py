"""patch (--patching): activation patching of the pairs the explain stage attributes (the instances
with the largest effects, --attribute-top; audit.attribution.contrast.attributed_pairs), where a
pair's variants align token for token (as pair integrated gradients needs them).
Per pair, layer and token: the share of the pair's difference restored by patching b's activation
into a's run (audit/patching.py); then per probe set, layer and position relative to the swapped
words, the mean over instances with a bootstrap interval."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress

from audit.attribution.contrast import attributed_pairs
from audit.attribution.driver import baseline_token_of
from audit.attribution.pairs import aligned
from audit.batching import Encoded
from audit.config import AuditConfig
from audit.kinds.registry import KINDS
from audit.patching import (
    EFFECT_DTYPES,
    PATCHING_DTYPES,
    PairPatches,
    PatchPair,
    PatchSites,
    patch_pairs,
    patch_sites,
    patching_effects,
    relative_positions,
)
from audit.probe_inputs import ProbeInputs
from audit.stages.explain import top_instances
from audit.stages.progress import Timer, progress, warn
from audit.stages.state import Compared, Encoding, Patched, Scored
from audit.tables import TABLES, typed_empty
from audit.targets import Target
from audit.targets.seq2seq import Seq2SeqTarget

CONTEXT_NOTE = (
    "causal LM log-likelihood: the share of the part of the difference the context carries (a's tokens scored "
    "after b's words); the swapped tokens' own log-probabilities depend only on the shared tokens before them, "
    "so no activation can restore them"
)
ENCODER_NOTE = "encoder side: b's source activations in a's encoder run; the decoder scores a's targets"

SKIP_REASONS = {
    "unaligned": "their variants do not align token for token (different numbers of tokens, or special tokens at "
    "other places; patching needs position-aligned variants)",
    "windows": "a variant is scored as several windows (--long-inputs window)",
    "identical": "their variants have identical token ids",
}


@dataclass(frozen=True)
class _Pair:
    """One pair to patch, as the table names it."""

    instance_id: str
    group_a: str
    group_b: str
    output: str
    delta: float
    a: Encoded
    b: Encoded
    focus: list[bool]


def patch(
    encoding: Encoding,
    scored: Scored,
    compared: Compared,
    target: Target,
    config: AuditConfig,
    console: Console,
    timer: Timer,
) -> Patched:
    empty = Patched(typed_empty("patching", PATCHING_DTYPES), typed_empty("patching_effects", EFFECT_DTYPES))
    if not config.patching:
        return empty
    sets = [
        item
        for kind in KINDS.values()
        if kind.attributes_top_instances and kind.pairs_focus_attributions
        for item in encoding.sets
        if item.probe_set.kind == kind.name
    ]
    with progress(console) as bars, timer.stage("patching"):
        frames, warnings = [], []
        notes: dict[str, str | None] = {}
        for item in sets:
            try:
                sites = patch_sites(
                    target, prefix_tokens(target, item), appended=bool(item.probe_set.continuations)
                )
            except ValueError as error:
                empty.warnings.append(f"activation patching skipped: {error}")
                warn(console, empty.warnings)
                return empty
            pairs, skipped = aligned_pairs(item, scored, compared.effects, config.attribute_top)
            warnings += skip_warnings(item.name, skipped, len(pairs))
            if not pairs:
                continue
            frames.append(patch_set(item, pairs, sites, target, config, bars))
            notes[item.name] = family_note(target, item)
    table = (
        pd.concat(frames, ignore_index=True).astype(PATCHING_DTYPES)
        if frames
        else typed_empty("patching", PATCHING_DTYPES)
    )
    negligible = table.groupby(["probe_set", "instance_id", "group_a", "group_b"])["restored_fraction"].apply(
        lambda s: bool(s.isna().all())
    )
    if negligible.any():
        warnings.append(
            f"activation patching: {int(negligible.sum())} of {len(negligible)} patched pairs have no difference "
            "to restore (b's input scores as a's in a's run); their restored fractions are null"
        )
    attributes = {item.name: ", ".join(item.probe_set.attributes) for item in sets}
    effects = patching_effects(table, attributes, notes, config.test_options)
    warn(console, warnings)
    return Patched(table, effects, warnings)


def prefix_tokens(target: Target, item: ProbeInputs) -> int:
    """Positions a seq2seq task prefix adds after the leading special tokens (0: none)."""
    if not isinstance(target, Seq2SeqTarget) or not item.texts:
        return 0
    prefix = target.task_prefix(item.probe_set)
    encoded = item.texts[0].windows[0]
    return len(target.source_ids(encoded, prefix)) - len(encoded.input_ids)


def family_note(target: Target, item: ProbeInputs) -> str | None:
    """What the restored fraction is a share of, where that is not the finding's own difference."""
    if target.task == "seq2seq":
        return ENCODER_NOTE
    if target.task == "causal-lm" and not item.probe_set.continuations:
        return CONTEXT_NOTE
    return None


def aligned_pairs(
    item: ProbeInputs, scored: Scored, effects: pd.DataFrame, top: int | str
) -> tuple[list[_Pair], Counter[str]]:
    """The pairs the explain stage attributes (``attributed_pairs``: the same instances, output and
    refusals, so the patching and pair_attributions tables cover the same pairs) whose variants align
    token for token as pair integrated gradients needs them (``aligned``); and how many were left
    out why."""
    chosen = top_instances(effects, item.name, top)
    pairs, skipped = attributed_pairs(item, scored.sets[item.name], effects, chosen)
    patched: list[_Pair] = []
    for pair in pairs:
        a, b = pair.a, pair.b
        if list(a.input_ids) == list(b.input_ids):
            skipped["identical"] += 1
            continue
        if not aligned(a, b):
            skipped["unaligned"] += 1
            continue
        # aligned variants: the swapped tokens are exactly those whose ids differ (a focus span may
        # reach further, e.g. over a translation's shared words)
        focus = [x != y for x, y in zip(a.input_ids, b.input_ids, strict=True)]
        row = pair.row
        patched.append(
            _Pair(
                str(row["instance_id"]),
                str(row["group_a"]),
                str(row["group_b"]),
                str(row["output"]),
                float(row["delta"]),
                a,
                b,
                focus,
            )
        )
    return patched, skipped


def skip_warnings(probe_set: str, skipped: Counter[str], n_patched: int) -> list[str]:
    total = n_patched + sum(skipped.values())
    return [
        f"activation patching: {count} of {total} attributed pairs of {probe_set} left out: {SKIP_REASONS[reason]}"
        for reason, count in sorted(skipped.items())
    ]


def patch_set(
    item: ProbeInputs,
    pairs: list[_Pair],
    sites: PatchSites,
    target: Target,
    config: AuditConfig,
    bars: Progress,
) -> pd.DataFrame:
    """Patch one set's pairs: the patching table's rows."""
    index_of = {example_id: i for i, example_id in enumerate(item.example_ids)}
    task = bars.add_task(f"patch {item.name}", total=len(pairs))
    results = patch_pairs(
        item.head.forward,
        sites,
        [
            PatchPair(
                pair.a.input_ids,
                pair.b.input_ids,
                index_of[f"{item.name}/{pair.instance_id}/{pair.group_a}"],
                item.head.outputs.index(pair.output),
                leading_specials(pair.a),
            )
            for pair in pairs
        ],
        pad_id=baseline_token_of(target.tokenizer),
        device=target.device,
        batch_tokens=config.batch_tokens,
        on_done=lambda n: bars.advance(task, n),
    )
    return pd.concat(
        [
            pair_rows(item.name, pair, result, target.tokenizer)
            for pair, result in zip(pairs, results, strict=True)
        ],
        ignore_index=True,
    )


def leading_specials(encoded: Encoded) -> int:
    count = 0
    while count < len(encoded.special) and encoded.special[count]:
        count += 1
    return count


def pair_rows(probe_set: str, pair: _Pair, result: PairPatches, tokenizer: Any) -> pd.DataFrame:
    """One row per layer x token of one patched pair."""
    n_layers, n_tokens = result.patched.shape
    convert = tokenizer.convert_ids_to_tokens
    tokens_a = [str(t) for t in convert([int(i) for i in pair.a.input_ids])]
    tokens_b = [str(t) for t in convert([int(i) for i in pair.b.input_ids])]
    classes = relative_positions(pair.a.special, pair.focus)
    frame = pd.DataFrame(
        {
            "probe_set": probe_set,
            "instance_id": pair.instance_id,
            "group_a": pair.group_a,
            "group_b": pair.group_b,
            "output": pair.output,
            "layer": np.repeat(np.arange(n_layers), n_tokens),
            "token_index": np.tile(np.arange(n_tokens), n_layers),
            "token": tokens_a * n_layers,
            "token_b": tokens_b * n_layers,
            "is_focus": list(pair.focus) * n_layers,
            "relative_position": classes * n_layers,
            "score_a": result.score_a,
            "score_b": result.score_b,
            "score_patched": result.patched.ravel(),
            "restored_fraction": result.restored.ravel(),
            "delta": pair.delta,
        }
    )
    return frame[TABLES["patching"]]
