"""explain (--attributions): token attributions of the instances with the largest effects (Captum
on the same score-head column that was compared), weighed on the focus tokens of each pair of
variants; then each kind's own explanations (content-word shares, long documents' segments)."""

from __future__ import annotations

from functools import partial

import pandas as pd
from rich.console import Console
from rich.progress import Progress

from audit.attribution.contrast import (
    PAIR_IG,
    attributed_pairs,
    empty_pair_attributions,
    pair_attribution_rows,
)
from audit.attribution.integrated import completeness_error
from audit.attribution.pairs import pair_tolerance
from audit.attribution.variants import token_attributions
from audit.config import AuditConfig
from audit.kinds.base import Explaining
from audit.kinds.registry import KINDS
from audit.probe_inputs import ProbeInputs
from audit.stages.progress import Timer, progress, warn
from audit.stages.state import Compared, Encoding, Explained, Scored
from audit.tables import TABLES
from audit.targets import Target


def explain(
    encoding: Encoding,
    scored: Scored,
    compared: Compared,
    target: Target,
    config: AuditConfig,
    console: Console,
    timer: Timer,
) -> Explained:
    findings = compared.findings
    if not config.attributions:
        return Explained(
            pd.DataFrame(columns=TABLES["attributions"]),
            pd.DataFrame(columns=TABLES["attribution_pairs"]),
            pd.DataFrame(columns=TABLES["segment_attributions"]),
            findings,
        )
    with progress(console) as bars, timer.stage("attributions"):
        attributions, pairs = attribute_top_instances(
            encoding, scored, compared.effects, target, config, bars
        )
        explaining = Explaining(encoding.examples, compared, attributions, scored.sets, target, config, bars)
        segment_frames = []
        for kind in KINDS.values():
            sets = [item for item in encoding.sets if item.probe_set.kind == kind.name]
            if not sets:
                continue
            extra = kind.explain(sets, explaining)
            if extra.findings is not None:
                findings = pd.concat([findings, extra.findings], ignore_index=True)
            if extra.segments is not None:
                segment_frames.append(extra.segments)
            if extra.tokens is not None:
                attributions = pd.concat([attributions, extra.tokens], ignore_index=True)
    segments = (
        pd.DataFrame(columns=TABLES["segment_attributions"])
        if not segment_frames
        else segment_frames[0]
        if len(segment_frames) == 1
        else pd.concat(segment_frames, ignore_index=True)
    )
    with progress(console) as bars, timer.stage("pair_attributions"):
        pair_rows = attribute_pairs(encoding, scored, compared.effects, target, config, bars)
    notes = unconverged_attributions(attributions, encoding.examples, config.ig_tolerance)
    notes += unconverged_pairs(pair_rows, pair_tolerance(config.ig_tolerance))
    warn(console, notes)
    return Explained(attributions, pairs, segments, findings, notes, pair_rows)


