"""Parallel (multilingual) probe sets: each language against the reference language, and how well
the tokenizer covers each language.

An instance of a parallel set is one meaning written in several languages (its variants are
language codes; one of them is the set's reference, usually ``en``). Every finding row has
``attribute = "language"`` and ``group_a`` = the language; comparisons name the reference language
in ``group_b``, per-language descriptions leave it null (the reference gets its own description).

Comparisons with the reference (``build_parallel_effects`` / ``build_parallel_findings``):

- ``parity``: per language x tested output, the mean over instances of
  ``score(language) - score(reference)``; BCa CI, sign-flip p-value, Benjamini-Hochberg q-value
  across the parity rows of the run (their own family), ``min_effect`` as practical threshold;
  significant and severity as the counterfactual ``mean_delta`` (audit/metrics/paired.py).
- ``parity_by_label``: the same within the instances of one expected label (``subset``
  "label=negative"), in the same family: a model that is merely less sure of a language moves its
  positives down and its negatives up, which the pooled mean can average away.
- ``token_ratio``: tokens of a language's text over tokens of the reference text of the same
  instance, mean and BCa CI: the tokenizer's price for the language, free of how dense its script
  is (fertility per character is 1.0 for Chinese read one character per token, known or not).
- ``translation_similarity``: embedding models scored by similarity to the reference text (the
  output ``sim:reference``, 1.0 for the reference text itself): the mean similarity of a
  language's texts to their reference texts, BCa CI. Descriptive: a reference scores 1 by
  construction, so "lower than the reference" is no hypothesis worth a p-value.
- ``label_agreement``: the share of instances whose predicted label is the reference text's
  (for ``sim:reference``: whose nearest reference text is its own translation, i.e. retrieval
  accuracy); Wilson interval; descriptive, as the counterfactual flip rate.

Per-language descriptions (``build_language_findings``), from the ``examples`` token counts
(audit/tokenization.py) and predictions; each a mean over the language's instances with a BCa
interval, or a share with a Wilson interval; descriptive (no p-value, never significant):

- ``fertility_per_word`` (tokens per word; NaN with a note for scripts written without spaces),
  (per character, fertility depends on the script: compare languages by ``token_ratio``)
  ``fertility_per_char``, ``unknown_rate``, ``byte_fallback_rate``, ``truncation_rate``;
- ``label_accuracy``: instances whose expected label the model has: predicted == expected.

``unknown_char_rate``: the share of a language's characters inside unknown tokens (WordPiece turns
a whole unknown word into one ``[UNK]``, so the token share understates what is lost).

Unreadable languages: a language whose ``unknown_rate`` or ``unknown_char_rate`` reaches
``unknown_rate_limit`` (default 0.5: most of it is the unknown token) cannot be read by the model. Its
``unknown_rate`` row says so, and its ``parity`` rows keep their statistics but are never
significant (severity "none") and say why: the difference measures missing vocabulary, not a bias.

``content_attribution_share`` (``content_share_findings``), once attributions exist: per language,
the share of |attribution| on content words (probes/function_words.py), special tokens left out,
mean over the attributed instances, BCa interval, descriptive. Texts whose integrated gradients
missed the completeness tolerance (attributions ``converged`` = false) are kept, and the row's note
counts them: the share is a ratio within one text, so it does not need the attributions to add up to
the score, but such a text's attributions are indicative only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from audit.kinds.names import PARALLEL
from audit.metrics import stats
from audit.metrics.catalogue import METRIC_RANK, family_members
from audit.metrics.family import apply_family_test
from audit.metrics.options import TestOptions
from audit.metrics.paired import build_effects, build_findings
from audit.tables import TABLES, findings_frame
from probes.function_words import content_mask

LANGUAGE = "language"
REFERENCE_SIMILARITY = "sim:reference"
"""The output of embedding models on parallel sets: cosine similarity to the reference text."""
DEFAULT_UNKNOWN_RATE_LIMIT = 0.5
_BOOTSTRAP = 7  # purpose code for default_rng([seed, purpose, n]) (paired.py uses 0-3)


def build_parallel_effects(
    examples: pd.DataFrame, predictions: pd.DataFrame, references: Mapping[str, str]
) -> pd.DataFrame:
    """Effects of each language against its set's reference: ``group_a`` = the language,
    ``group_b`` = the reference, ``delta = score(language) - score(reference)``.

    ``references``: probe set name -> its reference language. Instances without a reference
    text have nothing to compare with and give no rows.
    """
    pairs = build_effects(examples, predictions)
    pairs = pairs[pairs["group_b"] != "rest"]
    reference = pairs["probe_set"].map(references)
    swap = pairs["group_a"] == reference
    keep = swap | (pairs["group_b"] == reference)
    pairs = pairs[keep].copy()
    swap = swap[keep]
    for left, right in (("group_a", "group_b"), ("score_a", "score_b"), ("label_a", "label_b")):
        a, b = pairs.loc[swap, left].copy(), pairs.loc[swap, right].copy()
        pairs.loc[swap, left], pairs.loc[swap, right] = b, a
    pairs["delta"] = pairs["score_a"] - pairs["score_b"]
    return pairs.sort_values(["probe_set", "instance_id", "output", "group_a"], kind="mergesort")[
        TABLES["effects"]
    ].reset_index(drop=True)


def build_parallel_findings(
    effects: pd.DataFrame,
    options: TestOptions,
    examples: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """parity (and parity_by_label), translation_similarity, token_ratio and label_agreement rows
    (see the module docstring). ``examples`` (with ``label`` and the token counts) adds the rows
    per expected label and the token ratios."""
    if effects.empty:
        return _frame([])
    similarity = effects["output"] == REFERENCE_SIMILARITY
    tested = build_findings(effects[~similarity], options)
    tested["metric"] = tested["metric"].replace({"mean_delta": "parity", "flip_rate": "label_agreement"})
    # association outputs: languages are compared per instance (parity), not as SEAT target sets
    tested = tested[tested["metric"] != "seat_effect_size"].copy()
    if examples is not None and not tested.empty:
        tested = pd.concat(
            [tested, _parity_by_label(effects[~similarity], examples, options)], ignore_index=True
        )
    tested = apply_family_test(tested, options.alpha, PARALLEL)
    agreement = tested["metric"] == "label_agreement"
    low, high = tested.loc[agreement, "ci_low"].copy(), tested.loc[agreement, "ci_high"].copy()
    tested.loc[agreement, "effect"] = 1.0 - tested.loc[agreement, "effect"]
    tested.loc[agreement, "ci_low"], tested.loc[agreement, "ci_high"] = 1.0 - high, 1.0 - low
    rows = [] if tested.empty else [tested]
    for keys, group in effects[similarity].groupby(["probe_set", "group_a", "group_b"], sort=True):
        probe_set, language, reference = (str(k) for k in keys)
        scores = group["score_a"].to_numpy(dtype=float)
        scores = scores[np.isfinite(scores)]
        if scores.size:
            rows.append(
                _frame(
                    [
                        _described(
                            probe_set,
                            language,
                            "translation_similarity",
                            scores,
                            options,
                            output=REFERENCE_SIMILARITY,
                            reference=reference,
                        )
                    ]
                )
            )
        flips = group["flipped"].dropna().to_numpy(dtype=bool)
        if flips.size:
            retrieval = _share(
                probe_set, language, "label_agreement", ~flips, options.confidence, reference=reference
            )
            pool = effects.loc[effects["probe_set"] == probe_set, "instance_id"].nunique()
            retrieval["note"] = (
                f"retrieval: the {reference} text of the same instance is the nearest of {pool} {reference} "
                f"texts (chance {1 / pool:.1%}); depends on how many instances are audited"
            )
            rows.append(_frame([retrieval]))
    if examples is not None:
        rows.append(_token_ratios(examples, effects, options))
    return _ordered(pd.concat(rows, ignore_index=True)) if rows else _frame([])


def _expected_labels(examples: pd.DataFrame) -> pd.Series:
    """(probe_set, instance_id) -> the instance's expected label (null when it states none)."""
    labelled = examples.dropna(subset=["label"]).drop_duplicates(["probe_set", "instance_id"])
    return labelled.set_index(["probe_set", "instance_id"])["label"].astype(str)


