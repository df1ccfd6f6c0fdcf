"""Seq2seq probe sets: the model's own translations, which form they use, and the findings on them.

A seq2seq audit translates every variant of every set whose variants carry targets
(``translate_all``, greedy by default; ``--generate N`` samples N per variant with the causal LM
settings of audit/generation.py: temperature 1, top-p 0.95, one seed per instance shared by its
variants). Each translation is classified by the variant's ``target_words``: the target whose
words it uses (e.g. ``feminine``), or ``neither`` (none, or several). The rows go to the
``generations`` table with a ``form`` column.

Findings (``build_translation_findings``), per probe set, ``output`` "generation":

- ``generation_accuracy`` per group whose variants state a label (the form their source calls
  for): the share of its translations that use it; Wilson interval; descriptive (no p-value).
- ``generation_accuracy_gap`` per pair of such groups (a before b by name): the mean over instances
  of accuracy(a) - accuracy(b) (each variant's accuracy is the share of its samples that use its
  form), BCa bootstrap interval, two-sided sign-flip p-value, Cohen's d_z; threshold
  ``ACCURACY_GAP_THRESHOLD``. Its q-value is Benjamini-Hochberg over this row and every tested
  row of the counterfactual sets (``join_family``), so it is one more test of the run.
- ``generation_share`` per group without a label (``ambiguous`` sources) and target name
  (``output`` "generation:<name>"): the share of its translations that use that form (the model's
  default when nothing decides it); Wilson interval; descriptive.

``join_family`` also gives the rows of a set's *expected effects* severity "none" (kept tested and
flagged significant, like a long document's key effect): a translation set's gender_preference
differs between "her" and "his" sources when the model follows the pronoun, which is no bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd

from audit.errors import UserError
from audit.kinds.names import COUNTERFACTUAL
from audit.metrics import stats
from audit.metrics.family import apply_family_test
from audit.metrics.options import TestOptions
from audit.tables import TABLES, finding_row
from audit.targets.seq2seq import Seq2SeqTarget, generated_form
from probes.schema import ProbeSet
from probes.translation import NEITHER

ACCURACY_GAP_THRESHOLD = 0.05
"""A gap in the share of correctly gendered translations below 5 points is not called a finding."""
GENERATION_OUTPUT = "generation"
TEMPERATURE = 1.0
TOP_P = 0.95
"""Sampling settings, the same as for causal LMs (audit/generation.py)."""
_PURPOSE = 11
"""Random-stream purpose of these tests (audit/metrics/paired.py draws 0-3)."""


@dataclass(frozen=True)
class TranslationPlan:
    n_samples: int
    sample: bool
    max_new_tokens: int | None
    """None: per set, twice its longest target's tokens plus 8 (at least --max-new-tokens)."""
    floor: int
    seed: int

    def describe(self) -> dict[str, Any]:
        return {
            "n_samples": self.n_samples,
            "decoding": "sample" if self.sample else "greedy",
            "temperature": TEMPERATURE if self.sample else None,
            "top_p": TOP_P if self.sample else None,
            "max_new_tokens_rule": self.max_new_tokens
            or f"twice the longest target + 8, at least {self.floor}",
            "seed": self.seed,
            "scored_text": "each translation is classified by the probe set's target words (the form it uses)",
        }


def plan_translations(config: Any, target: Any) -> TranslationPlan | None:
    """How a seq2seq model's translations are made (None for other models): one greedy
    translation per variant, or ``--generate N`` samples (greedy with --greedy: one)."""
    if not isinstance(target, Seq2SeqTarget):
        return None
    if getattr(config, "generation_scorer", None):
        raise UserError(
            "--generation-scorer scores causal LM continuations; a seq2seq model's translations are classified "
            "by each probe set's target words instead, so leave the scorer out"
        )
    requested = int(getattr(config, "generate", 0) or 0)
    sample = bool(getattr(config, "sample", True)) and requested > 1
    n_samples = requested if sample else 1
    return TranslationPlan(
        n_samples, sample, None, int(getattr(config, "max_new_tokens", 20)), int(config.seed)
    )


@dataclass
class TranslationResult:
    table: pd.DataFrame
    """``generations`` rows (one per variant x sample) with the ``form`` each translation uses."""
    manifest: dict[str, Any]
    warnings: list[str]


