"""Instance explorer: one probe instance's variants side by side with scores and token attributions."""

from __future__ import annotations

import math

import streamlit as st

from dashboard import session
from dashboard.data import parse_focus, read_table
from dashboard.frames import example_scores, present_values, rank_instances
from dashboard.render import attribution_scale, legend_html, text_html, tokens_from_frame

VARIANTS_PER_ROW = 4

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
