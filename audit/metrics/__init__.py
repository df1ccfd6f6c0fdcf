"""Paired effects, statistical tests and findings (see paired.py and stats.py)."""

from audit.metrics.paired import REST, build_effects, build_findings
from audit.metrics.stats import (
    FlipRate,
    association_effect_size,
    association_pvalue,
    benjamini_hochberg,
    bootstrap_ci,
    cohens_dz,
    flip_rate_ci,
    sign_flip_pvalue,
)

__all__ = [
    "REST",
    "FlipRate",
    "association_effect_size",
    "association_pvalue",
    "benjamini_hochberg",
    "bootstrap_ci",
    "build_effects",
    "build_findings",
    "cohens_dz",
    "flip_rate_ci",
    "sign_flip_pvalue",
]
