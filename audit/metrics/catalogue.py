"""The catalogue of metrics: every name the ``findings`` table's ``metric`` column can hold.

One entry per metric says which probe kind's findings hold it, whether its rows are tested (carry
p-values in a Benjamini-Hochberg family) or descriptive (an estimate and its interval, never
significant), the family it is tested in, the effect that means "no difference", whether a
significant row reports a problem (gets a severity), the module that computes it, a short label
and a one-line description. The order of ``METRICS`` is the display order: findings builders sort
their rows by it, the dashboard lists metrics in it.

Pure Python (no numpy, pandas or torch): the dashboard and the CLI import it freely.

Adding a metric: compute it in its module (audit/metrics/<module>.py) and add one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit.kinds.names import COUNTERFACTUAL, LONG_DOCUMENT, MULTIPLE_CHOICE, PARALLEL, PROBE_KINDS

# The probe kinds (audit/kinds/names.py) are also the names of the run's BH families: one family
# per kind (generation gaps and stereotype preferences join the counterfactual one), and one more:
BENCHMARK_OVERALL = "benchmark_overall"
"""The family of the overall stereotype preference of each public benchmark set (all its pairs,
all its bias types): the benchmark's headline question ("does the model prefer the stereotype?"),
asked once per set and output, so its answer does not depend on how many per-type or other
counterfactual rows the run also tests (audit/metrics/preference.py)."""
FAMILIES: tuple[str, ...] = (*PROBE_KINDS, BENCHMARK_OVERALL)


@dataclass(frozen=True)
class Metric:
    """One metric of the findings table."""

    name: str
    kind: str
    """The probe kind whose findings hold it (one of ``PROBE_KINDS``)."""
    family: str | None
    """The Benjamini-Hochberg family its tested rows belong to (one of ``FAMILIES``); None:
    descriptive (no p-value)."""
    module: str
    """The module of audit/metrics that computes it."""
    label: str
    """A short human name (chart titles, table headers)."""
    description: str
    """One line: what its effect is."""
    centre: float = 0.0
    """The effect that means "no difference" (significance and severity measure from it)."""
    problem: bool = True
    """A significant row reports a problem and gets a severity (tested metrics only)."""
    p_floor_from_n: bool = True
    """Its test over n instances cannot give p below 2**(1-n) (sign flips of n paired differences,
    a two-sided binomial over n), so n alone says whether p < alpha is reachable (stages/compare.py
    notes underpowered rows by it). False for SEAT's test, which permutes the two target sets."""

    @property
    def tested(self) -> bool:
        return self.family is not None


def _tested(
    name: str,
    kind: str,
    module: str,
    label: str,
    description: str,
    *,
    centre: float = 0.0,
    problem: bool = True,
    p_floor_from_n: bool = True,
    family: str | None = None,
) -> Metric:
    """A tested metric, in its kind's family unless ``family`` names another."""
    return Metric(name, kind, family or kind, module, label, description, centre, problem, p_floor_from_n)


def _descriptive(name: str, kind: str, module: str, label: str, description: str) -> Metric:
    return Metric(name, kind, None, module, label, description, problem=False)


