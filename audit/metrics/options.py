"""The settings every statistical test of a run takes (alpha, practical threshold, interval confidence,
resample and permutation counts, seed), checked once when made.

Pure Python, so audit/config.py and the CLI can import it without numpy or pandas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar


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