def _parity_by_label(effects: pd.DataFrame, examples: pd.DataFrame, options: TestOptions) -> pd.DataFrame:
    """Parity within the instances of each expected label: a language the model is merely less
    sure about moves positives down and negatives up, which the pooled mean can hide."""
    expected = _expected_labels(examples)
    if expected.empty or expected.nunique() < 2:
        return _frame([])
    keys = pd.MultiIndex.from_frame(effects[["probe_set", "instance_id"]])
    labels = pd.Series(expected.reindex(keys).to_numpy(), index=effects.index)
    frames = []
    for label in sorted(labels.dropna().unique()):
        rows = build_findings(effects[labels == label], options)
        rows = rows[rows["metric"] == "mean_delta"].assign(metric="parity_by_label", subset=f"label={label}")
        frames.append(rows)
    return pd.concat(frames, ignore_index=True) if frames else _frame([])


def _token_ratios(examples: pd.DataFrame, effects: pd.DataFrame, options: TestOptions) -> pd.DataFrame:
    """Per language: tokens of its text / tokens of the reference text of the same instance. The
    texts say the same thing, so this is the tokenizer's price for the language, free of how dense
    its script is (a Chinese character is one token whether the tokenizer knows it or not)."""
    pairs = effects[["probe_set", "group_a", "group_b"]].drop_duplicates()
    if pairs.empty or "n_text_tokens" not in examples.columns:
        return _frame([])
    counts = examples.set_index(["probe_set", "instance_id", "lang"])["n_text_tokens"].astype(float)
    rows = []
    for probe_set, language, reference in pairs.itertuples(index=False):
        mine = examples[(examples["probe_set"] == probe_set) & (examples["lang"] == language)]
        theirs = counts.reindex(
            pd.MultiIndex.from_arrays([mine["probe_set"], mine["instance_id"], [reference] * len(mine)])
        ).to_numpy()
        own = mine["n_text_tokens"].to_numpy(dtype=float)
        usable = theirs > 0
        rows.append(
            _described(
                str(probe_set),
                str(language),
                "token_ratio",
                own[usable] / theirs[usable],
                options,
                reference=str(reference),
            )
        )
    return _frame(rows)