def translate_all(
    items: Sequence[Any],
    target: Seq2SeqTarget,
    plan: TranslationPlan,
    batch_tokens: int,
    add_task: Callable[[str, int], Callable[[int], None]] | None = None,
) -> TranslationResult:
    """Translations of every variant of these probe inputs (``audit.probe_inputs.ProbeInputs`` of sets with
    targets), with the form each uses."""
    from audit.generation import instance_seed  # the causal LM's seeding, reused

    frames = []
    prefixes: dict[str, str | None] = {}
    limits: dict[str, int] = {}
    for item in items:
        probe_set: ProbeSet = item.probe_set
        variants = probe_set.variants
        if not any(v.targets for v in variants):
            continue
        prefixes[probe_set.name] = target.task_prefix(probe_set)
        sources = [text.first for text in item.texts]
        seeds = [instance_seed(plan.seed, probe_set.name, v.instance_id) for v in variants]
        limit = plan.max_new_tokens or max(plan.floor, target.default_max_new_tokens(probe_set))
        limits[probe_set.name] = limit
        on_done = add_task(f"translate {probe_set.name}", len(variants)) if add_task else None
        outputs = target.translate(
            probe_set,
            sources,
            n_samples=plan.n_samples,
            sample=plan.sample,
            seeds=seeds,
            max_new_tokens=limit,
            temperature=TEMPERATURE,
            top_p=TOP_P,
            batch_tokens=batch_tokens,
            on_done=on_done,
        )
        rows = [
            {
                "example_id": example_id,
                "sample": sample,
                "text": translation.text,
                "n_new_tokens": translation.n_new_tokens,
                "stopped": translation.stopped,
                "form": generated_form(translation.text, variant),
            }
            for example_id, variant, per_variant in zip(item.example_ids, variants, outputs, strict=True)
            for sample, translation in enumerate(per_variant)
        ]
        frames.append(pd.DataFrame(rows, columns=[*generation_columns(), "form"]))
    table = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*generation_columns(), "form"])
    )
    warnings = []
    unstopped = int((~table["stopped"].astype(bool)).sum()) if len(table) else 0
    if unstopped:
        warnings.append(
            f"{unstopped} of {len(table)} translations reached the token limit before ending: they may be cut "
            "(raise --max-new-tokens)"
        )
    manifest = {
        **plan.describe(),
        "n_generated": len(table),
        "n_unfinished": unstopped,
        # the model's own task prefix (T5), put before every source at scoring and generation; attention
        # statistics and attributions cover the source's tokens only
        "task_prefix": prefixes,
        "max_new_tokens": limits,
    }
    return TranslationResult(table, manifest, warnings)


def generation_columns() -> list[str]:
    """The ``generations`` table's contract columns (audit/tables.py)."""
    return list(TABLES.get("generations", ["example_id", "sample", "text", "n_new_tokens", "stopped"]))


# ------------------------------------------------------------------------------------------ findings


