"""Paired effects between the variants of each instance, and the findings tested on them.

``build_effects`` turns the long ``examples`` and ``predictions`` tables into the ``effects``
table; ``build_findings`` tests the effects and gives the ``findings`` table (audit/tables.py).

Conventions:

- Group order: within an instance the groups are sorted by name; ``group_a`` is the earlier
  name, so ``delta = score_a - score_b`` always points the same way across instances and runs.
- "rest": when an instance has more than two groups (for one output), each group is also
  compared with the mean score of the instance's other groups (``group_b = "rest"``;
  ``label_b`` and ``flipped`` are null there). A group literally named "rest" is an error.
  These rows are descriptive (effect and CI, no p-value, never significant): each is a linear
  combination of the pairwise rows, and one shifted group moves every other group's "rest"
  contrast by effect/(k-1), so testing them would count one effect several times and flag
  groups that have none.
- Findings, per probe_set x attribute x (group_a, group_b):
  * ``mean_delta`` per output: mean delta over instances, two-sided sign-flip p-value, an interval
    that agrees with it (``stats.paired_mean_intervals``: the inverted sign-flip test up to n = 29,
    BCa above unless BCa and the test disagree; ``ci_method`` says which), Cohen's d_z as
    effect_size, threshold = ``min_effect`` (score units).
  * ``seat_effect_size`` per ``assoc:*`` output (named pairs only, not "rest": "rest" is a mean
    of items, not an item of a target set): SEAT d of group_a's vs group_b's association scores,
    two-sided partition permutation p-value (the SEAT test of Caliskan et al. / May et al.: the
    two target sets are exchangeable, pairing is ignored), and an interval that agrees with it: up to
    n = 29 the test inverted over shifts of X's scores (the same partitions; the shift interval
    divided by the pooled sd of the unshifted scores, ``ci_method`` "permutation inversion": in d's
    units but only approximately an interval of d, since a shift also changes the pooled sd d divides
    by; it contains 0 exactly when the test does not reject), above a percentile bootstrap resampling
    the two sets independently, inverted where the two disagree; threshold 0.2 (Cohen's "small").
    The paired question is answered, with more power, by the mean_delta row of the same output.
  * ``flip_rate`` once per pair (flips are per predicted label, the same for every output; the
    row's ``output`` is null): rate and Wilson CI, descriptive only: no p-value, no q-value,
    threshold NaN, never significant (see audit/metrics/stats.py for why).
- ``q_value``: Benjamini-Hochberg across every row of the run that has a p-value.
- ``significant``: ``q_value < alpha`` and ``|effect| >= threshold``.
- ``severity``: "none" unless significant; then by ``|effect| / threshold``: below 2 "low",
  below 4 "medium", 4 or more "high" (for SEAT d: 0.2-0.4 low, 0.4-0.8 medium, >= 0.8 high).
  ``min_effect=0`` switches the practical gate off; the ratio is then infinite and every
  significant mean_delta row is "high", so prefer a positive threshold.
- Randomness: every random matrix is drawn from ``default_rng([seed, purpose, n])``, so a
  row's numbers depend only on the seed, its n and its data, not on the other rows.
  Instances whose delta is NaN are left out of a test (``n`` counts the ones used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from audit.kinds.names import COUNTERFACTUAL
from audit.metrics import stats
from audit.metrics.catalogue import METRIC_RANK
from audit.metrics.family import apply_family_test
from audit.metrics.options import TestOptions
from audit.tables import FINDING_DTYPES, TABLES, check_columns, require_columns, typed_empty

REST = "rest"
"""group_b of the comparison of one group with the mean of the instance's other groups."""

ASSOCIATION_PREFIX = "assoc:"
SEAT_THRESHOLD = 0.2

_PARTITIONS, _BOOTSTRAP_SECOND_SET = 2, 3
"""Purposes of the SEAT draws (stats.mean_tests draws 0 and 1)."""

_EXAMPLE_COLUMNS = ["example_id", "probe_set", "instance_id", "variant", "attribute"]
_PREDICTION_COLUMNS = ["example_id", "output", "score", "label"]
_INSTANCE_KEY = ["probe_set", "instance_id", "attribute", "output"]


def object_labels(series: pd.Series) -> pd.Series:
    """Labels as Python objects, nulls as None (not NaN)."""
    return series.astype(object).where(series.notna(), None)


def flipped(label_a: pd.Series, label_b: pd.Series) -> pd.Series:
    """Per row: the two labels differ (null where either is missing)."""
    known = label_a.notna() & label_b.notna()
    changed = pd.Series(pd.NA, index=label_a.index, dtype="boolean")
    changed[known] = (label_a[known].astype(str) != label_b[known].astype(str)).to_numpy()
    return changed