def build_language_findings(
    examples: pd.DataFrame,
    predictions: pd.DataFrame,
    options: TestOptions,
    *,
    model_labels: list[str] | None,
) -> pd.DataFrame:
    """Per-language descriptions: tokenizer coverage, truncation and label accuracy."""
    rows: list[dict[str, object]] = []
    for keys, group in examples.groupby(["probe_set", "lang"], sort=True):
        probe_set, language = (str(k) for k in keys)
        tokens = group["n_text_tokens"].to_numpy(dtype=float)
        has_tokens = tokens > 0
        words = pd.to_numeric(group["n_words"], errors="coerce").to_numpy(dtype=float)
        chars = group["n_chars"].to_numpy(dtype=float)
        rows.append(_ratio_row(probe_set, language, "unknown_rate", group["n_unknown"], tokens, options))
        if "n_unknown_chars" in group.columns and group["n_unknown_chars"].notna().all():
            rows.append(
                _ratio_row(
                    probe_set,
                    language,
                    "unknown_char_rate",
                    group["n_unknown_chars"].astype(float),
                    chars,
                    options,
                )
            )
        rows.append(
            _ratio_row(
                probe_set,
                language,
                "byte_fallback_rate",
                group["n_byte_fallback"],
                tokens,
                options,
            )
        )
        if np.isnan(words).all():
            rows.append(
                _empty_row(
                    probe_set,
                    language,
                    "fertility_per_word",
                    len(group),
                    f"{language} is written without spaces between words: see fertility_per_char",
                )
            )
        else:
            counted = words > 0
            rows.append(
                _described(
                    probe_set,
                    language,
                    "fertility_per_word",
                    tokens[counted] / words[counted],
                    options,
                )
            )
        counted = (chars > 0) & has_tokens
        rows.append(
            _described(
                probe_set,
                language,
                "fertility_per_char",
                tokens[counted] / chars[counted],
                options,
            )
        )
        rows.append(
            _share(
                probe_set,
                language,
                "truncation_rate",
                group["truncated"].to_numpy(dtype=bool),
                options.confidence,
            )
        )
        if model_labels:
            accuracy = _accuracy(group, predictions, model_labels)
            if accuracy.size:
                rows.append(_share(probe_set, language, "label_accuracy", accuracy, options.confidence))
    return _ordered(_frame([r for r in rows if r is not None]))


