"""Pure pandas steps behind the pages: filters, rankings, averages and comparisons of run tables."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import pandas as pd

from audit.metrics.catalogue import BY_NAME, rank
from audit.tables import flags, interval_text

SEVERITY_ORDER = ("none", "low", "medium", "high")
ATTENTION_STATS = ("entropy", "focus_mass", "special_mass", "sink_mass", "mean_distance")
FINDING_KEY = ["probe_set", "attribute", "group_a", "group_b", "metric", "output"]


def present_values(frame: pd.DataFrame, column: str, order: Iterable[str] = ()) -> list[str]:
    """Distinct non-null values of a column as text; values named in ``order`` first, in that order."""
    if column not in frame.columns or frame.empty:
        return []
    values = {str(v) for v in frame[column].dropna().unique()}
    ordered = [v for v in order if v in values]
    return ordered + sorted(values.difference(ordered))


@dataclass(frozen=True)
class FindingsFilter:
    """What the findings page shows; an empty selection means every value."""

    probe_sets: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    significant_only: bool = False

    def apply(self, findings: pd.DataFrame) -> pd.DataFrame:
        keep = pd.Series(True, index=findings.index)
        for column, chosen in (
            ("probe_set", self.probe_sets),
            ("attribute", self.attributes),
            ("metric", self.metrics),
            ("output", self.outputs),
            ("severity", self.severities),
        ):
            if chosen:
                keep &= findings[column].astype("string").isin(chosen).fillna(False).astype(bool)
        if self.significant_only:
            keep &= flags(findings["significant"])
        return findings[keep]


def metric_outputs(findings: pd.DataFrame) -> list[tuple[str, str]]:
    """The (metric, output) pairs of the findings, metrics in the catalogue's display order
    (audit/metrics/catalogue.py; unknown metrics last), then by name and output; a null output is ""."""
    metrics = findings["metric"].fillna("").astype(str)
    outputs = findings["output"].fillna("").astype(str)  # flip rates may name no output
    pairs = dict.fromkeys(zip(metrics, outputs, strict=True))
    return sorted(pairs, key=lambda pair: (rank(pair[0]), pair))


def metric_description(metric: str) -> str | None:
    """One line on what a metric's effect is, and whether it is tested (None for an unknown metric)."""
    entry = BY_NAME.get(metric)
    if entry is None:
        return None
    how = "tested" if entry.tested else "descriptive: no p-value, never significant"
    return f"{entry.name}: {entry.description} ({how})."


def sort_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """Significant first, then by q-value and by size of the effect."""
    order = findings.assign(
        _significant=flags(findings["significant"]),
        _abs_effect=pd.to_numeric(findings["effect"], errors="coerce").abs(),
    )
    order = order.sort_values(["_significant", "q_value", "_abs_effect"], ascending=[False, True, False])
    return order.drop(columns=["_significant", "_abs_effect"])