def _empty_effects() -> pd.DataFrame:
    return typed_empty(
        "effects", {"score_a": "float64", "score_b": "float64", "delta": "float64", "flipped": "boolean"}
    )


def build_effects(examples: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The ``effects`` table: every pair of each instance's groups, per output, plus "rest" rows.

    ``examples``: one row per variant (example_id, probe_set, instance_id, variant, attribute).
    ``predictions``: one row per example x output (example_id, output, score, label).
    Rows are sorted by probe_set, instance_id, output, then the named pairs (by group_a,
    group_b) before the "rest" rows (by group_a).
    """
    require_columns(examples, _EXAMPLE_COLUMNS, "examples")
    require_columns(predictions, _PREDICTION_COLUMNS, "predictions")
    if examples["example_id"].duplicated().any():
        duplicated = examples.loc[examples["example_id"].duplicated(), "example_id"].iloc[0]
        raise ValueError(f"examples repeat example_id {duplicated!r}")
    if predictions.duplicated(["example_id", "output"]).any():
        row = predictions.loc[predictions.duplicated(["example_id", "output"])].iloc[0]
        raise ValueError(f"predictions repeat example {row['example_id']!r} for output {row['output']!r}")
    unknown = ~predictions["example_id"].isin(examples["example_id"])
    if unknown.any():
        raise ValueError(
            f"predictions name {int(unknown.sum())} example_id(s) not in examples, "
            f"e.g. {predictions.loc[unknown, 'example_id'].iloc[0]!r}"
        )
    if (examples["variant"].astype(str) == REST).any():
        raise ValueError(
            f"a variant is named {REST!r}, which effects reserve for the mean of the other groups"
        )
    attributes_per_instance = examples.groupby(["probe_set", "instance_id"])["attribute"].nunique()
    if (attributes_per_instance > 1).any():
        probe_set, instance_id = attributes_per_instance[attributes_per_instance > 1].index[0]
        raise ValueError(f"instance {instance_id!r} of probe set {probe_set!r} mixes attributes")

    merged = predictions[_PREDICTION_COLUMNS].merge(examples[_EXAMPLE_COLUMNS], on="example_id", how="inner")
    merged = merged.rename(columns={"variant": "group"})
    merged["group"] = merged["group"].astype(str)
    merged["score"] = merged["score"].astype(float)
    merged["label"] = object_labels(merged["label"])
    columns = [*_INSTANCE_KEY, "group", "score", "label"]
    merged = merged[columns]
    if merged.empty:
        return _empty_effects()

    left = merged.rename(columns={"group": "group_a", "score": "score_a", "label": "label_a"})
    right = merged.rename(columns={"group": "group_b", "score": "score_b", "label": "label_b"})
    pairs = left.merge(right, on=_INSTANCE_KEY)
    pairs = pairs[pairs["group_a"] < pairs["group_b"]].copy()
    pairs["flipped"] = flipped(pairs["label_a"], pairs["label_b"])
    pairs["rest"] = False

    instance = merged.groupby(_INSTANCE_KEY, sort=False)["score"]
    size = instance.transform("size")
    # one missing score makes the instance's "rest" means NaN (dropped by build_findings)
    total = instance.transform("sum").where(instance.transform("count") == size)
    rest = (
        merged[size > 2].rename(columns={"group": "group_a", "score": "score_a", "label": "label_a"}).copy()
    )
    rest_size = size[size > 2]
    rest["score_b"] = (total[size > 2] - rest["score_a"]) / (rest_size - 1)
    rest["group_b"] = REST
    rest["label_b"] = None
    rest["flipped"] = pd.Series(pd.NA, index=rest.index, dtype="boolean")
    rest["rest"] = True

    effects = pd.concat([pairs, rest], ignore_index=True) if not rest.empty else pairs
    effects["delta"] = effects["score_a"] - effects["score_b"]
    effects["label_a"] = object_labels(effects["label_a"])
    effects["label_b"] = object_labels(effects["label_b"])
    effects["flipped"] = effects["flipped"].astype("boolean")
    effects = effects.sort_values(
        ["probe_set", "instance_id", "output", "rest", "group_a", "group_b"], kind="mergesort"
    )
    # doc_length / position belong to long-document rows (audit/metrics/long_context.py): null here
    effects = effects.assign(doc_length=pd.Series(pd.NA, index=effects.index, dtype="Int64"), position=np.nan)
    return effects[TABLES["effects"]].reset_index(drop=True)


@dataclass
class _Test:
    """One findings row before BH: its key, its metric and what was computed."""

    key: tuple[str, str, str, str]
    metric: str
    output: str | None
    effect: float
    ci_low: float
    ci_high: float
    ci_method: str
    p_value: float
    effect_size: float
    n: int
    threshold: float


def _mean_delta_tests(
    columns: list[tuple[tuple[str, str, str, str], str, np.ndarray]],
    random: stats.RandomMatrices,
    options: TestOptions,
) -> list[_Test]:
    # columns with the same n share their random matrices: listed by n (first seen first), as tested
    by_size: dict[int, list[tuple[tuple[str, str, str, str], str, np.ndarray]]] = {}
    for item in columns:
        by_size.setdefault(item[2].size, []).append(item)
    ordered = [item for items in by_size.values() for item in items]
    results = stats.mean_tests(
        [deltas for _, _, deltas in ordered],
        random,
        confidence=options.confidence,
        n_permutations=options.n_permutations,
    )
    return [
        _Test(
            key=key,
            metric="mean_delta",
            output=output,
            effect=result.effect,
            ci_low=result.ci_low,
            ci_high=result.ci_high,
            ci_method=result.ci_method,
            # see the module docstring: "rest" rows are not tested
            p_value=math.nan if key[3] == REST else result.p_value,
            effect_size=result.effect_size,
            n=result.n,
            threshold=options.min_effect,
        )
        for (key, output, _), result in zip(ordered, results, strict=True)
    ]


def _bootstrap_seat(
    scores_a: np.ndarray, scores_b: np.ndarray, counts_a: np.ndarray, counts_b: np.ndarray
) -> np.ndarray:
    """SEAT d on each bootstrap resample, the two target sets resampled independently (as the
    SEAT permutation test treats them)."""
    n = scores_a.size
    mean_a = counts_a @ scores_a / n
    mean_b = counts_b @ scores_b / n
    pooled_mean = (mean_a + mean_b) / 2
    squares = counts_a @ scores_a**2 + counts_b @ scores_b**2
    variance = np.maximum(squares - 2 * n * pooled_mean**2, 0.0) / (2 * n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        replicates = (mean_a - mean_b) / np.sqrt(variance)
    return np.where(variance > 0, replicates, 0.0)


def _seat_tests(
    columns: list[tuple[tuple[str, str, str, str], str, np.ndarray, np.ndarray]],
    random: stats.RandomMatrices,
    options: TestOptions,
) -> list[_Test]:
    """SEAT d per column with its partition permutation p-value and an interval that agrees with it.
    Up to n = 29 the interval inverts the test over shifts of X's scores (an interval of the mean
    difference) and is divided by the pooled sd of the unshifted scores: in d's units, but only
    approximately an interval of d (a shift also changes the pooled sd d would divide by); it
    contains 0 exactly when the test does not reject, which the division cannot change."""
    by_size: dict[int, list[tuple[tuple[str, str, str, str], str, np.ndarray, np.ndarray]]] = {}
    for item in columns:
        by_size.setdefault(item[2].size, []).append(item)
    tests = []
    alpha = stats.interval_alpha(options.confidence)
    for n, items in by_size.items():
        matrix = np.column_stack([np.concatenate([a, b]) for _, _, a, b in items])
        indicators, exact = stats.partition_indicators(
            2 * n, n, n_permutations=options.n_permutations, rng=random.rng(_PARTITIONS, n)
        )
        shifts, p_values = stats.association_shift_tests(matrix, indicators, exact, options.confidence)
        for (key, output, a, b), shift, p in zip(items, shifts, p_values, strict=True):
            d = stats.association_effect_size(a, b)
            # the shift interval in the units of d: over the pooled sd d divides by
            pooled_sd = float(np.concatenate([a, b]).std(ddof=1))
            low, high = (0.0, 0.0) if pooled_sd == 0 else (shift[0] / pooled_sd, shift[1] / pooled_sd)
            method = stats.PERMUTATION_INVERSION
            if n > stats.INVERSION_MAX_N:
                replicates = _bootstrap_seat(a, b, random.counts(n), random.counts(n, _BOOTSTRAP_SECOND_SET))
                boot_low, boot_high = stats.percentile_interval(replicates, options.confidence)
                if ((boot_low > 0) or (boot_high < 0)) == (p <= alpha):
                    low, high, method = boot_low, boot_high, stats.PERCENTILE_BOOTSTRAP
            tests.append(
                _Test(
                    key=key,
                    metric="seat_effect_size",
                    output=output,
                    effect=d,
                    ci_low=float(low),
                    ci_high=float(high),
                    ci_method=method,
                    p_value=float(p),
                    effect_size=d,
                    n=n,
                    threshold=SEAT_THRESHOLD,
                )
            )
    return tests


def _flip_tests(effects: pd.DataFrame, confidence: float) -> list[_Test]:
    labelled = effects[effects["flipped"].notna()]
    if labelled.empty:
        return []
    per_instance = labelled.sort_values("output", kind="mergesort").drop_duplicates(
        ["probe_set", "attribute", "group_a", "group_b", "instance_id"]
    )
    tests = []
    for key, rows in per_instance.groupby(["probe_set", "attribute", "group_a", "group_b"], sort=True):
        rate = stats.flip_rate_ci(rows["flipped"].to_numpy(dtype=bool), confidence=confidence)
        tests.append(
            _Test(
                key=(str(key[0]), str(key[1]), str(key[2]), str(key[3])),
                metric="flip_rate",
                output=None,
                effect=rate.rate,
                ci_low=rate.ci_low,
                ci_high=rate.ci_high,
                ci_method=stats.WILSON,
                p_value=math.nan,
                effect_size=math.nan,
                n=rate.n,
                threshold=math.nan,
            )
        )
    return tests


def _empty_findings() -> pd.DataFrame:
    return typed_empty("findings", {**FINDING_DTYPES, "doc_length": "object", "position": "object"})


_PAIR_KEY = ["probe_set", "attribute", "group_a", "group_b"]


def _tested_columns(
    effects: pd.DataFrame,
) -> tuple[
    list[tuple[tuple[str, str, str, str], str, np.ndarray]],
    list[tuple[tuple[str, str, str, str], str, np.ndarray, np.ndarray]],
]:
    """Per pair x output with a finite delta: the deltas (mean_delta) and, for association outputs
    of named pairs, the two groups' scores (seat_effect_size)."""
    delta_columns = []
    seat_columns = []
    for (probe_set, attribute, group_a, group_b, output), rows in effects.groupby(
        [*_PAIR_KEY, "output"], sort=True
    ):
        key = (str(probe_set), str(attribute), str(group_a), str(group_b))
        scored = rows[np.isfinite(rows["delta"].to_numpy(dtype=float))]
        if scored.empty:
            continue
        delta_columns.append((key, str(output), scored["delta"].to_numpy(dtype=float)))
        if str(output).startswith(ASSOCIATION_PREFIX) and group_b != REST:
            seat_columns.append(
                (
                    key,
                    str(output),
                    scored["score_a"].to_numpy(dtype=float),
                    scored["score_b"].to_numpy(dtype=float),
                )
            )
    return delta_columns, seat_columns


