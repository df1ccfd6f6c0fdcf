"""Languages page: how a model treats the same meaning written in several languages and scripts.

For each parallel (multilingual) probe set of the chosen run: parity of every language with the
reference language (optionally several runs side by side), tokenization per language (fertility,
unknown-token, byte-fallback and truncation rates), label agreement and attribution on content words,
and one instance in every language with its token attributions. Languages the model cannot read
(mostly unknown tokens) are greyed and never shown as bias findings. A run without a parallel set
gets a message instead.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from audit.metrics import catalogue
from dashboard import session
from dashboard.data import RunDataError, read_table
from dashboard.frames import present_values
from dashboard.languages import (
    NOT_AVAILABLE,
    RTL_LANGUAGES,
    TABLE_METRICS,
    TOKENIZATION_METRICS,
    UNREADABLE_LABEL,
    RunParity,
    agreement_table,
    comparison_metric,
    comparison_outputs,
    language_order,
    language_scripts,
    parallel_findings,
    parallel_probe_sets,
    parity_by_run,
    parity_chart,
    rank_parallel_instances,
    reference_language,
    side_by_side_html,
    side_by_side_rows,
    tokenization_chart,
    tokenization_rows,
    unknown_rate_limit,
    unreadable_languages,
)
from dashboard.render import attribution_scale, legend_html, tokens_from_frame
from dashboard.trust import unconverged_line

SECTIONS = (
    "Parity with the reference language",
    "Tokenization per language",
    "Labels and attribution per language",
    "One instance in every language",
)


def _read_findings(run_id: str, path: Path) -> pd.DataFrame | None:
    """The parallel findings of a run, or None after an error message when the table is damaged."""
    try:
        return parallel_findings(read_table(path, "findings"))
    except RunDataError as error:
        st.error(f"The findings table of run {run_id} cannot be read: {error}")
        return None


def _read(name: str) -> pd.DataFrame | None:
    try:
        return read_table(run.path, name)
    except RunDataError as error:
        st.error(f"The {name} table of run {run.run_id} cannot be read: {error}")
        return None


def _summary(manifest: dict[str, object]) -> dict[str, object]:
    summary = manifest.get("summary")
    return summary if isinstance(summary, dict) else {}


st.title("Languages")
run = session.require_run()
limit = unknown_rate_limit(run.config)
st.caption(
    f"Run `{run.run_id}` · model `{run.model_name}` ({run.task}) · unreadable at {limit:.0%} unknown tokens"
)
findings = _read_findings(run.run_id, run.path)
if findings is None:
    st.stop()
probe_sets = parallel_probe_sets(run.manifest, findings)
if not probe_sets:
    st.info(
        f"Run {run.run_id} has no parallel (multilingual) probe set: it was made without one (for example "
        "`audit run --probes multilingual`), or before parallel sets existed. Pick another run on the Runs page."
    )
    st.stop()

probe_set = str(st.selectbox("Probe set", probe_sets, key="lang_probe_set"))
examples = _read("examples")
if examples is None:
    st.stop()
reference = reference_language(run.manifest, findings, probe_set)
unreadable = unreadable_languages(findings, probe_set, limit, _summary(run.manifest))
order = language_order(findings, examples, probe_set, reference)
scripts = language_scripts(examples, probe_set)
set_findings = findings[findings["probe_set"] == probe_set]
if set_findings.empty:
    st.info(
        f"Probe set {probe_set} is a parallel set, but the run wrote no findings for it (the run stopped "
        "early, or its audit of parallel sets was not built yet)."
    )

if unreadable:
    listed = ", ".join(
        f"{lang} ({rate:.0%} unknown tokens)" if not math.isnan(rate) else lang
        for lang, rate in sorted(
            unreadable.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99
        )
    )
    st.warning(
        f"Unreadable for this model: {listed}. Its texts are mostly unknown tokens, so the model cannot "
        f"read them; differences in those languages are {UNREADABLE_LABEL}."
    )

# ---------------------------------------------------------------- 1. parity
st.subheader(SECTIONS[0])
metric = comparison_metric(findings, probe_set)
output: str | None = None
if metric is None:
    st.info(f"Probe set {probe_set} has no parity (or translation similarity) findings.")
else:
    outputs = comparison_outputs(findings, probe_set, metric)
    if len(outputs) > 1:
        preferred = [o for o in outputs if o.endswith(":positive")]
        output = str(
            st.selectbox(
                "Output",
                outputs,
                index=outputs.index(preferred[0]) if preferred else 0,
                key="lang_output",
            )
        )
    elif outputs:
        output = outputs[0]

    chosen_runs = session.pick_runs_to_compare(
        run,
        key="lang_compare_runs",
        help="Each run's parity for this probe set and output, side by side per language.",
    )
    if run.run_id not in {other.run_id for other in chosen_runs}:
        chosen_runs = [run, *chosen_runs]  # parity is read against this run's own languages
    entries: list[RunParity] = []
    for other in chosen_runs:
        run_id = other.run_id
        other_findings = findings if run_id == run.run_id else _read_findings(run_id, other.path)
        if other_findings is None:
            continue
        other_unreadable = (
            unreadable
            if run_id == run.run_id
            else unreadable_languages(
                other_findings, probe_set, unknown_rate_limit(other.config), _summary(other.manifest)
            )
        )
        entries.append(RunParity(run_id, other.model_name, other_findings, other_unreadable))
    rows = parity_by_run(entries, probe_set, metric, output, order)
    missing = [other.run_id for other in chosen_runs if other.run_id not in set(rows["run"])]
    what = "parity" if metric == "parity" else "similarity to the reference text"
    st.altair_chart(
        parity_chart(
            rows,
            reference=reference,
            metric=metric,
            title=f"{what} per language{f' ({output})' if output else ''}; black line: {reference} (reference)",
        ),
        width="stretch",
        key="lang_parity_chart",
    )
    own = rows[rows["run"] == run.run_id]
    flagged = own[own["significant"]]
    if metric == "parity":
        st.caption(
            f"Each point: mean over instances of the language's score minus the {reference} score of the same "
            "instance, with its confidence interval; red points are significant (BH-corrected, past the "
            "dashed practical threshold). "
            + (
                f"Significant: {', '.join(f'{r.lang} ({r.effect:+.3f})' for r in flagged.itertuples())}."
                if len(flagged)
                else "No language differs significantly from the reference."
            )
        )
    else:
        st.caption(
            f"Each point: mean cosine similarity of the language's text to its {reference} text, with its "
            "confidence interval (descriptive, no test); 1 would be the reference text itself."
        )
    greyed = own[own["unreadable"]]
    if len(greyed):
        st.caption(
            f"Grey: {', '.join(sorted(set(greyed['lang'])))}: {UNREADABLE_LABEL} (its statistics are kept, "
            "but the model read mostly unknown tokens)."
        )
    if missing:
        st.caption(f"No {metric} rows for {probe_set} in: {', '.join(missing)}.")
    shown = [
        "lang",
        "effect",
        "ci_low",
        "ci_high",
        "p_value",
        "q_value",
        "n",
        "significant",
        "severity",
        "note",
    ]
    st.dataframe(
        own[shown].assign(n=pd.to_numeric(own["n"], errors="coerce").astype("Int64")),
        hide_index=True,
        key="lang_parity_table",
        column_config={
            "effect": st.column_config.NumberColumn(format="%+.4f"),
            "ci_low": st.column_config.NumberColumn(format="%+.4f"),
            "ci_high": st.column_config.NumberColumn(format="%+.4f"),
            "p_value": st.column_config.NumberColumn(format="%.3g"),
            "q_value": st.column_config.NumberColumn(format="%.3g"),
        },
    )

# ---------------------------------------------------------------- 2. tokenization
st.subheader(SECTIONS[1])
present = [m for m in TOKENIZATION_METRICS if (set_findings["metric"] == m).any()]
if not present:
    st.info(f"Probe set {probe_set} has no tokenization findings.")
else:
    columns = st.columns(2)
    for index, tokenization_metric in enumerate(present):
        token_rows = tokenization_rows(
            findings, probe_set, tokenization_metric, order=order, unreadable=unreadable
        )
        with columns[index % 2]:
            st.altair_chart(
                tokenization_chart(
                    token_rows,
                    tokenization_metric,
                    limit=limit if tokenization_metric == "unknown_rate" else None,
                ),
                width="stretch",
                key=f"lang_tokens_{tokenization_metric}",
            )
    per_word = tokenization_rows(findings, probe_set, "fertility_per_word", order=order)
    no_words = list(per_word.loc[~per_word["available"], "lang"])
    st.caption(
        "Tokens per word and per character: the tokenizer's tokens (special tokens not counted) over the "
        "text's words or non-space characters, mean over instances with a bootstrap interval. "
        + (
            f"{', '.join(no_words)}: tokens per word {NOT_AVAILABLE}, the script is written without spaces. "
            if no_words
            else ""
        )
        + f"Dashed red line: unknown-token rate at which a language counts as unreadable ({limit:.0%})."
    )

# ---------------------------------------------------------------- 3. labels and attribution
st.subheader(SECTIONS[2])
table = agreement_table(findings, probe_set, order=order, scripts=scripts)
if table[[*TABLE_METRICS]].isna().all().all():
    st.info(f"Probe set {probe_set} has no label agreement, label accuracy or attribution-share findings.")
else:
    st.dataframe(
        table,
        hide_index=True,
        key="lang_agreement_table",
        column_config={
            column: st.column_config.NumberColumn(format="%.3f")
            for metric_name in TABLE_METRICS
            for column in (metric_name, f"{metric_name}_low", f"{metric_name}_high")
        },
    )
    st.caption(
        f"{catalogue.label('label_agreement')}: share of instances whose predicted label equals the {reference} "
        f"text's; {catalogue.label('label_accuracy')}: share predicted as expected (instances with an expected "
        f"label); {catalogue.label('content_attribution_share')}: share of |attribution| on words outside the "
        "language's function-word list. Columns _low and _high: the confidence interval."
    )

# ---------------------------------------------------------------- 4. side by side
st.subheader(SECTIONS[3])
effects = _read("effects")
predictions = _read("predictions")
attributions = _read("attributions")
if effects is None or predictions is None or attributions is None:
    st.stop()
set_examples = examples[examples["probe_set"] == probe_set]
if set_examples.empty:
    st.info(f"The run's examples table has no texts of probe set {probe_set}.")
    st.stop()
attributed_ids = set(attributions["example_id"].astype(str)) & set(set_examples["example_id"].astype(str))
ranked = rank_parallel_instances(
    effects,
    examples,
    probe_set,
    reference=reference,
    unreadable=unreadable,
    output=output,
    attributed=attributed_ids,
)
descriptions = {}
for record in ranked.to_dict("records"):
    size = record["max_abs_delta"]
    text = str(record["instance_id"])
    if isinstance(size, float) and not math.isnan(size):
        text += f" (|delta| {size:.3f} in {record['language']})"
    if record["attributed"]:
        text += " · token attributions"
    descriptions[str(record["instance_id"])] = text
instance_id = str(
    st.selectbox(
        "Instance (largest |parity delta| first)",
        list(descriptions),
        format_func=descriptions.__getitem__,
        key="lang_instance",
    )
)
rows_by_language = side_by_side_rows(
    examples,
    predictions,
    effects,
    probe_set,
    instance_id,
    order=order,
    scripts=scripts,
    output=output,
    reference=reference,
    unreadable=unreadable,
)
own_attributions = attributions[attributions["example_id"].isin(set(rows_by_language["example_id"]))]
methods = present_values(own_attributions, "method", ("integrated_gradients", "gradient_x_input"))
method = st.selectbox("Attribution method", methods, key="lang_method") if methods else None
tokens = {
    example_id: tokens_from_frame(
        own_attributions[
            (own_attributions["example_id"] == example_id) & (own_attributions["method"] == method)
        ]
    )
    for example_id in rows_by_language["example_id"]
}
if method is None:
    st.info(
        "No token attributions for this instance: a run attributes only the instances with the largest parity "
        "differences (config attribute_top), or was made without attributions. The texts are shown plain."
    )
else:
    explained = present_values(own_attributions[own_attributions["method"] == method], "output")
    st.caption(f"Explained output: {', '.join(explained) or '?'} · one colour scale across the languages")
    st.html(legend_html(focus=False))
    if method == "integrated_gradients" and (unconverged := unconverged_line(own_attributions)):
        st.warning(unconverged)
rtl = [lang for lang in rows_by_language["lang"] if str(lang).split("-")[0] in RTL_LANGUAGES]
st.html(
    side_by_side_html(
        rows_by_language,
        tokens,
        scale=attribution_scale(list(tokens.values())),
        output=output,
        reference=reference,
    )
)
st.caption(
    f"Scores are of {output or 'the first output'}; the difference is the language's score minus the "
    f"{reference} score of this instance."
    + (f" {', '.join(rtl)}: written right to left, and shown so." if rtl else "")
)
