"""Multiple-choice (BBQ-style) sets: a question over a context, answered by choosing; compared by
the bias score in ambiguous contexts and the accuracy gap in disambiguated ones
(audit/metrics/multiple_choice.py)."""

from __future__ import annotations

import pandas as pd

from audit.kinds.base import Comparison, Evidence, Kind
from audit.metrics.multiple_choice import (
    answer_table,
    build_choice_effects,
    build_choice_findings,
    choice_table,
)
from audit.probe_inputs import ProbeInputs


class MultipleChoice(Kind):
    name = "multiple_choice"

    def compare(self, sets: list[ProbeInputs], evidence: Evidence) -> Comparison:
        """Instances with a text cut to the model's maximum length are left out."""
        examples, predictions = evidence.examples, evidence.predictions
        names = {item.probe_set.name for item in sets}
        rows = examples[examples["probe_set"].isin(names)]
        cut = rows.groupby(["probe_set", "instance_id"])["truncated"].transform("any")
        lost = set(zip(rows.loc[cut, "probe_set"], rows.loc[cut, "instance_id"], strict=True))
        choices = choice_table([item.probe_set for item in sets])
        kept = choices[
            [key not in lost for key in zip(choices["probe_set"], choices["instance_id"], strict=True)]
        ]
        notes = [
            f"{n} instance(s) of {probe_set} left out: their text was cut to the model's maximum length"
            for probe_set, n in pd.Series([p for p, _ in lost], dtype=object).value_counts().items()
        ]
        answers = answer_table(kept, rows, predictions[predictions["example_id"].isin(rows["example_id"])])
        return Comparison(
            build_choice_effects(answers),
            build_choice_findings(answers, evidence.config.test_options),
            notes,
        )
