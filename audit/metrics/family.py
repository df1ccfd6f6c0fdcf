"""The Benjamini-Hochberg family test that turns p-values into significant findings and severities.

``apply_family_test``: the rows of one family (its tested metrics, audit/metrics/catalogue.py) get
their q-values over every row with a p-value that is not left out,
``significant`` when q < alpha and |effect - centre| reaches the row's threshold (``centre``: the
catalogue's "no difference", 0.5 for a share against an even split), and a severity by
|effect - centre| / threshold: below 2 "low", below 4 "medium", otherwise "high" ("none" when not
significant, and always for a metric whose significant rows report no problem, e.g. key_effect).
Rows outside the family keep their q-value, significance and severity.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from audit.metrics import stats
from audit.metrics.catalogue import BY_NAME, family_members

SEVERITY_CUTOFFS = (2.0, 4.0)
"""|effect - centre| / threshold below 2 is "low", below 4 "medium", otherwise "high"."""


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