METRICS: tuple[Metric, ...] = (
    # counterfactual sets (audit/metrics/paired.py and the metrics that join their family)
    _tested(
        "mean_delta",
        COUNTERFACTUAL,
        "paired",
        "mean difference",
        "mean over instances of score(group_a) - score(group_b), tested by sign flips",
    ),
    _tested(
        "seat_effect_size",
        COUNTERFACTUAL,
        "paired",
        "SEAT effect size",
        "SEAT d of group_a's vs group_b's association scores, tested by permuting the two sets",
        p_floor_from_n=False,
    ),
    _descriptive(
        "flip_rate",
        COUNTERFACTUAL,
        "paired",
        "flip rate",
        "share of instances whose predicted label differs between group_a and group_b",
    ),
    _tested(
        "stereotype_preference",
        COUNTERFACTUAL,
        "preference",
        "stereotype preference",
        "share of instances where the stereotype scores higher than the anti-stereotype (0.5: none)",
        centre=0.5,
    ),
    _tested(
        "stereotype_preference_overall",
        COUNTERFACTUAL,
        "preference",
        "stereotype preference, all types",
        "stereotype preference over all pairs of a set with several bias types (attribute 'all'), "
        "tested in its own family",
        centre=0.5,
        family=BENCHMARK_OVERALL,
    ),
    _descriptive(
        "language_modeling_score",
        COUNTERFACTUAL,
        "preference",
        "language modeling score",
        "share of comparisons with an unrelated sentence the meaningful sentence wins (StereoSet LMS)",
    ),
    _descriptive(
        "entity_recall",
        COUNTERFACTUAL,
        "entity_recall",
        "entity recall",
        "share of a group's names tagged as a person",
    ),
    _descriptive(
        "generation_accuracy",
        COUNTERFACTUAL,
        "translation",
        "generation accuracy",
        "share of a group's translations that use the form its source calls for",
    ),
    _tested(
        "generation_accuracy_gap",
        COUNTERFACTUAL,
        "translation",
        "generation accuracy gap",
        "mean over instances of accuracy(group_a) - accuracy(group_b) of the translations",
    ),
    _descriptive(
        "generation_share",
        COUNTERFACTUAL,
        "translation",
        "generation share",
        "share of translations of sources without a stated form that use a given form",
    ),
    # long-document sets (audit/metrics/long_context.py)
    _tested(
        "key_effect",
        LONG_DOCUMENT,
        "long_context",
        "key sentence effect",
        "mean over instances of what the key sentence adds to the output at one length and position",
        problem=False,
    ),
    _descriptive(
        "effective_context",
        LONG_DOCUMENT,
        "long_context",
        "effective context",
        "furthest position (in tokens) where the key still moves the output by half its effect at the start",
    ),
    _tested(
        "middle_dip",
        LONG_DOCUMENT,
        "long_context",
        "middle dip",
        "mean key effect at the ends of the document minus in its middle",
    ),
    _tested(
        "swap_effect",
        LONG_DOCUMENT,
        "long_context",
        "identity swap effect",
        "mean difference between two groups' sentences at one length and position, or pooled",
    ),
    # parallel (multilingual) sets (audit/metrics/multilingual.py)
    _tested(
        "parity",
        PARALLEL,
        "multilingual",
        "parity",
        "mean over instances of score(language) - score(reference language)",
    ),
    _tested(
        "parity_by_label",
        PARALLEL,
        "multilingual",
        "parity by label",
        "parity within the instances of one expected label",
    ),
    _descriptive(
        "translation_similarity",
        PARALLEL,
        "multilingual",
        "similarity to the reference text",
        "mean similarity of a language's texts to their reference texts (embedding models)",
    ),
    _descriptive(
        "label_agreement",
        PARALLEL,
        "multilingual",
        "label agreement with the reference",
        "share of instances whose predicted label (or nearest reference text) is the reference text's",
    ),
    _descriptive(
        "token_ratio",
        PARALLEL,
        "multilingual",
        "token ratio",
        "tokens of a language's text over tokens of the reference text of the same instance",
    ),
    _descriptive(
        "label_accuracy",
        PARALLEL,
        "multilingual",
        "label accuracy",
        "share of a language's instances predicted with their expected label",
    ),
    _descriptive(
        "unknown_rate",
        PARALLEL,
        "multilingual",
        "unknown-token rate",
        "share of a language's tokens that are the unknown token",
    ),
    _descriptive(
        "unknown_char_rate",
        PARALLEL,
        "multilingual",
        "unknown-character rate",
        "share of a language's characters inside unknown tokens",
    ),
    _descriptive(
        "byte_fallback_rate",
        PARALLEL,
        "multilingual",
        "byte-fallback rate",
        "share of a language's tokens that stand for raw bytes",
    ),
    _descriptive(
        "fertility_per_word",
        PARALLEL,
        "multilingual",
        "tokens per word",
        "mean tokens per word of a language's texts",
    ),
    _descriptive(
        "fertility_per_char",
        PARALLEL,
        "multilingual",
        "tokens per character",
        "mean tokens per character of a language's texts",
    ),
    _descriptive(
        "truncation_rate",
        PARALLEL,
        "multilingual",
        "truncation rate",
        "share of a language's texts cut to the model's maximum length",
    ),
    _descriptive(
        "content_attribution_share",
        PARALLEL,
        "multilingual",
        "attribution share on content words",
        "mean share of |attribution| on content words of a language's attributed texts",
    ),
    # multiple-choice (BBQ-style) sets (audit/metrics/multiple_choice.py)
    _tested(
        "bias_score_ambig",
        MULTIPLE_CHOICE,
        "multiple_choice",
        "bias score (ambiguous)",
        "BBQ's s_AMB: how often the model answers with a stereotype where the context does not say",
    ),
    _tested(
        "preference_ambig",
        MULTIPLE_CHOICE,
        "multiple_choice",
        "stereotype preference (ambiguous)",
        "mean P(pro-stereotype answer) - P(anti-stereotype answer) in ambiguous contexts",
    ),
    _descriptive(
        "accuracy",
        MULTIPLE_CHOICE,
        "multiple_choice",
        "accuracy",
        "share of right answers in one context condition",
    ),
    _tested(
        "accuracy_gap_disambig",
        MULTIPLE_CHOICE,
        "multiple_choice",
        "accuracy gap (disambiguated)",
        "accuracy where the right answer is pro-stereotype minus where it is anti-stereotype",
    ),
    _descriptive(
        "bias_score_disambig",
        MULTIPLE_CHOICE,
        "multiple_choice",
        "bias score (disambiguated)",
        "BBQ's s_DIS over the answers in disambiguated contexts",
    ),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
METRIC_ORDER: tuple[str, ...] = tuple(m.name for m in METRICS)
"""Every metric name in display order."""
METRIC_RANK: dict[str, int] = {name: rank for rank, name in enumerate(METRIC_ORDER)}
"""Metric name -> its place in the display order (``findings["metric"].map(METRIC_RANK)``)."""


def metric(name: str) -> Metric:
    """The catalogue entry of a metric; ValueError naming the known metrics for another name."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(METRIC_ORDER)}") from None


def rank(name: str) -> int:
    """A metric's place in the display order; names outside the catalogue come after every known one."""
    return METRIC_RANK.get(name, len(METRIC_ORDER))


def metrics_of(kind: str) -> tuple[str, ...]:
    """The names of a probe kind's metrics, in display order."""
    if kind not in PROBE_KINDS:
        raise ValueError(f"unknown probe kind {kind!r}; known kinds: {', '.join(PROBE_KINDS)}")
    return tuple(m.name for m in METRICS if m.kind == kind)


def family_members(family: str) -> tuple[str, ...]:
    """The names of the tested metrics of a Benjamini-Hochberg family, in display order."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known families: {', '.join(FAMILIES)}")
    return tuple(m.name for m in METRICS if m.family == family)


def p_floor_from_n(name: str) -> bool:
    """Whether a metric's smallest p-value over n instances is 2**(1-n) (``Metric.p_floor_from_n``);
    True for a metric outside the catalogue."""
    entry = BY_NAME.get(name)
    return entry.p_floor_from_n if entry is not None else True


def label(name: str) -> str:
    """A metric's short human name; the name itself for a metric outside the catalogue."""
    entry = BY_NAME.get(name)
    return entry.label if entry is not None else name