def attribute_top_instances(
    encoding: Encoding,
    scored: Scored,
    effects: pd.DataFrame,
    target: Target,
    config: AuditConfig,
    bars: Progress,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Token attributions for the variants of the instances with the largest effects, kind by kind,
    and per attributed pair of variants the attribution mass on their focus tokens."""
    token_frames, pair_frames = [], []
    for kind in KINDS.values():
        if not kind.attributes_top_instances:
            continue
        for item in (item for item in encoding.sets if item.probe_set.kind == kind.name):
            selected, output_names = top_variants(item, scored, effects, config.attribute_top)
            if not selected:
                continue
            tokens = token_attributions(
                item, scored.sets[item.name], selected, output_names, target, config, bars
            )
            token_frames.append(tokens)
            if kind.pairs_focus_attributions:
                pair_frames.append(focus_attribution_pairs(tokens, encoding.examples, effects, item.name))
    if not token_frames:
        return pd.DataFrame(columns=TABLES["attributions"]), pd.DataFrame(columns=TABLES["attribution_pairs"])
    pairs = (
        pd.concat(pair_frames, ignore_index=True)
        if pair_frames
        else pd.DataFrame(columns=TABLES["attribution_pairs"])
    )
    return pd.concat(token_frames, ignore_index=True), pairs


def attribute_pairs(
    encoding: Encoding,
    scored: Scored,
    effects: pd.DataFrame,
    target: Target,
    config: AuditConfig,
    bars: Progress,
) -> pd.DataFrame:
    """What explains the difference of every attributed pair of variants (the top instances' pairs,
    of the kinds whose attributions are weighed on pairs): pair integrated gradients and occlusion."""
    frames = []
    for kind in KINDS.values():
        if not (kind.attributes_top_instances and kind.pairs_focus_attributions):
            continue
        for item in (item for item in encoding.sets if item.probe_set.kind == kind.name):
            chosen = top_instances(effects, item.name, config.attribute_top)
            pairs, _ = attributed_pairs(item, scored.sets[item.name], effects, chosen)
            if not pairs:
                continue
            task = bars.add_task(f"explain pairs of {item.name}", total=2 * len(pairs))
            frames.append(
                pair_attribution_rows(
                    item, scored.sets[item.name], pairs, target, config, partial(bars.advance, task)
                )
            )
    frames = [frame for frame in frames if not frame.empty]
    return pd.concat(frames, ignore_index=True) if frames else empty_pair_attributions()


def unconverged_pairs(rows: pd.DataFrame, tolerance: float) -> list[str]:
    """Per probe set, a warning when pair integrated gradients missed some pairs' delta by more
    than ``tolerance`` (their token shares are then indicative only; occlusion still holds)."""
    ig = rows[rows["method"] == PAIR_IG]
    if ig.empty:
        return []
    per_pair = ig.drop_duplicates(["probe_set", "instance_id", "group_a", "group_b"])
    notes = []
    for probe_set, pairs in per_pair.groupby("probe_set", sort=True):
        off = pairs[~pairs["converged"].fillna(False).astype(bool)]
        if len(off):
            notes.append(
                f"pair integrated gradients missed the pair's delta by more than {tolerance * 100:g}% for "
                f"{len(off)} of {len(pairs)} attributed pairs of {probe_set} (median error "
                f"{pairs['completeness_error'].astype(float).median():.0%}): read their token shares as "
                "indicative only and trust the occlusion rows; raise --ig-max-steps"
            )
    return notes


def top_variants(
    item: ProbeInputs, scored: Scored, effects: pd.DataFrame, top: int | str
) -> tuple[list[int], list[str]]:
    """The variants of a set's top instances, and the output each is explained for."""
    chosen = top_instances(effects, item.name, top)
    if not chosen:
        return [], []
    scores = scored.sets[item.name].scores
    index_of = {eid: i for i, eid in enumerate(item.example_ids)}
    selected: list[int] = []
    output_names: list[str] = []
    for instance in (i for i in item.probe_set.instances if i.instance_id in set(chosen)):
        ids = [f"{item.probe_set.name}/{instance.instance_id}/{v.variant}" for v in instance.variants]
        rows = [index_of[e] for e in ids]
        output = item.head.attribution_output([v.label for v in instance.variants], scores[rows])
        selected.extend(rows)
        output_names.extend([output] * len(rows))
    return selected, output_names


def top_instances(effects: pd.DataFrame, probe_set: str, top: int | str) -> list[str]:
    """Instances of a probe set ordered by their largest |delta| (all of them for 'all')."""
    rows = effects[(effects["probe_set"] == probe_set) & (effects["group_b"] != "rest")]
    if rows.empty:
        return []
    ranked = (
        rows.assign(size=rows["delta"].abs())
        .groupby("instance_id")["size"]
        .max()
        .sort_values(ascending=False)
    )
    ids = [str(i) for i in ranked.index]
    return ids if top == "all" else ids[: int(top)]


def focus_attribution_pairs(
    tokens: pd.DataFrame, examples: pd.DataFrame, effects: pd.DataFrame, probe_set: str
) -> pd.DataFrame:
    """Per attributed pair of variants: attribution mass on the focus tokens of a and of b, and
    ``converged``: both variants' integrated gradients met the completeness tolerance (null for
    gradient_x_input, which has no integral; null too when the tokens carry no ``converged``)."""
    if tokens.empty:
        return pd.DataFrame(columns=TABLES["attribution_pairs"])
    focus = (
        tokens[tokens["is_focus"]]
        .groupby(["example_id", "method", "output"])["attribution"]
        .sum()
        .rename("focus_attribution")
        .reset_index()
    )
    attributed = (
        tokens[["example_id", "method", "output"]]
        .drop_duplicates()
        .merge(focus, on=["example_id", "method", "output"], how="left")
        .merge(example_convergence(tokens), on=["example_id", "method", "output"], how="left")
    )
    attributed = attributed.merge(
        examples[["example_id", "instance_id", "variant", "focus"]], on="example_id"
    )
    # no focus tokens (e.g. the shorter text of an insertion pair): nothing measured, so NaN, not 0
    has_focus = attributed["focus"] != "[]"
    attributed["focus_attribution"] = attributed["focus_attribution"].where(
        ~has_focus, attributed["focus_attribution"].fillna(0.0)
    )
    attributed = attributed.drop(columns="focus")
    pairs = effects[(effects["probe_set"] == probe_set) & (effects["group_b"] != "rest")][
        ["probe_set", "instance_id", "group_a", "group_b"]
    ].drop_duplicates()
    left = attributed.rename(columns={"variant": "group_a", "focus_attribution": "focus_attribution_a"})
    right = attributed.rename(columns={"variant": "group_b", "focus_attribution": "focus_attribution_b"})
    merged = pairs.merge(left.drop(columns="example_id"), on=["instance_id", "group_a"]).merge(
        right.drop(columns="example_id"), on=["instance_id", "group_b", "method", "output"]
    )
    merged["delta"] = merged["focus_attribution_a"] - merged["focus_attribution_b"]
    # boolean NA logic: False if either missed, null if neither missed and one is unknown
    merged["converged"] = merged["converged_x"].astype("boolean") & merged["converged_y"].astype("boolean")
    return merged[TABLES["attribution_pairs"]]


def example_convergence(tokens: pd.DataFrame) -> pd.DataFrame:
    """Per attributed example x method x output: ``converged`` as its integrated gradients say it
    (every token row carries its example's flag); null for gradient_x_input and without the column."""
    keys = ["example_id", "method", "output"]
    if "converged" not in tokens.columns:
        return tokens[keys].drop_duplicates().assign(converged=pd.NA)
    flags = tokens[keys].assign(converged=tokens["converged"].astype("boolean"))
    per_example = flags.groupby(keys, sort=False)["converged"].agg(lambda s: s.all(skipna=False))
    per_example = per_example.reset_index()
    per_example["converged"] = per_example["converged"].astype("boolean")
    is_ig = per_example["method"] == "integrated_gradients"
    per_example.loc[~is_ig, "converged"] = pd.NA
    return per_example


def unconverged_attributions(
    attributions: pd.DataFrame, examples: pd.DataFrame, tolerance: float = 0.05
) -> list[str]:
    """Per probe set, a warning when integrated gradients missed the completeness ``tolerance``
    (--ig-tolerance) for some of its attributed examples even at --ig-max-steps: their token
    attributions do not add up to the explained difference. The same examples say ``converged`` =
    false in the attributions table. One integral per example and output (an example attributed on
    two outputs counts twice). Rows without the ``completeness_error`` column (runs before
    schema 5) get it from the attributions and their convergence delta, measured the same way."""
    ig = attributions[attributions["method"] == "integrated_gradients"]
    if ig.empty or ig["convergence_delta"].isna().all():
        return []
    # an example attributed on several outputs has one integral (and one error) per output
    key = ["example_id", "output"] if "output" in ig.columns else ["example_id"]
    grouped = ig.groupby(key, sort=False, dropna=False)
    per_example = grouped.agg(total=("attribution", "sum"), delta=("convergence_delta", "first"))
    if "completeness_error" in ig.columns:
        per_example["error"] = grouped["completeness_error"].first().astype(float)
    else:
        difference = (per_example["total"] - per_example["delta"]).to_numpy(dtype=float)
        per_example["error"] = completeness_error(per_example["delta"].to_numpy(dtype=float), difference)
    steps = grouped["n_steps"].first() if "n_steps" in ig.columns else None
    per_example = per_example[per_example["error"].notna()]
    sets = examples.set_index("example_id")["probe_set"]
    ids = per_example.index.get_level_values("example_id")
    notes = []
    for probe_set, values in per_example.groupby([sets.get(e, "?") for e in ids]):
        off = values[values["error"] > tolerance]
        if len(off):
            at = "" if steps is None else f" at up to {int(steps[off.index].max())} steps"
            notes.append(
                f"integrated gradients did not converge for {len(off)} of {len(values)} attributed examples of "
                f"{probe_set} (completeness error above {tolerance:.0%} of the difference explained{at}; median "
                f"of those {off['error'].median():.0%}): their token attributions (converged = false) are "
                "indicative only; raise --ig-max-steps, or compare with gradient_x_input"
            )
    return notes
