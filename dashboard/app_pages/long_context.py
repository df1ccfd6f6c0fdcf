"""Long documents page: where in a document a key sentence still counts, and how far the model reads.

Shows the long-document findings of the chosen run (key effect by position and length, effective
context, middle dip, identity swaps), attention on the key sentence by layer, and the segment
attributions of one document. A run without a long-document probe set gets a message instead.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import session
from dashboard.data import RunDataError, read_table
from dashboard.frames import ATTENTION_STATS, present_values
from dashboard.long_context import (
    RunEffectiveContext,
    attention_by_layer,
    attention_layer_lines,
    effective_context_bars,
    effective_context_by_length,
    effective_context_by_run,
    key_effect_cells,
    key_effect_heatmap,
    long_examples,
    long_findings,
    long_probe_sets,
    middle_dips,
    model_effective_context,
    model_max_length,
    position_curves,
    position_label,
    segment_bars,
    segment_examples,
    segment_rows,
    segment_tokens,
    swap_cells,
    swap_overall,
    swap_pair_label,
    swap_pairs,
)
from dashboard.render import attribution_scale, text_html

NUMBER_FORMATS = {
    "effect": st.column_config.NumberColumn(format="%+.4f"),
    "ci_low": st.column_config.NumberColumn(format="%+.4f"),
    "ci_high": st.column_config.NumberColumn(format="%+.4f"),
    "p_value": st.column_config.NumberColumn(format="%.3g"),
    "q_value": st.column_config.NumberColumn(format="%.3g"),
    "effect_size": st.column_config.NumberColumn(format="%+.3f"),
}
STAT_ORDER = tuple(dict.fromkeys(("focus_mass", "sink_mass", *ATTENTION_STATS)))


def _tokens(value: object) -> str:
    """A token count as the page shows it ("1,024 tokens"); "none" when it is missing."""
    number = float(value) if isinstance(value, int | float) else math.nan
    return "none" if math.isnan(number) else f"{number:,.0f} tokens"


def _read_findings(run_id: str, path: Path) -> pd.DataFrame | None:
    """The long-document findings of a run, or None after an error message when the table is damaged."""
    try:
        return long_findings(read_table(path, "findings"))
    except RunDataError as error:
        st.error(f"The findings table of run {run_id} cannot be read: {error}")
        return None


st.title("Long documents")
run = session.require_run()
max_length = model_max_length(run.model)
strategy = run.config.get("long_inputs")
st.caption(
    f"Run `{run.run_id}` · model `{run.model_name}` · maximum length "
    f"{f'{max_length:,} tokens' if max_length else 'unknown'} · inputs longer than that: "
    f"{strategy or 'not recorded'}"
)
findings = _read_findings(run.run_id, run.path)
if findings is None:
    st.stop()
if findings.empty:
    st.info(
        f"Run {run.run_id} has no long-document findings: it was made without a long-document probe set "
        "(for example `audit run --probes long-context`), or before long documents existed. Pick another "
        "run on the Runs page."
    )
    st.stop()

probe_set = str(st.selectbox("Probe set", long_probe_sets(findings), key="lc_probe_set"))

# ---------------------------------------------------------------- 1. key effect heat map
st.subheader("Key sentence: effect by position and document length")
key_rows = findings[(findings["metric"] == "key_effect") & (findings["probe_set"] == probe_set)]
outputs = present_values(key_rows, "output")
output = st.selectbox("Output", outputs, key="lc_output") if len(outputs) > 1 else None
cells = key_effect_cells(findings, probe_set, output)
effective = effective_context_by_length(findings, probe_set)
if cells.empty:
    st.info(f"Probe set {probe_set} has no key-sentence findings (only identity swaps).")
else:
    shown_output = output or (outputs[0] if outputs else "key")
    of_output = "" if shown_output == "key" else f" of {shown_output}"
    st.altair_chart(
        key_effect_heatmap(
            cells, title=f"key effect{of_output}: score with the key sentence minus without it"
        ),
        width="stretch",
        key="lc_heatmap",
    )
    n_cut = int((cells["mark"] != "").sum())  # under the window strategy nothing is cut
    st.caption(
        "Each cell: mean over key sentences of the score with the key sentence at that position minus "
        "the same document without it (red: the key raises its label's score). "
        + (
            f"{n_cut} cells are framed: 'cut' where the key sentence lay beyond the model's "
            f"{max_length or 'maximum'}-token limit in every document and was truncated away, so the model "
            "never saw it (its effect is 0 by construction); 'k/n cut' where that happened in k of n documents."
            if n_cut
            else "No key sentence was truncated away."
        )
    )

    # ------------------------------------------------------------ 2. curves with bands
    st.subheader("Effect by position, per document length")
    st.altair_chart(
        position_curves(
            cells,
            title="key effect by position (band: confidence interval)",
            y_title="key effect",
            marks=effective,
        ),
        width="stretch",
        key="lc_curves",
    )
    st.caption(
        "Dashed rules: the effective context of each length, the furthest position where the key sentence "
        "still moves the output by at least half its effect at the start."
    )
    if not effective.empty:
        st.dataframe(
            effective.assign(
                position=[position_label(p) if pd.notna(p) else "" for p in effective["position"]]
            ),
            hide_index=True,
            key="lc_effective_table",
            column_config={
                "tokens": st.column_config.NumberColumn("effective context (tokens)", format="%.0f"),
                "ci_low": st.column_config.NumberColumn(format="%.0f"),
                "ci_high": st.column_config.NumberColumn(format="%.0f"),
            },
        )

# ---------------------------------------------------------------- 3. effective context per model
st.subheader("Effective context of the model")
model_row = model_effective_context(findings, probe_set)
left, right = st.columns(2)
if model_row is None:
    left.metric("Effective context", "not computed")
else:
    left.metric(
        "Effective context",
        _tokens(model_row["effect"]),
        help=str(model_row["note"]) if isinstance(model_row["note"], str) else None,
    )
right.metric("Model maximum length", f"{max_length:,} tokens" if max_length else "unknown")

chosen_runs = session.pick_runs_to_compare(
    run, key="lc_compare_runs", help="One bar per run; each run audits one model."
)
entries: list[RunEffectiveContext] = []
for other in chosen_runs:
    run_id = other.run_id
    other_findings = findings if run_id == run.run_id else _read_findings(run_id, other.path)
    if other_findings is not None:
        entries.append(
            RunEffectiveContext(run_id, other.model_name, model_max_length(other.model), other_findings)
        )
bars = effective_context_by_run(entries)
bars = bars[bars["probe_set"] == probe_set]
missing = [other.run_id for other in chosen_runs if other.run_id not in set(bars["run"])]
if bars.empty:
    st.info(f"None of the chosen runs has a model-level effective context for probe set {probe_set}.")
else:
    st.altair_chart(
        effective_context_bars(
            bars, title=f"effective context ({probe_set}); red tick: model maximum length"
        ),
        width="stretch",
        key="lc_effective_bars",
    )
if missing:
    st.caption(f"No effective context for {probe_set} in: {', '.join(missing)}.")

# ---------------------------------------------------------------- 4. attention by layer
st.subheader("Attention on the key sentence by layer")
attention: pd.DataFrame | None
examples: pd.DataFrame | None
try:
    attention = read_table(run.path, "attention")
    examples = read_table(run.path, "examples")
except RunDataError as error:
    st.error(f"The attention statistics of run {run.run_id} cannot be read: {error}")
    attention, examples = None, None
if attention is not None and examples is not None:
    in_set = long_examples(examples, probe_set)
    in_set = in_set[in_set["example_id"].isin(set(attention["example_id"]))]
    if in_set.empty:
        st.info(
            "No attention statistics for the documents of this probe set (the run was made with "
            "--no-attention, or its model exposes no attention)."
        )
    else:
        lengths = sorted({int(length) for length in in_set["doc_length"]})
        within = [length for length in lengths if max_length is None or length <= max_length]
        stats_present = present_values(
            attention[attention["example_id"].isin(set(in_set["example_id"]))], "stat", STAT_ORDER
        )
        first, second = st.columns(2)
        doc_length = first.selectbox(
            "Document length",
            lengths,
            index=lengths.index(within[-1]) if within else 0,
            format_func=lambda length: f"{length:,} tokens",
            key="lc_attention_length",
        )
        stat = second.selectbox("Statistic", stats_present, key="lc_attention_stat")
        if doc_length is None or stat is None:  # a select box over a non-empty list always has a choice
            st.stop()
        values = attention_by_layer(
            attention, examples, probe_set=probe_set, doc_length=int(doc_length), stat=str(stat)
        )
        if values.empty:
            st.info(
                f"No {stat} values for the {doc_length:,}-token documents: the key sentence never reached the model."
            )
        else:
            st.altair_chart(
                attention_layer_lines(
                    values, title=f"mean {stat} by layer, {doc_length:,}-token documents", stat=str(stat)
                ),
                width="stretch",
                key="lc_attention_layers",
            )
            positions = {position_label(p) for p in values["position"]}
            absent = [
                position_label(p)
                for p in sorted(set(in_set.loc[in_set["doc_length"] == doc_length, "position"].dropna()))
                if position_label(p) not in positions
            ]
            st.caption(
                "Mean over heads, then over key sentences at each position. focus_mass is the attention mass "
                "on the key sentence; sink_mass on the first tokens."
                + (f" Positions without values (key truncated away): {', '.join(absent)}." if absent else "")
            )

# ---------------------------------------------------------------- 5. identity swaps and middle dip
st.subheader("Identity swaps by position")
pairs = swap_pairs(findings, probe_set)
if not pairs:
    st.info(f"Probe set {probe_set} has no identity-swap findings.")
else:
    pair = st.selectbox("Pair", pairs, format_func=swap_pair_label, key="lc_swap_pair")
    if pair is None:
        st.stop()
    swaps = swap_cells(findings, probe_set, pair)
    if swaps.empty:
        st.info("This pair has no findings by position.")
    else:
        st.altair_chart(
            position_curves(
                swaps,
                title=f"swap effect ({pair[1]} minus {pair[2]}, {pair[3]}) by position",
                y_title="swap effect",
            ),
            width="stretch",
            key="lc_swap_curves",
        )
        flagged = swaps[swaps["significant"]]
        st.caption(
            f"{len(flagged)} of {len(swaps)} position x length cells significant"
            + (
                ": "
                + ", ".join(
                    f"{row.doc_length:,} tokens at {row.position_label}" for row in flagged.itertuples()
                )
                if len(flagged)
                else "."
            )
        )
    overall = swap_overall(findings, probe_set)
    if not overall.empty:
        st.caption("Pooled over lengths and positions (each instance's mean delta is one unit):")
        st.dataframe(overall, hide_index=True, key="lc_swap_overall", column_config=NUMBER_FORMATS)

st.subheader("Middle dip")
dips = middle_dips(findings, probe_set)
if dips.empty:
    st.info(f"Probe set {probe_set} has no middle-dip findings.")
else:
    st.caption(
        "Key effect at the ends of the document (first and last position) minus in the middle "
        "(25%-75%): positive means content in the middle counts less."
    )
    st.dataframe(dips, hide_index=True, key="lc_middle_dip", column_config=NUMBER_FORMATS)

# ---------------------------------------------------------------- 6. segment attributions
st.subheader("Segment attributions of one document")
try:
    segments = read_table(run.path, "segment_attributions")
    examples_all = read_table(run.path, "examples")
except RunDataError as error:
    st.error(f"The segment attributions of run {run.run_id} cannot be read: {error}")
    st.stop()
documents = segment_examples(segments, examples_all)
documents = documents[documents["example_id"].isin(set(long_examples(examples_all, probe_set)["example_id"]))]
if documents.empty:
    st.info(
        "No segment attributions for this probe set: the run attributes only some documents, or was made "
        "without attributions."
    )
    st.stop()
descriptions = {
    str(row["example_id"]): f"{row['instance_id']} · {row['variant']} ({int(row['doc_length']):,} tokens)"
    for row in documents.to_dict("records")
}
example_id = str(
    st.selectbox(
        "Document", list(descriptions), format_func=descriptions.__getitem__, key="lc_segment_example"
    )
)
own = segments[segments["example_id"] == example_id]
methods = present_values(own, "method", ("segment_ablation", "gradient_x_input"))
method = str(st.selectbox("Method", methods, key="lc_segment_method"))
text = str(documents.loc[documents["example_id"] == example_id, "text"].iloc[0])
rows = segment_rows(segments, example_id, method, text)
st.altair_chart(
    segment_bars(
        rows, title=f"{method}: score change each segment accounts for ({', '.join(set(rows['output']))})"
    ),
    width="stretch",
    key="lc_segments",
)
key_rows_shown = rows[rows["is_key"]]
if not key_rows_shown.empty:
    key_row = key_rows_shown.iloc[0]
    share = (
        float(key_row["attribution"]) / rows["attribution"].abs().sum()
        if rows["attribution"].abs().sum()
        else 0
    )
    st.caption(
        f"Key segment {int(key_row['segment_index'])}: attribution {float(key_row['attribution']):+.4f} "
        f"({share:.0%} of the total |attribution|)"
        + ("" if bool(key_row["reached"]) else "; it was truncated away and never reached the model")
        + ". Grey strips: segments that never reached the model."
    )
with st.expander("Document text, coloured by segment (hover a segment for its attribution)"):
    tokens = segment_tokens(rows)
    st.caption(
        "Red: the segment raises the output, blue: it lowers it; the stronger the colour, the larger the "
        "attribution. The underlined segment is the key (or swapped) sentence."
    )
    st.html(text_html(text, tokens, [], attribution_scale([tokens])))
st.dataframe(
    rows[["segment_index", "char_start", "char_end", "n_tokens", "attribution", "is_key", "text"]],
    hide_index=True,
    key="lc_segment_table",
    column_config={"attribution": st.column_config.NumberColumn(format="%+.4f")},
)