def mark_unreadable(
    findings: pd.DataFrame, limit: float, options: TestOptions
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Languages whose unknown_rate reaches ``limit``: their unknown_rate row says the model cannot
    read them; their comparison rows (and every comparison of the set, when the reference itself
    is unreadable) keep their statistics but leave the BH family, are never significant, and say
    why. Returns the findings and, per probe set, the unreadable languages with their unknown rates."""
    coverage = findings[findings["metric"].isin(["unknown_rate", "unknown_char_rate"])]
    worst = coverage.groupby(["probe_set", "group_a"])["effect"].transform("max")
    rates = coverage[(coverage["metric"] == "unknown_rate") & (worst >= limit)].assign(effect=worst)
    unreadable: dict[str, dict[str, float]] = {}
    if rates.empty:
        return findings, unreadable
    findings = findings.copy()
    tested = findings["metric"].isin(family_members(PARALLEL))
    comparison = tested | findings["metric"].isin(
        ["translation_similarity", "label_agreement", "token_ratio"]
    )
    left_out = pd.Series(False, index=findings.index)
    for index, row in rates.iterrows():
        probe_set, language, rate = str(row["probe_set"]), str(row["group_a"]), float(row["effect"])
        unreadable.setdefault(probe_set, {})[language] = round(rate, 4)
        findings.at[index, "note"] = (
            f"up to {rate:.0%} of {language} (tokens or characters) is the unknown token (limit {limit:.0%}): "
            f"the model cannot read {language}"
        )
        in_set = findings["probe_set"] == probe_set
        as_language = comparison & in_set & (findings["group_a"] == language)
        as_reference = comparison & in_set & (findings["group_b"] == language)
        findings.loc[as_language, "note"] = (
            f"up to {rate:.0%} of {language} is unknown to the model: this difference measures "
            "missing vocabulary, not a bias finding"
        )
        findings.loc[as_reference & ~as_language, "note"] = (
            f"up to {rate:.0%} of the reference language {language} is unknown to the model: "
            "comparisons with it measure missing vocabulary, not a bias finding"
        )
        left_out |= as_language | as_reference
    findings = apply_family_test(findings, options.alpha, PARALLEL, left_out=left_out & tested)
    findings.loc[left_out, "significant"] = False
    findings.loc[left_out, "severity"] = "none"
    findings["significant"] = findings["significant"].astype(bool)
    return findings, unreadable


def content_share_findings(
    attributions: pd.DataFrame,
    examples: pd.DataFrame,
    special_tokens: set[str],
    options: TestOptions,
) -> pd.DataFrame:
    """Per language: the share of |attribution| on content-word tokens (``special_tokens`` left out:
    pass them without the unknown token, which stands for words the model could not read), one
    value per attributed text, for the first attribution method present."""
    if attributions.empty:
        return _frame([])
    method = str(attributions["method"].iloc[0])
    tokens = attributions[(attributions["method"] == method) & ~attributions["token"].isin(special_tokens)]
    texts = examples.set_index("example_id")[["probe_set", "lang", "text"]]
    shares: dict[tuple[str, str], list[float]] = {}
    unconverged: dict[tuple[str, str], int] = {}
    no_list: set[tuple[str, str]] = set()
    for example_id, rows in tokens.groupby("example_id", sort=True):
        if example_id not in texts.index:
            continue
        probe_set, language, text = texts.loc[example_id]
        key = (str(probe_set), str(language))
        mask = content_mask(str(text), str(language))
        if mask is None:
            no_list.add(key)
            continue
        weights = rows["attribution"].abs().to_numpy(dtype=float)
        total = weights.sum()
        if not total > 0:
            continue
        # a token spanning a function word and a content word counts by its share of content characters
        content = np.array(
            [
                float(np.mean(mask[int(s) : int(e)])) if int(e) > int(s) else 0.0
                for s, e in zip(rows["char_start"], rows["char_end"], strict=True)
            ]
        )
        shares.setdefault(key, []).append(float((weights * content).sum() / total))
        if "converged" in rows.columns and (rows["converged"].astype("boolean") == False).any():  # noqa: E712
            unconverged[key] = unconverged.get(key, 0) + 1
    rows_out = []
    for (probe_set, language), values in sorted(shares.items()):
        row = _described(
            probe_set,
            language,
            "content_attribution_share",
            np.asarray(values),
            options,
        )
        missed = unconverged.get((probe_set, language), 0)
        row["note"] = (
            f"{method}, {len(values)} attributed text(s) (the instances with the largest parity differences); "
            "content words: all but the closed-class words of probes/function_words (a heuristic for scripts "
            "without spaces); punctuation counts as not content"
        ) + (
            f"; integrated gradients did not converge for {missed} of these texts (converged = false in "
            "attributions): kept, as the share is a ratio within each text, but their attributions are "
            "indicative only"
            if missed
            else ""
        )
        rows_out.append(row)
    for probe_set, language in sorted(no_list - set(shares)):
        rows_out.append(
            _empty_row(
                probe_set,
                language,
                "content_attribution_share",
                0,
                f"no function-word list for {language}: content words cannot be told apart",
            )
        )
    return _ordered(_frame(rows_out))


# --- rows ------------------------------------------------------------------------------------


def _accuracy(group: pd.DataFrame, predictions: pd.DataFrame, model_labels: list[str]) -> np.ndarray:
    expected = group[group["label"].isin(model_labels)][["example_id", "label"]]
    if expected.empty:
        return np.zeros(0, dtype=bool)
    predicted = predictions.drop_duplicates("example_id").set_index("example_id")["label"]
    matched = expected["example_id"].map(predicted)
    return (matched.astype(str) == expected["label"].astype(str)).to_numpy(dtype=bool)


def _base(
    probe_set: str, language: str, metric: str, reference: str | None, output: str | None
) -> dict[str, object]:
    return {
        "probe_set": probe_set,
        "attribute": LANGUAGE,
        "group_a": language,
        "group_b": reference,
        "metric": metric,
        "output": output,
        "ci_method": None,
        "p_value": math.nan,
        "q_value": math.nan,
        "effect_size": math.nan,
        "threshold": math.nan,
        "significant": False,
        "severity": "none",
        "doc_length": pd.NA,
        "position": math.nan,
        "note": None,
    }


def _described(
    probe_set: str,
    language: str,
    metric: str,
    values: np.ndarray,
    options: TestOptions,
    *,
    output: str | None = None,
    reference: str | None = None,
) -> dict[str, object]:
    """A mean over instances with its BCa interval (descriptive)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return _empty_row(probe_set, language, metric, 0, "nothing to measure")
    low, high = stats.bootstrap_ci(
        values,
        confidence=options.confidence,
        n_resamples=options.n_resamples,
        rng=np.random.default_rng([options.seed, _BOOTSTRAP, values.size]),
    )
    row = _base(probe_set, language, metric, reference, output)
    row.update(
        effect=float(values.mean()),
        ci_low=low,
        ci_high=high,
        n=int(values.size),
        ci_method=stats.BCA_BOOTSTRAP,
    )
    return row


def _ratio_row(
    probe_set: str,
    language: str,
    metric: str,
    counts: pd.Series,
    tokens: np.ndarray,
    options: TestOptions,
) -> dict[str, object]:
    has_tokens = tokens > 0
    values = counts.to_numpy(dtype=float)[has_tokens] / tokens[has_tokens]
    return _described(probe_set, language, metric, values, options)


def _share(
    probe_set: str,
    language: str,
    metric: str,
    hits: np.ndarray,
    confidence: float,
    *,
    reference: str | None = None,
) -> dict[str, object]:
    """A share with its Wilson interval (descriptive)."""
    rate = stats.flip_rate_ci(hits, confidence=confidence)
    row = _base(probe_set, language, metric, reference, None)
    row.update(effect=rate.rate, ci_low=rate.ci_low, ci_high=rate.ci_high, n=rate.n, ci_method=stats.WILSON)
    return row


def _empty_row(probe_set: str, language: str, metric: str, n: int, note: str) -> dict[str, object]:
    row = _base(probe_set, language, metric, None, None)
    row.update(effect=math.nan, ci_low=math.nan, ci_high=math.nan, n=n, note=note)
    return row


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Findings rows of parallel sets; the columns that may be null are kept as objects (None, not NaN)."""
    return findings_frame(rows, object_columns=("output", "group_b", "ci_method", "note", "subset"))


def _ordered(findings: pd.DataFrame) -> pd.DataFrame:
    rank = findings["metric"].map(METRIC_RANK)
    return (
        findings.assign(_rank=rank)
        .sort_values(["probe_set", "_rank", "group_a", "output"], kind="mergesort", na_position="last")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


__all__ = [
    "DEFAULT_UNKNOWN_RATE_LIMIT",
    "REFERENCE_SIMILARITY",
    "build_language_findings",
    "build_parallel_effects",
    "build_parallel_findings",
    "content_share_findings",
    "mark_unreadable",
]
