"""Token classification (NER): how often each group's names are recognised as a person.

``entity_recall`` (one row per probe_set x attribute x group, ``group_b`` null): the share of the
group's variants whose name span is tagged as a person (the ``recalled:PER`` output of
audit/targets/token_classification.py: the first name token's most probable label is a person
label), with a Wilson interval. Descriptive, like the flip rate (audit/metrics/stats.py): no
p-value, not in a BH family, never significant. Whether the recall differs between two groups is
tested on the same instances by the paired ``mean_delta`` rows of ``recalled:PER`` (a paired
recall gap with its CI and sign-flip p-value; audit/metrics/paired.py).
"""

from __future__ import annotations

import pandas as pd

from audit.metrics import stats
from audit.metrics.options import TestOptions
from audit.tables import finding_row, findings_frame

RECALLED_PERSON = "recalled:PER"
"""The output that says whether a name was recognised as a person (1.0) or not (0.0)."""
METRIC = "entity_recall"


def build_entity_recall_findings(
    examples: pd.DataFrame, predictions: pd.DataFrame, options: TestOptions
) -> pd.DataFrame:
    """``entity_recall`` rows for every variant with a ``recalled:PER`` prediction (empty frame
    with the findings columns when there is none)."""
    recalled = predictions[predictions["output"] == RECALLED_PERSON][["example_id", "score"]]
    merged = recalled.merge(
        examples[["example_id", "probe_set", "attribute", "variant"]], on="example_id", how="inner"
    )
    rows = []
    for (probe_set, attribute, group), frame in merged.groupby(
        ["probe_set", "attribute", "variant"], sort=True
    ):
        hits = frame["score"].to_numpy(dtype=float) > 0.5
        rate = stats.flip_rate_ci(hits, confidence=options.confidence)
        rows.append(
            finding_row(
                probe_set=str(probe_set),
                attribute=str(attribute),
                group_a=str(group),
                group_b=None,
                metric=METRIC,
                output=RECALLED_PERSON,
                effect=rate.rate,
                ci_low=rate.ci_low,
                ci_high=rate.ci_high,
                n=rate.n,
                ci_method=stats.WILSON,
                note=f"{rate.n_flipped} of {rate.n} names tagged as a person",
            )
        )
    return findings_frame(rows)
