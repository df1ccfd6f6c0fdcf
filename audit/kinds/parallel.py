"""Parallel (multilingual) sets: one meaning in several languages; each language is compared with
the reference language (audit/metrics/multilingual.py), the tokenizer's coverage of each language is
described, and languages the model cannot read are set apart. Explained further by the share of
attribution on content words."""

from __future__ import annotations

from typing import Any

import pandas as pd

from audit.config import AuditConfig
from audit.kinds.base import Comparison, Evidence, Explaining, Explanation, Kind
from audit.metrics.multilingual import (
    REFERENCE_SIMILARITY,
    build_language_findings,
    build_parallel_effects,
    build_parallel_findings,
    content_share_findings,
    mark_unreadable,
)
from audit.probe_inputs import ProbeInputs
from audit.tables import flags
from probes.schema import ProbeSet


class Parallel(Kind):
    name = "parallel"
    pairs_focus_attributions = False
    summary_order = 1

    def compare(self, sets: list[ProbeInputs], evidence: Evidence) -> Comparison:
        """Each language against the reference, the tokenizer's coverage of each language, and
        which languages the model cannot read; instances with a cut text are left out."""
        config, target = evidence.config, evidence.target
        names = {item.probe_set.name for item in sets}
        rows = evidence.examples[evidence.examples["probe_set"].isin(names)]
        compared = {output for item in sets for output in item.head.tested_outputs}
        compared.add(REFERENCE_SIMILARITY)
        predictions = evidence.predictions
        scored = predictions[
            predictions["example_id"].isin(rows["example_id"]) & predictions["output"].isin(compared)
        ]
        references = {item.probe_set.name: str(item.probe_set.reference_lang) for item in sets}
        # a text cut to the model's maximum compares a part with a whole: leave its instance out
        cut = rows.groupby(["probe_set", "instance_id"])["truncated"].transform("any")
        truncated = {
            str(k): int(v) for k, v in rows[cut].groupby("probe_set")["instance_id"].nunique().items()
        }
        notes = [
            f"{n} instance(s) of {probe_set} left out of the comparisons between languages: a text of theirs "
            "was cut to the model's maximum length (truncation_rate says which languages)"
            for probe_set, n in truncated.items()
        ]
        kept = rows[~cut]
        effects = build_parallel_effects(
            kept, scored[scored["example_id"].isin(kept["example_id"])], references
        )
        options = config.test_options
        findings = build_parallel_findings(effects, options, kept)
        labels = getattr(target, "labels", None)
        descriptions = build_language_findings(rows, scored, options, model_labels=labels)
        findings, unreadable = mark_unreadable(
            pd.concat([findings, descriptions], ignore_index=True), config.unknown_rate_limit, options
        )
        notes += unreadable_notes(unreadable, config.unknown_rate_limit)
        notes += unknown_label_notes(rows, labels)
        left_out = {"parallel_truncated": truncated} if truncated else {}
        return Comparison(effects, findings, notes, left_out, unreadable)

    def explain(self, sets: list[ProbeInputs], explaining: Explaining) -> Explanation:
        """content_attribution_share rows, from the token attributions (unknown tokens stay in:
        they stand for words the model could not read)."""
        config, examples, tokenizer = explaining.config, explaining.examples, explaining.target.tokenizer
        names = {item.probe_set.name for item in sets}
        rows = examples[examples["probe_set"].isin(names)]
        tokens = explaining.attributions[explaining.attributions["example_id"].isin(rows["example_id"])]
        special = set(tokenizer.all_special_tokens) - {tokenizer.unk_token}
        shares = content_share_findings(tokens, rows, special, config.test_options)
        unreadable = explaining.compared.unreadable_languages
        for index, row in shares.iterrows():
            rate = unreadable.get(str(row["probe_set"]), {}).get(str(row["group_a"]))
            if rate is not None:
                shares.at[index, "note"] = f"{row['note']}; {rate:.0%} of its tokens are unknown to the model"
        return Explanation(findings=shares)

    def manifest_entry(self, probe_set: ProbeSet, config: AuditConfig) -> dict[str, Any]:
        return {
            "reference_lang": probe_set.reference_lang,
            "languages": sorted({v.lang for v in probe_set.variants}),
        }

    def summary_lines(self, findings: pd.DataFrame, manifest: dict[str, Any]) -> list[str]:
        """Per parallel set: which languages differ from the reference, which the model cannot
        read, and how many tokens each language costs against the reference."""
        if findings.empty:
            return []
        lines = []
        unreadable = manifest.get("summary", {}).get("unreadable_languages", {})
        for probe_set, rows in findings[findings["attribute"] == "language"].groupby("probe_set"):
            reference = next(
                (e["reference_lang"] for e in manifest.get("probe_sets", []) if e.get("name") == probe_set),
                "?",
            )
            lines += language_lines(str(probe_set), rows, reference, unreadable.get(probe_set, {}))
        return lines