def _tests_frame(tests: list[_Test]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "probe_set": [t.key[0] for t in tests],
            "attribute": [t.key[1] for t in tests],
            "group_a": [t.key[2] for t in tests],
            "group_b": [t.key[3] for t in tests],
            "metric": [t.metric for t in tests],
            "output": pd.Series([t.output for t in tests], dtype=object),
            "effect": [t.effect for t in tests],
            "ci_low": [t.ci_low for t in tests],
            "ci_high": [t.ci_high for t in tests],
            "ci_method": pd.Series([t.ci_method for t in tests], dtype=object),
            "p_value": [t.p_value for t in tests],
            "effect_size": [t.effect_size for t in tests],
            "n": np.array([t.n for t in tests], dtype=np.int64),
            "threshold": [t.threshold for t in tests],
        }
    )


def build_findings(effects: pd.DataFrame, options: TestOptions) -> pd.DataFrame:
    """The ``findings`` table: one row per test on the effects (see the module docstring), tested
    as the counterfactual Benjamini-Hochberg family (audit/metrics/family.py).

    Rows are sorted by probe_set, attribute, group_a, group_b, metric (in the catalogue's order:
    mean_delta, seat_effect_size, flip_rate), output. Deterministic for a given ``options.seed``.
    """
    check_columns("effects", effects)
    if effects.empty:
        return _empty_findings()

    random = stats.RandomMatrices(options.seed, options.n_resamples)
    delta_columns, seat_columns = _tested_columns(effects)
    tests = _mean_delta_tests(delta_columns, random, options)
    tests += _seat_tests(seat_columns, random, options)
    tests += _flip_tests(effects, options.confidence)
    if not tests:
        return _empty_findings()

    findings = apply_family_test(_tests_frame(tests), options.alpha, COUNTERFACTUAL)
    findings["_metric_rank"] = findings["metric"].map(METRIC_RANK)
    findings = findings.sort_values(
        [*_PAIR_KEY, "_metric_rank", "output"], kind="mergesort", na_position="last"
    )
    findings = findings.assign(
        doc_length=pd.Series(pd.NA, index=findings.index, dtype="Int64"),
        position=np.nan,
        note=pd.Series(None, index=findings.index, dtype="object"),
        subset=pd.Series(None, index=findings.index, dtype="object"),
    )
    return findings[TABLES["findings"]].reset_index(drop=True)
