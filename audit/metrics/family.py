"""The settings of every test, and the Benjamini-Hochberg family test that turns p-values into findings.

``TestOptions``: alpha, the practical threshold, the interval's confidence, resample and permutation
counts and the seed, checked once. ``apply_family_test``: the rows of one family (its tested metrics,
audit/metrics/catalogue.py) get their q-values over every row with a p-value that is not left out,
``significant`` when q < alpha and |effect - centre| reaches the row's threshold (``centre``: the
catalogue's "no difference", 0.5 for a share against an even split), and a severity by
|effect - centre| / threshold: below 2 "low", below 4 "medium", otherwise "high" ("none" when not
significant, and always for a metric whose significant rows report no problem, e.g. key_effect).
Rows outside the family keep their q-value, significance and severity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from audit.metrics import stats
from audit.metrics.catalogue import BY_NAME, family_members

SEVERITY_CUTOFFS = (2.0, 4.0)
"""|effect - centre| / threshold below 2 is "low", below 4 "medium", otherwise "high"."""


@dataclass(frozen=True)
class TestOptions:
    """The statistics settings every findings builder takes (audit/config.py ``test_options``)."""

    __test__: ClassVar[bool] = False  # a library class, not a pytest test class

    alpha: float = 0.05
    """False discovery rate of each Benjamini-Hochberg family."""
    min_effect: float = 0.02
    """Practical threshold |effect| must reach to be significant (score units)."""
    confidence: float = 0.95
    n_resamples: int = 2000
    n_permutations: int = 10000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must lie strictly between 0 and 1, got {self.alpha}")
        if not (self.min_effect >= 0 and math.isfinite(self.min_effect)):
            raise ValueError(f"min_effect must be a finite number >= 0, got {self.min_effect}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie strictly between 0 and 1, got {self.confidence}")
        if self.n_resamples < 1 or self.n_permutations < 1:
            raise ValueError("n_resamples and n_permutations must be at least 1")


def severity(significant: bool, effect: float, threshold: float) -> str:
    """ "none" unless significant; then "low", "medium" or "high" by |effect| / threshold (an effect
    measured from its centre). A threshold of 0 makes every significant row "high"."""
    if not significant:
        return "none"
    ratio = abs(effect) / threshold if threshold > 0 else math.inf
    if ratio < SEVERITY_CUTOFFS[0]:
        return "low"
    if ratio < SEVERITY_CUTOFFS[1]:
        return "medium"
    return "high"


def apply_family_test(
    findings: pd.DataFrame, alpha: float, family: str, left_out: pd.Series | None = None
) -> pd.DataFrame:
    """``findings`` with the rows of ``family`` tested as one Benjamini-Hochberg family (see the
    module docstring). ``left_out``: rows that keep their p-value but leave the family (no q-value,
    never significant). A frame without q_value, significant or severity columns gets them (null,
    False, "none") for the rows outside the family."""
    findings = findings.copy()
    if "q_value" not in findings.columns:
        findings["q_value"] = math.nan
    if "significant" not in findings.columns:
        findings["significant"] = False
    if "severity" not in findings.columns:
        findings["severity"] = "none"
    members = findings["metric"].isin(family_members(family)).to_numpy(dtype=bool)
    if members.any():
        rows = findings[members]
        p_values = rows["p_value"].to_numpy(dtype=float).copy()
        if left_out is not None:
            p_values[left_out.to_numpy(dtype=bool)[members]] = math.nan
        q_values = stats.benjamini_hochberg(p_values)
        entries = [BY_NAME[str(name)] for name in rows["metric"]]
        distance = rows["effect"].to_numpy(dtype=float) - np.array([m.centre for m in entries])
        thresholds = rows["threshold"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            significant = (q_values < alpha) & (np.abs(distance) >= thresholds)
        findings.loc[members, "q_value"] = q_values
        findings.loc[members, "significant"] = significant
        findings.loc[members, "severity"] = [
            severity(bool(s), float(d), float(t)) if m.problem else "none"
            for m, s, d, t in zip(entries, significant, distance, thresholds, strict=True)
        ]
    findings["significant"] = findings["significant"].astype(bool)
    return findings