def with_interval_text(findings: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """The findings with an ``interval`` column right after ``ci_high``: the interval as text, as the
    CLI prints it ("unbounded (n = 4: too few instances ...)" where the test cannot bound it, whose
    ci_low / ci_high are -inf / inf and would read as bare infinities)."""
    text = [
        interval_text(low, high, n, confidence)
        for low, high, n in zip(findings["ci_low"], findings["ci_high"], findings["n"], strict=True)
    ]
    where = (
        list(findings.columns).index("ci_high") + 1
        if "ci_high" in findings.columns
        else len(findings.columns)
    )
    out = findings.copy()
    out.insert(where, "interval", pd.Series(text, index=findings.index, dtype=object))
    return out


def unbounded(findings: pd.DataFrame) -> pd.Series:
    """Rows whose interval has an infinite end (the test could not bound it)."""
    low = pd.to_numeric(findings["ci_low"], errors="coerce")
    high = pd.to_numeric(findings["ci_high"], errors="coerce")
    return pd.Series((low == -float("inf")) | (high == float("inf")), index=findings.index)


def pair_label(frame: pd.DataFrame) -> pd.Series:
    """'probe_set · attribute: group_a vs group_b' per row ('probe_set: ...' when both names agree)."""
    probe_set, attribute = frame["probe_set"].astype(str), frame["attribute"].astype(str)
    where = probe_set.where(probe_set == attribute, probe_set + " · " + attribute)
    return where + ": " + frame["group_a"].astype(str) + " vs " + frame["group_b"].astype(str)


def rank_instances(effects: pd.DataFrame, examples: pd.DataFrame, probe_set: str) -> pd.DataFrame:
    """Instances of a probe set, largest |delta| (over its pairs and outputs) first.

    Instances without effects (a run that stopped before scoring) come last with a null max_abs_delta.
    Columns: instance_id, attribute, max_abs_delta.
    """
    in_set = examples[examples["probe_set"] == probe_set]
    instances = in_set.drop_duplicates("instance_id")[["instance_id", "attribute"]]
    set_effects = effects[effects["probe_set"] == probe_set]
    largest = (
        pd.to_numeric(set_effects["delta"], errors="coerce")
        .abs()
        .groupby(set_effects["instance_id"])
        .max()
        .rename("max_abs_delta")
    )
    ranked = instances.merge(largest, how="left", left_on="instance_id", right_index=True)
    return ranked.sort_values("max_abs_delta", ascending=False, na_position="last").reset_index(drop=True)


def example_scores(predictions: pd.DataFrame, example_id: str) -> tuple[pd.DataFrame, str | None]:
    """One example's scores (columns output, score) and its predicted label (None when there is none)."""
    rows = predictions[predictions["example_id"] == example_id]
    labels = rows["label"].dropna()
    label = str(labels.iloc[0]) if len(labels) else None
    return rows[["output", "score"]].reset_index(drop=True), label


def attention_means(
    attention: pd.DataFrame, stat: str, example_ids: Collection[str] | None = None
) -> pd.DataFrame:
    """Mean of one statistic per layer and head over the chosen examples (None: all).

    Columns: layer, head, value, n_examples.
    """
    rows = attention[attention["stat"] == stat]
    if example_ids is not None:
        rows = rows[rows["example_id"].isin(list(example_ids))]
    rows = rows.assign(value=pd.to_numeric(rows["value"], errors="coerce"))
    grouped = rows.groupby(["layer", "head"], as_index=False).agg(
        value=("value", "mean"), n_examples=("example_id", "nunique")
    )
    return grouped.sort_values(["layer", "head"]).reset_index(drop=True)


def attention_difference(
    attention: pd.DataFrame, stat: str, example_ids_a: Collection[str], example_ids_b: Collection[str]
) -> pd.DataFrame:
    """Per layer and head, mean over examples a minus mean over examples b. Columns: layer, head, value."""
    means_a = attention_means(attention, stat, example_ids_a)
    means_b = attention_means(attention, stat, example_ids_b)
    both = means_a.merge(means_b, on=["layer", "head"], suffixes=("_a", "_b"))
    return both.assign(value=both["value_a"] - both["value_b"])[["layer", "head", "value"]]


def compare_findings(findings_a: pd.DataFrame, findings_b: pd.DataFrame) -> pd.DataFrame:
    """Tests present in both runs (same probe set, attribute, pair, metric and output), side by side.

    Columns: the key, effect_a, effect_b, change (b - a), significant_a, significant_b.
    """
    columns = ["effect", "ci_low", "ci_high", "q_value", "significant"]
    left = findings_a[FINDING_KEY + columns].drop_duplicates(FINDING_KEY)
    right = findings_b[FINDING_KEY + columns].drop_duplicates(FINDING_KEY)
    both = left.merge(right, on=FINDING_KEY, suffixes=("_a", "_b"))
    both["change"] = pd.to_numeric(both["effect_b"], errors="coerce") - pd.to_numeric(
        both["effect_a"], errors="coerce"
    )
    both["significant_a"] = flags(both["significant_a"])
    both["significant_b"] = flags(both["significant_b"])
    ordered = FINDING_KEY + [
        "effect_a",
        "effect_b",
        "change",
        "ci_low_a",
        "ci_high_a",
        "ci_low_b",
        "ci_high_b",
        "q_value_a",
        "q_value_b",
        "significant_a",
        "significant_b",
    ]
    return both[ordered].reset_index(drop=True)
