"""Patching page: where inside the model a pair's difference is carried (``audit run --patching``).
A layer x position heat map of the share of the difference restored per probe set, and one pair's
layer x token map."""

from __future__ import annotations

import streamlit as st

from audit.tables import confidence_text
from dashboard import session
from dashboard.data import RunDataError, read_table
from dashboard.frames import present_values
from dashboard.patching import effect_cells, pair_cells, pair_labels, position_heatmap, token_heatmap

st.title("Activation patching")
run = session.require_run()
st.caption(f"Run `{run.run_id}` · model `{run.model_name}`")
try:
    effects = read_table(run.path, "patching_effects")
    table = read_table(run.path, "patching")
except RunDataError as error:
    st.error(f"The patching tables of run {run.run_id} cannot be read: {error}")
    st.stop()
notes = [str(w) for w in run.manifest.get("warnings") or [] if "patching" in str(w)]
if effects.empty:
    st.info(
        "This run has no activation patching. It was made without `--patching`"
        if not run.config.get("patching")
        else "This run asked for activation patching, but no pair could be patched"
    )
    st.markdown(
        "Run `audit run --model MODEL --probes SET --patching` to patch the attributed pairs (`--attribute-top`) "
        "whose variants have the same number of tokens."
    )
    for note in notes:
        st.warning(note)
    st.stop()

st.markdown(
    "Variant a's run with one activation (a layer's output at one token) replaced by variant b's: the "
    "share of the difference b - a it restores. 1: that activation alone carries the whole difference; "
    "0: none of it. Layer 0 is the token embeddings; layer l the output of the l-th block."
)
for note in notes:
    st.warning(note)
probe_set = st.selectbox("Probe set", present_values(effects, "probe_set"), key="p_probe_set")
confidence = float(run.config.get("confidence", 0.95))
cells = effect_cells(effects, str(probe_set), confidence)
n_instances, n_pairs = int(cells["n"].max()), int(cells["n_pairs"].max())
st.altair_chart(
    position_heatmap(
        cells, title=f"{probe_set}: mean restored fraction over {n_instances} instances ({n_pairs} pairs)"
    ),
    width="stretch",
    key="patching_positions",
)
set_notes = cells["note"].dropna()
if len(set_notes):
    st.caption(str(set_notes.iloc[0]))
st.caption(
    "Per instance, the tokens of a position class are averaged per pair, then over the instance's pairs; "
    f'the hover shows the mean over instances, the sign-flip p-value of "mean 0" and a {confidence_text(confidence)} '
    "interval that agrees with it (the inverted sign-flip test up to 29 instances, BCa above; unbounded with 5 "
    "instances or fewer)."
)

st.subheader("One pair")
pairs = pair_labels(table, str(probe_set))
if not pairs:
    st.info("No patched pair of this probe set.")
    st.stop()
label = st.selectbox("Pair", list(pairs), key="p_pair")
chosen = pair_cells(table, str(probe_set), pairs[str(label)])
if chosen["restored_fraction"].isna().all():
    st.info("This pair has no difference to restore (b's input scores as a's in a's run).")
    st.stop()
st.altair_chart(
    token_heatmap(chosen, title=f"{label}: restored fraction per layer and token"),
    width="stretch",
    key="patching_tokens",
)
first = chosen.iloc[0]
st.caption(
    f"score a = {float(first['score_a']):.6g}, b in a's run = {float(first['score_b']):.6g}; "
    f"the finding's delta (a - b) = {float(first['delta']):+.6g}."
)
