"""compare: every kind compares its own sets' variants (audit/kinds/); their effects and findings
join in one table each, rows that no result could make significant say so."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.config import AuditConfig
from audit.kinds.base import Evidence
from audit.kinds.registry import KINDS
from audit.metrics.catalogue import p_floor_from_n
from audit.stages.progress import Timer
from audit.stages.state import Compared, Encoding, Generated
from audit.tables import TABLES, flags
from audit.targets import Target


def compare(
    encoding: Encoding, generated: Generated, target: Target, config: AuditConfig, timer: Timer
) -> Compared:
    evidence = Evidence(encoding.examples, generated.predictions, target, config, generated)
    effects = pd.DataFrame(columns=TABLES["effects"])
    findings = pd.DataFrame(columns=TABLES["findings"])
    left_out: dict[str, dict[str, int]] = {}
    unreadable: dict[str, dict[str, float]] = {}
    level_note = config.interval_level_note()
    warnings: list[str] = [level_note] if level_note else []
    first = True
    with timer.stage("findings"):
        for kind in KINDS.values():
            sets = [item for item in encoding.sets if item.probe_set.kind == kind.name]
            if not sets and not kind.always_compared:
                continue
            comparison = kind.compare(sets, evidence)
            if first:
                effects, findings, first = comparison.effects, comparison.findings, False
            else:
                effects = pd.concat([effects, comparison.effects], ignore_index=True)
                findings = pd.concat([findings, comparison.findings], ignore_index=True)
            warnings += comparison.notes
            left_out.update(comparison.left_out)
            unreadable.update(comparison.unreadable_languages)
    findings = note_underpowered(findings, config.alpha)
    n_underpowered, notes = underpowered_tests(findings, config.alpha)
    warnings += notes
    if findings["p_value"].notna().sum() == 0:
        warnings.append(
            "no statistical test could be run: nothing in this run can be called significant or fair"
        )
    return Compared(effects, findings, left_out, unreadable, n_underpowered, warnings)


def problem_findings(findings: pd.DataFrame) -> pd.Series:
    """Significant rows that report a problem (severity above "none"): what --fail-on counts."""
    if findings.empty:
        return pd.Series(False, index=findings.index)
    return flags(findings["significant"]) & (findings["severity"] != "none")


def underpowered_mask(findings: pd.DataFrame, alpha: float) -> pd.Series:
    """Tested rows with too few instances for any sign pattern to reach p < alpha (the exact
    test's smallest p is 2**(1-n): metrics whose catalogue entry says ``p_floor_from_n``); they can
    never be significant, whatever the data."""
    tested = findings["p_value"].notna() & findings["metric"].map(p_floor_from_n).astype(bool)
    return tested & (np.power(2.0, 1 - findings["n"].astype(float)) >= alpha)


def note_underpowered(findings: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Say so in each underpowered row's note, so 'not significant' there is not read as 'fair'."""
    mask = underpowered_mask(findings, alpha) & findings["note"].isna()
    if mask.any():
        findings = findings.copy()
        findings.loc[mask, "note"] = findings.loc[mask, "n"].map(
            lambda n: f"only {int(n)} instance(s): no result could reach p < {alpha}; add instances"
        )
    return findings


def underpowered_tests(findings: pd.DataFrame, alpha: float) -> tuple[int, list[str]]:
    """How many rows ``underpowered_mask`` finds, and the warning to show."""
    underpowered = findings[underpowered_mask(findings, alpha)]
    if underpowered.empty:
        return 0, []
    return len(underpowered), [
        f"{len(underpowered)} test(s) have {int(underpowered['n'].max())} or fewer instances and cannot reach "
        f"p < {alpha}: 'not significant' there says nothing; add instances (for long documents: keys or swaps)"
    ]
