"""Instance explorer: one probe instance's variants side by side with scores and token attributions."""

from __future__ import annotations

import math

import streamlit as st

from dashboard import session
from dashboard.data import parse_focus, read_table
from dashboard.frames import example_scores, present_values, rank_instances
from dashboard.render import (
    attribution_scale,
    legend_html,
    text_html,
    tokens_from_frame,
    tokens_from_pair_rows,
)
from dashboard.trust import (
    AGREEMENT,
    OCCLUSION,
    PAIR_IG,
    disagreements,
    example_completeness,
    pair_completeness,
    pairs_of,
    unconverged_line,
)

VARIANTS_PER_ROW = 4
PAIR_TEXT_CLASS = "probelens-pair-text"

st.title("Instances")
run = session.require_run()
st.caption(f"Run `{run.run_id}` · model `{run.model_name}`")
examples = session.table(run, "examples", purpose="instances")
if examples is None:
    st.stop()
effects = read_table(run.path, "effects")
predictions = read_table(run.path, "predictions")
attributions = read_table(run.path, "attributions")

probe_set = st.selectbox("Probe set", present_values(examples, "probe_set"), key="i_probe_set")
ranked = rank_instances(effects, examples, str(probe_set))
sizes = dict(zip(ranked["instance_id"], ranked["max_abs_delta"], strict=True))


def _instance_label(instance_id: str) -> str:
    size = sizes.get(instance_id)
    return instance_id if size is None or math.isnan(size) else f"{instance_id} (max |delta| {size:.3f})"


instance_id = st.selectbox(
    "Instance (largest |delta| first)",
    list(ranked["instance_id"]),
    format_func=_instance_label,
    key="i_instance",
)
variants = examples[(examples["probe_set"] == probe_set) & (examples["instance_id"] == instance_id)]
example_ids = list(variants["example_id"])
own_attributions = attributions[attributions["example_id"].isin(example_ids)]
methods = present_values(own_attributions, "method", ("integrated_gradients", "gradient_x_input"))
method = st.selectbox("Attribution method", methods, key="i_method") if methods else None
if method is None:
    st.info(
        "No token attributions for this instance: a run attributes only the instances with the largest "
        "effects (config attribute_top), or was made without attributions. Focus text is still underlined."
    )

chosen_tokens = {
    example_id: tokens_from_frame(
        own_attributions[
            (own_attributions["example_id"] == example_id) & (own_attributions["method"] == method)
        ]
    )
    for example_id in example_ids
}
scale = attribution_scale(list(chosen_tokens.values()))
if method is not None:
    explained = present_values(own_attributions[own_attributions["method"] == method], "output")
    st.caption(f"Explained output: {', '.join(explained) or '?'}")
    st.html(legend_html())
    if method == "integrated_gradients" and (line := unconverged_line(own_attributions)):
        st.warning(line)
completeness = example_completeness(own_attributions)

records = variants.to_dict("records")
for row_start in range(0, len(records), VARIANTS_PER_ROW):
    columns = st.columns(VARIANTS_PER_ROW)
    for column, record in zip(columns, records[row_start : row_start + VARIANTS_PER_ROW], strict=False):
        example_id = str(record["example_id"])
        with column:
            st.subheader(str(record["variant"]))
            st.html(
                text_html(str(record["text"]), chosen_tokens[example_id], parse_focus(record["focus"]), scale)
            )
            if method == "integrated_gradients" and example_id in completeness:
                st.caption(f"integrated gradients: {completeness[example_id].describe()}")
            scores, label = example_scores(predictions, example_id)
            st.caption(f"predicted: {label if label is not None else 'n/a'}")
            if record.get("truncated") is True:
                st.caption("truncated to the model's maximum length")
            st.dataframe(scores, hide_index=True, key=f"scores_{example_id}")

st.subheader("Paired effects of this instance")
own_effects = effects[(effects["probe_set"] == probe_set) & (effects["instance_id"] == instance_id)]
if own_effects.empty:
    st.info("This run has no effects for this instance.")
else:
    st.dataframe(own_effects, hide_index=True, key="instance_effects")
pairs = read_table(run.path, "attribution_pairs")
own_pairs = pairs[(pairs["probe_set"] == probe_set) & (pairs["instance_id"] == instance_id)]
if not own_pairs.empty:
    st.subheader("Attribution on the focus tokens, per pair")
    st.dataframe(own_pairs, hide_index=True, key="instance_attribution_pairs")
    missed = int((own_pairs["converged"].astype("boolean") == False).sum())  # noqa: E712 (null stays unknown)
    if missed:
        st.warning(
            f"Focus attribution per pair: {missed} integrated-gradients row(s) not converged (converged = false: "
            "a variant's attributions do not add up to the difference they explain), so read them as indicative "
            "only (raise --ig-max-steps, or compare with gradient_x_input)."
        )

st.subheader("What explains the difference")
pair_rows = read_table(run.path, "pair_attributions")
pair_rows = pair_rows[(pair_rows["probe_set"] == probe_set) & (pair_rows["instance_id"] == instance_id)]
if pair_rows.empty:
    st.info(
        "No pair explanations for this instance: a run explains the pairs of the instances it attributes "
        "(config attribute_top), and only pairs whose texts differ and are read as one input each."
    )
    st.stop()
explained_pairs = pairs_of(pair_rows)
picked = st.selectbox(
    "Pair (group a vs group b)", explained_pairs, format_func=lambda p: f"{p[0]} vs {p[1]}", key="i_pair"
)
pair = picked if picked is not None else explained_pairs[0]
chosen = pair_rows[(pair_rows["group_a"] == pair[0]) & (pair_rows["group_b"] == pair[1])]
text_a = variants.loc[variants["variant"] == pair[0], "text"]
delta = float(chosen["pair_delta"].iloc[0])
st.caption(
    f"delta = score({pair[0]}) - score({pair[1]}) = {delta:+.4f} on {chosen['output'].iloc[0]}; each part is "
    f"coloured on the text of {pair[0]}."
)
for name, label in ((OCCLUSION, "Occlusion (each word replaced by a neutral token in both variants)"),
                    (PAIR_IG, f"Pair integrated gradients (from {pair[1]}'s tokens to {pair[0]}'s)")):  # fmt: skip
    rows = chosen[chosen["method"] == name]
    if rows.empty:
        if name == PAIR_IG:
            st.caption(
                "No pair integrated gradients: the two variants do not align token for token (or the run "
                "ran no integrated gradients); occlusion explains them."
            )
        continue
    st.markdown(f"**{label}**")
    shown = str(text_a.iloc[0]) if len(text_a) else ""
    st.html(text_html(shown, tokens_from_pair_rows(rows), css_class=PAIR_TEXT_CLASS))
    if name == PAIR_IG and (status := pair_completeness(chosen)) is not None:
        total = float(rows["attribution"].sum())
        line = f"pair IG sums to {total:+.4f} of delta {delta:+.4f}: {status.describe()}"
        st.caption(line) if status.converged else st.warning(line)
variant_rows = {
    group: own_attributions[own_attributions["example_id"] == f"{probe_set}/{instance_id}/{group}"]
    for group in pair
}
found = disagreements(chosen, variant_rows)
for what, trust in found:
    st.warning(f"Methods disagree: {what} {trust}")
if not found:
    st.caption(AGREEMENT)