def build_translation_findings(
    generations: pd.DataFrame,
    examples: pd.DataFrame,
    options: TestOptions,
) -> pd.DataFrame:
    """Findings rows (without q-values) on the forms the translations use; see the module docstring.

    ``examples`` must hold the examples of the sets translated (example_id, probe_set,
    instance_id, variant, attribute, label); generations of other examples are ignored."""
    columns = TABLES["findings"]
    if generations.empty or "form" not in generations.columns:
        return pd.DataFrame(columns=columns)
    rows = generations.merge(
        examples[["example_id", "probe_set", "instance_id", "variant", "attribute", "label"]], on="example_id"
    )
    rows["correct"] = rows["form"] == rows["label"]
    random = stats.RandomMatrices(options.seed, options.n_resamples)
    out: list[dict[str, Any]] = []
    for (probe_set, attribute), group in rows.groupby(["probe_set", "attribute"], sort=True):
        forms = sorted(set(group["label"].dropna()) | (set(group["form"]) - {NEITHER}))
        labelled = group[group["label"].notna()]
        for variant, per_group in labelled.groupby("variant", sort=True):
            rate = stats.flip_rate_ci(
                per_group["correct"].to_numpy(dtype=bool), confidence=options.confidence
            )
            counts = per_group["form"].value_counts()
            described = ", ".join(f"{int(counts.get(f, 0))} {f}" for f in [*forms, NEITHER])
            out.append(
                finding_row(
                    probe_set=str(probe_set),
                    attribute=str(attribute),
                    group_a=str(variant),
                    group_b=None,
                    metric="generation_accuracy",
                    output=GENERATION_OUTPUT,
                    effect=rate.rate,
                    ci_low=rate.ci_low,
                    ci_high=rate.ci_high,
                    n=rate.n,
                    ci_method=stats.WILSON,
                    note=f"{rate.n_flipped} of {rate.n} translations use the expected form {per_group['label'].iloc[0]!r} ({described})",
                )
            )
        out += _gap_rows(str(probe_set), str(attribute), labelled, random, options)
        for variant, per_group in group[group["label"].isna()].groupby("variant", sort=True):
            for form in forms:
                rate = stats.flip_rate_ci(
                    (per_group["form"] == form).to_numpy(dtype=bool), confidence=options.confidence
                )
                out.append(
                    finding_row(
                        probe_set=str(probe_set),
                        attribute=str(attribute),
                        group_a=str(variant),
                        group_b=None,
                        metric="generation_share",
                        output=f"{GENERATION_OUTPUT}:{form}",
                        effect=rate.rate,
                        ci_low=rate.ci_low,
                        ci_high=rate.ci_high,
                        n=rate.n,
                        ci_method=stats.WILSON,
                        note=f"{rate.n_flipped} of {rate.n} translations of sources without a stated form use {form!r}",
                    )
                )
    frame = pd.DataFrame(out, columns=columns)
    return frame.astype({"n": "int64", "significant": "bool"}) if len(frame) else frame


def _gap_rows(
    probe_set: str,
    attribute: str,
    labelled: pd.DataFrame,
    random: stats.RandomMatrices,
    options: TestOptions,
) -> list[dict[str, Any]]:
    per_variant = labelled.groupby(["instance_id", "variant"])["correct"].mean().unstack("variant")
    groups = sorted(per_variant.columns)
    rows = []
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            deltas = (per_variant[a] - per_variant[b]).dropna().to_numpy(dtype=float)
            n = int(deltas.size)
            if n == 0:
                continue
            flips = stats.sign_flips(
                n, n_permutations=options.n_permutations, rng=random.rng(_PURPOSE + 1, n)
            )
            intervals, p_values, methods = stats.paired_mean_intervals(
                deltas[:, None], flips, partial(random.counts, n, _PURPOSE), options.confidence
            )
            (low, high), p = intervals[0], float(p_values[0])
            rows.append(
                finding_row(
                    probe_set=probe_set,
                    attribute=attribute,
                    group_a=str(a),
                    group_b=str(b),
                    metric="generation_accuracy_gap",
                    output=GENERATION_OUTPUT,
                    effect=float(deltas.mean()),
                    ci_low=float(low),
                    ci_high=float(high),
                    n=n,
                    ci_method=methods[0],
                    p_value=p,
                    effect_size=stats.cohens_dz(deltas) if n > 1 else math.nan,
                    threshold=ACCURACY_GAP_THRESHOLD,
                    note=f"accuracy of {a} minus {b}, paired by instance",
                )
            )
    return rows


def join_family(
    findings: pd.DataFrame,
    extra: pd.DataFrame,
    expected_effects: dict[str, list[str]],
    options: TestOptions,
) -> pd.DataFrame:
    """The counterfactual findings and ``extra`` rows as one BH family: q-values, significance and
    severity recomputed over every row with a p-value. Rows of a set's expected effects
    (probe set -> outputs, e.g. gender_preference of a translation set) keep their test but get
    severity "none" and a note saying why."""
    frames = [f for f in (findings, extra) if len(f)]
    if not frames:
        return findings
    joined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    joined = apply_family_test(joined, options.alpha, COUNTERFACTUAL)
    for probe_set, outputs in expected_effects.items():
        mask = (
            (joined["probe_set"] == probe_set)
            & joined["output"].isin(outputs)
            & (joined["metric"] == "mean_delta")
        )
        joined.loc[mask, "severity"] = "none"
        text = (
            "expected effect: a model that follows the pronoun moves this output between groups; the bias is "
            "in expected_probability and generation_accuracy_gap"
        )
        joined.loc[mask, "note"] = [text if pd.isna(n) else f"{n}; {text}" for n in joined.loc[mask, "note"]]
    return joined
