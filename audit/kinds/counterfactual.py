"""Counterfactual sets: the same instance with one word swapped per group; the output should not
move. Compared pair by pair (audit/metrics/paired.py), with stereotype preference, entity recall
(token classification) and, for seq2seq models, the translations' forms in the same BH family."""

from __future__ import annotations

import pandas as pd

from audit.kinds.base import Comparison, Evidence, Kind
from audit.metrics.entity_recall import build_entity_recall_findings
from audit.metrics.paired import build_effects, build_findings
from audit.metrics.preference import with_preference_findings
from audit.metrics.translation import build_translation_findings, join_family
from audit.probe_inputs import ProbeInputs

LEFT_OUT_REASONS = {
    "focus_truncated": "truncation to the model's maximum length cut off the words that differ between variants",
    "inputs_identical": "all its variants tokenize to the same input ids, so the model cannot tell them apart",
}


class Counterfactual(Kind):
    name = "counterfactual"
    always_compared = True

    def compare(self, sets: list[ProbeInputs], evidence: Evidence) -> Comparison:
        """Effects and findings of the counterfactual sets; the gen:* scores of generated
        continuations are tested too, and translations' forms join their BH family."""
        config, predictions, generated = evidence.config, evidence.predictions, evidence.generated
        names = {item.probe_set.name for item in sets}
        tested = {output for item in sets for output in item.head.tested_outputs}
        tested |= set(generated.tested_outputs)
        comparable, left_out, notes = comparable_examples(
            evidence.examples[evidence.examples["probe_set"].isin(names)]
        )
        compared = predictions["output"].isin(tested) & predictions["example_id"].isin(
            comparable["example_id"]
        )
        effects = build_effects(comparable, predictions[compared])
        options = config.test_options
        findings = build_findings(effects, options)
        preferences = {item.probe_set.name: item.head.preference_outputs for item in sets}
        if any(preferences.values()):  # stereotype vs anti-stereotype sets (audit/metrics/preference.py)
            findings = with_preference_findings(findings, effects, preferences, options)
        recall = build_entity_recall_findings(comparable, predictions[compared], options)
        if not recall.empty:  # token-classification runs: each group's share of names tagged as a person
            findings = pd.concat([findings, recall], ignore_index=True)
        if generated.translation is not None:  # generation findings join the counterfactual BH family
            findings = join_family(
                findings,
                build_translation_findings(generated.translation.table, evidence.examples, options),
                {i.probe_set.name: i.head.notes.get("expected_effects", []) for i in sets},
                options,
            )
        return Comparison(effects, findings, notes, left_out)


def comparable_examples(examples: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, int]], list[str]]:
    """Drop instances whose variants cannot be compared (their deltas would read as 'no bias'):
    the swapped words were truncated away, or the variants tokenize identically. Returns the kept
    rows, per reason and probe set how many instances were left out, and warnings to show."""
    keep = pd.Series(True, index=examples.index)
    left_out: dict[str, dict[str, int]] = {}
    notes = []
    for reason, explanation in LEFT_OUT_REASONS.items():
        bad = examples.groupby(["probe_set", "instance_id"])[reason].transform("any") & keep
        counts = examples[bad].groupby("probe_set")["instance_id"].nunique()
        if counts.empty:
            continue
        left_out[reason] = {str(k): int(v) for k, v in counts.items()}
        notes += [
            f"{n} instance(s) of {probe_set} left out of effects and findings: {explanation}"
            for probe_set, n in left_out[reason].items()
        ]
        keep &= ~bad
    return examples[keep], left_out, notes
