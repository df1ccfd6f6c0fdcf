"""Table contracts: the columns every run's parquet tables carry, in order.

A run folder holds ``manifest.json`` plus one parquet file per table below. The dashboard, the
reports and the tests read these names; change them only together with SCHEMA_VERSION.

Sign convention everywhere: ``delta = score_a - score_b``; a positive effect means group_a gets
the higher score.
"""

from __future__ import annotations

import pandas as pd

SCHEMA_VERSION = 1

TABLES: dict[str, list[str]] = {
    # one row per variant (one model input)
    "examples": [
        "example_id",  # "<probe_set>/<instance_id>/<variant>"
        "probe_set",
        "instance_id",
        "variant",
        "attribute",
        "lang",
        "text",
        "label",  # expected label when the probe states one, else null
        "focus",  # JSON list of [start, end] character spans
        "n_tokens",  # tokens after truncation, special tokens included
        "truncated",  # True when the text was cut to the model's maximum length
    ],
    # one row per variant x output (each label's probability, each association score)
    "predictions": [
        "example_id",
        "output",  # e.g. "prob:positive", "assoc:pleasant_vs_unpleasant"
        "score",
        "label",  # predicted label (classifiers), else null
    ],
    # one row per instance x pair of variants x output
    "effects": [
        "probe_set",
        "instance_id",
        "attribute",
        "group_a",
        "group_b",  # a group name, or "rest" (mean of the instance's other groups)
        "output",
        "score_a",
        "score_b",
        "delta",  # score_a - score_b
        "label_a",
        "label_b",
        "flipped",  # predicted label differs between a and b (null when there is no label)
    ],
    # one row per statistical test
    "findings": [
        "probe_set",
        "attribute",
        "group_a",
        "group_b",
        "metric",  # "mean_delta", "flip_rate", "seat_effect_size"
        "output",
        "effect",  # the metric's value (score units for mean_delta)
        "ci_low",
        "ci_high",
        "p_value",
        "q_value",  # Benjamini-Hochberg across all tests of the run
        "effect_size",  # standardized: Cohen's d_z for paired deltas, SEAT d for associations
        "n",
        "threshold",  # practical threshold |effect| must reach
        "significant",
        "severity",  # "none", "low", "medium", "high"
    ],
    # one row per token of an attributed example
    "attributions": [
        "example_id",
        "method",  # "integrated_gradients", "gradient_x_input"
        "output",  # the scalar explained (same as the compared output)
        "token_index",
        "token",
        "char_start",
        "char_end",
        "attribution",
        "is_focus",
        "convergence_delta",  # per example (IG completeness gap); null for gradient methods
    ],
    # one row per attributed instance x pair x method: attribution mass on the focus tokens
    "attribution_pairs": [
        "probe_set",
        "instance_id",
        "group_a",
        "group_b",
        "method",
        "output",
        "focus_attribution_a",
        "focus_attribution_b",
        "delta",  # a - b
    ],
    # one row per example x layer x head x statistic
    "attention": [
        "example_id",
        "layer",
        "head",
        "stat",  # "entropy", "focus_mass", "special_mass", "mean_distance"
        "value",
    ],
}


def empty_table(name: str) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype="object") for column in TABLES[name]})


def check_columns(name: str, frame: pd.DataFrame) -> None:
    """Raise ValueError when a table misses a contract column (extra columns are allowed)."""
    missing = [c for c in TABLES[name] if c not in frame.columns]
    if missing:
        raise ValueError(f"table {name!r} is missing column(s) {missing}")