def unreadable_notes(unreadable: dict[str, dict[str, float]], limit: float) -> list[str]:
    return [
        f"{probe_set}: {', '.join(f'{lang} ({rate:.0%} unknown tokens)' for lang, rate in languages.items())} "
        f"unknown to the tokenizer (limit {limit:.0%}): the model cannot read "
        f"{'it' if len(languages) == 1 else 'them'}, so differences there are not bias findings"
        for probe_set, languages in unreadable.items()
    ]


def unknown_label_notes(rows: pd.DataFrame, labels: list[str] | None) -> list[str]:
    """Instances that expect a label the model does not have (label_accuracy leaves them out)."""
    stated = {str(label) for label in rows["label"].dropna()}
    if labels is None or not stated - set(labels):
        return []
    unknown = rows[rows["label"].isin(stated - set(labels))].groupby("probe_set")["instance_id"].nunique()
    return [
        f"{n} instance(s) of {probe_set} expect a label the model does not have "
        f"({', '.join(sorted(stated - set(labels)))}; its labels: {', '.join(labels)}): label_accuracy "
        "leaves them out"
        for probe_set, n in unknown.items()
    ]


def language_lines(probe_set: str, rows: pd.DataFrame, reference: str, gone: dict[str, float]) -> list[str]:
    """One parallel set's summary lines (``rows``: its findings about languages)."""
    lines = []
    parity = rows[rows["metric"] == "parity"]
    similarity = rows[rows["metric"] == "translation_similarity"]
    if len(parity):
        differ = parity[flags(parity["significant"])]
        shown = ", ".join(f"{r.group_a} {r.effect:+.3f}" for r in differ.itertuples())
        lines.append(
            f"{probe_set}: {differ['group_a'].nunique()} of {parity['group_a'].nunique()} languages score "
            f"significantly differently from {reference}" + (f" ({shown})" if shown else "")
        )
    if len(similarity):
        lowest = similarity.sort_values("effect").head(3)
        agreement = rows[rows["metric"] == "label_agreement"].set_index("group_a")["effect"]
        lines.append(
            f"{probe_set}: similarity to the {reference} text (and how often that text is the nearest), lowest: "
            + ", ".join(
                f"{r.group_a} {r.effect:.2f} ({agreement.get(r.group_a, float('nan')):.0%})"
                for r in lowest.itertuples()
            )
        )
    if gone:
        lines.append(
            f"{probe_set}: unreadable for this model (unknown tokens at or above the limit, not bias findings): "
            + ", ".join(f"{lang} {rate:.0%}" for lang, rate in gone.items())
        )
    ratio = rows[rows["metric"] == "token_ratio"].set_index("group_a")["effect"].sort_values(ascending=False)
    if len(ratio):
        lines.append(
            f"{probe_set}: tokens for the same statement against {reference}, most: "
            + ", ".join(f"{lang} {value:.1f}x" for lang, value in ratio.head(5).items())
        )
    return lines
