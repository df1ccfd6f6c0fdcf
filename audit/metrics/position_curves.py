"""Curves of a key sentence's effect over its positions in a document (audit/metrics/long_context.py).

A curve is the instances x positions matrix of key deltas at one document length (columns sorted
by position, NaN where an instance has no delta). ``middle_dips``: per instance, the mean delta at
the end positions minus at the middle ones (``MIDDLE_RANGE``). ``effective_context``: the furthest
position whose mean delta still reaches half the mean at the first position, in tokens, with a
percentile bootstrap interval over instances.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from audit.metrics import stats

MIDDLE_RANGE = (0.25, 0.75)
"""Positions counted as the middle of a document by middle_dip (inclusive)."""
CONTEXT_BOOTSTRAP = 4
"""Purpose of the instance resamples behind effective_context (stats.mean_tests draws 0-1, paired.py 2-3)."""


def middle_dips(curve: pd.DataFrame) -> np.ndarray | None:
    """Per instance: mean delta at the end positions - mean delta at the middle ones; None when
    the positions have no middle or no end outside it. Instances lacking either side are left out."""
    positions = curve.columns.to_numpy(dtype=float)
    middle = (positions >= MIDDLE_RANGE[0]) & (positions <= MIDDLE_RANGE[1])
    ends = np.isin(positions, [positions.min(), positions.max()]) & ~middle
    if not middle.any() or not ends.any():
        return None
    values = curve.to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an instance without ends or middle: NaN
        dips = np.nanmean(values[:, ends], axis=1) - np.nanmean(values[:, middle], axis=1)
    return np.asarray(dips[np.isfinite(dips)], dtype=float)


def _reach(curve_sum: np.ndarray, curve_count: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Furthest position whose mean reaches half the mean at the first position, per row of the
    (R, P) sums and counts; 0 where the first position's mean is not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        means = curve_sum / curve_count
    start = means[:, :1]
    reaches = np.where(np.isfinite(means), means >= start / 2, False)
    furthest = np.where(reaches, positions[None, :], -np.inf).max(axis=1)
    return np.where(np.isfinite(start[:, 0]) & (start[:, 0] > 0), furthest, 0.0)


def effective_context(
    curve: pd.DataFrame, doc_length: int, random: stats.RandomMatrices, confidence: float
) -> tuple[float, float, float]:
    """Effective context in tokens with its percentile bootstrap interval (instances resampled)."""
    values = curve.to_numpy(dtype=float)
    positions = curve.columns.to_numpy(dtype=float)
    present = np.isfinite(values)
    filled = np.where(present, values, 0.0)
    mask = present.astype(float)
    observed = _reach(filled.sum(axis=0)[None, :], mask.sum(axis=0)[None, :], positions)[0]
    n = values.shape[0]
    counts = random.counts(n, CONTEXT_BOOTSTRAP)
    replicates = _reach(counts @ filled, counts @ mask, positions) * doc_length
    low, high = stats.percentile_interval(replicates, confidence)
    return float(observed * doc_length), low, high
