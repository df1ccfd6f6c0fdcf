"""Activation patching in the dashboard: the cells of the layer x position heat maps (pure pandas)
and their altair charts. The tables come from ``audit run --patching`` (audit/patching.py)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from audit.tables import PATCHING_POSITIONS, interval_text
from dashboard.charts import FIT_WIDTH

PAIR_KEY = ["instance_id", "group_a", "group_b"]


def effect_cells(effects: pd.DataFrame, probe_set: str, confidence: float = 0.95) -> pd.DataFrame:
    """One probe set's ``patching_effects`` rows, positions in reading order, numbers as floats, and
    the interval as text (``interval``: "unbounded (n = 4: ...)" where ci_low / ci_high are -inf / inf,
    as the findings show it; a run from before p_value and ci_method has them null)."""
    rows = effects[effects["probe_set"].astype(str) == probe_set].copy()
    for column in ("p_value", "ci_method"):
        if column not in rows.columns:
            rows[column] = None
    for column in ("effect", "ci_low", "ci_high", "p_value"):
        rows[column] = pd.to_numeric(rows[column], errors="coerce")
    rows["interval"] = [
        interval_text(low, high, n, confidence)
        for low, high, n in zip(rows["ci_low"], rows["ci_high"], rows["n"], strict=True)
    ]
    rows["layer"] = pd.to_numeric(rows["layer"], errors="coerce").astype("Int64")
    rows["relative_position"] = rows["relative_position"].astype(str)
    return rows.reset_index(drop=True)


def positions_present(cells: pd.DataFrame) -> list[str]:
    """The relative positions in the cells, in reading order (unknown ones last)."""
    present = set(cells["relative_position"].astype(str))
    return [p for p in PATCHING_POSITIONS if p in present] + sorted(present.difference(PATCHING_POSITIONS))


def pair_labels(table: pd.DataFrame, probe_set: str) -> dict[str, tuple[str, str, str]]:
    """The patched pairs of a probe set by a readable label ("instance: a vs b"), largest |delta| first."""
    rows = table[table["probe_set"].astype(str) == probe_set]
    pairs = rows.groupby(PAIR_KEY, sort=False)["delta"].first().reset_index()
    pairs = pairs.assign(size=pd.to_numeric(pairs["delta"], errors="coerce").abs()).sort_values(
        "size", ascending=False, kind="mergesort"
    )
    return {
        f"{i}: {a} vs {b} (delta {d:+.4g})": (str(i), str(a), str(b))
        for i, a, b, d in zip(
            pairs["instance_id"], pairs["group_a"], pairs["group_b"], pairs["delta"], strict=True
        )
    }


def pair_cells(table: pd.DataFrame, probe_set: str, pair: tuple[str, str, str]) -> pd.DataFrame:
    """One pair's rows with a ``label`` per token ("2 she→he" where the tokens differ)."""
    instance_id, group_a, group_b = pair
    rows = table[
        (table["probe_set"].astype(str) == probe_set)
        & (table["instance_id"].astype(str) == instance_id)
        & (table["group_a"].astype(str) == group_a)
        & (table["group_b"].astype(str) == group_b)
    ].copy()
    rows["restored_fraction"] = pd.to_numeric(rows["restored_fraction"], errors="coerce")
    rows["label"] = [
        f"{int(index)} {a}" if a == b else f"{int(index)} {a}→{b}"
        for index, a, b in zip(rows["token_index"], rows["token"], rows["token_b"], strict=True)
    ]
    return rows.sort_values(["layer", "token_index"]).reset_index(drop=True)


def _heatmap(
    cells: pd.DataFrame, x: alt.X, value: str, tooltip: list[alt.Tooltip], title: str
) -> alt.LayerChart:
    """Layer (rows, 0 = embeddings at the bottom) x position map of ``value``, labelled with it; a
    diverging scale centred at 0, so restoring (blue) and reversing (red) read apart."""
    color = alt.Color(
        f"{value}:Q",
        scale=alt.Scale(scheme="redblue", domainMid=0, reverse=True),
        title="restored",
    )
    y = alt.Y("layer:O", title="layer (0 = embeddings)", sort="descending")
    base = alt.Chart(cells).encode(x=x, y=y)
    rect = base.mark_rect().encode(color=color, tooltip=tooltip)
    text = base.mark_text(fontSize=11).encode(text=alt.Text(f"{value}:Q", format=".2f"))
    height = max(30 * cells["layer"].nunique(), 120)
    return alt.LayerChart(layer=[rect, text], title=title, height=height, autosize=FIT_WIDTH)


def position_heatmap(cells: pd.DataFrame, *, title: str) -> alt.LayerChart:
    """The mean restored fraction per layer and position relative to the swapped tokens."""
    x = alt.X(
        "relative_position:N",
        sort=positions_present(cells),
        title="position relative to the swapped tokens",
        axis=alt.Axis(labelAngle=0),
    )
    tooltip = [
        alt.Tooltip("layer:O"),
        alt.Tooltip("relative_position:N", title="position"),
        alt.Tooltip("effect:Q", format="+.3f", title="mean restored"),
        alt.Tooltip("interval:N"),
        alt.Tooltip("p_value:Q", format=".3g", title="p (mean 0)"),
        alt.Tooltip("ci_method:N", title="interval method"),
        alt.Tooltip("n:Q", title="instances"),
        alt.Tooltip("n_pairs:Q", title="pairs"),
    ]
    return _heatmap(cells, x, "effect", tooltip, title)


def token_heatmap(cells: pd.DataFrame, *, title: str) -> alt.LayerChart:
    """One pair's restored fraction per layer and token."""
    order = list(dict.fromkeys(cells.sort_values("token_index")["label"]))
    x = alt.X("label:N", sort=order, title="token (a→b where they differ)", axis=alt.Axis(labelAngle=-45))
    tooltip = [
        alt.Tooltip("layer:O"),
        alt.Tooltip("label:N", title="token"),
        alt.Tooltip("relative_position:N", title="position"),
        alt.Tooltip("restored_fraction:Q", format="+.4f", title="restored"),
        alt.Tooltip("score_patched:Q", format=".4g", title="patched score"),
    ]
    return _heatmap(cells, x, "restored_fraction", tooltip, title)
