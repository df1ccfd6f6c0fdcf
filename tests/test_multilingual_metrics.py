"""Parallel-set metrics (audit/metrics/multilingual.py) on planted scores: a language shifted
against the reference is found, the others are not, and an unreadable language is flagged
instead of being reported as a bias."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.metrics.multilingual import (
    REFERENCE_SIMILARITY,
    build_language_findings,
    build_parallel_effects,
    build_parallel_findings,
    content_share_findings,
    mark_unreadable,
)
from audit.metrics.options import TestOptions

LANGS = ("de", "en", "ru", "zh")
N = 30
STATS = TestOptions(n_resamples=500, n_permutations=2000)


def planted(shift: dict[str, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """N instances, half positive; P(positive) near 0.9/0.1 with noise, moved by ``shift[lang]``."""
    rng = np.random.default_rng(1)
    examples, predictions = [], []
    for i in range(N):
        label = "positive" if i % 2 == 0 else "negative"
        base = 0.9 if label == "positive" else 0.1
        for lang in LANGS:
            example_id = f"ml/i{i}/{lang}"
            score = float(np.clip(base + shift.get(lang, 0.0) + rng.normal(0, 0.02), 0, 1))
            tokens = 10
            examples.append(
                {
                    "example_id": example_id,
                    "probe_set": "ml",
                    "instance_id": f"i{i}",
                    "variant": lang,
                    "attribute": "language",
                    "lang": lang,
                    "text": {
                        "en": "The food was good.",
                        "de": "Das Essen war gut.",
                        "ru": "Еда была хорошей.",
                        "zh": "食物很好。",
                    }[lang],
                    "label": label,
                    "truncated": lang == "ru" and i < 3,
                    "n_text_tokens": tokens,
                    "n_words": None if lang == "zh" else 4,
                    "n_chars": 15 if lang != "zh" else 5,
                    "n_unknown": 7 if lang == "zh" else 0,
                    "n_unknown_chars": 4 if lang == "zh" else (6 if lang == "ru" else 0),
                    "n_byte_fallback": 0,
                }
            )
            predictions.append(
                {
                    "example_id": example_id,
                    "output": "prob:positive",
                    "score": score,
                    "label": "positive" if score >= 0.5 else "negative",
                }
            )
    return pd.DataFrame(examples).astype({"n_words": "Int64"}), pd.DataFrame(predictions)


def findings_of(
    examples: pd.DataFrame, predictions: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    effects = build_parallel_effects(examples, predictions, {"ml": "en"})
    compared = build_parallel_findings(effects, STATS, examples)
    described = build_language_findings(examples, predictions, STATS, model_labels=["negative", "positive"])
    return mark_unreadable(pd.concat([compared, described], ignore_index=True), 0.5, STATS)


def row(findings: pd.DataFrame, metric: str, lang: str) -> pd.Series:
    rows = findings[(findings["metric"] == metric) & (findings["group_a"] == lang)]
    assert len(rows) == 1, (metric, lang, rows)
    return rows.iloc[0]


def test_effects_compare_each_language_with_the_reference() -> None:
    examples, predictions = planted({"de": -0.3})
    effects = build_parallel_effects(examples, predictions, {"ml": "en"})
    assert set(effects["group_b"]) == {"en"}
    assert set(effects["group_a"]) == {"de", "ru", "zh"}  # "de" < "en" sorts first, and is still group_a
    de = effects[effects["group_a"] == "de"]
    assert len(de) == N
    assert de["delta"].mean() == pytest.approx(-0.2, abs=0.02)  # negatives: 0.1 - 0.3 is clipped to 0
    assert np.allclose(de["delta"], de["score_a"] - de["score_b"])


def test_a_shifted_language_is_found_and_the_others_are_not() -> None:
    findings, unreadable = findings_of(*planted({"de": -0.5}))  # German positives read as negative
    de = row(findings, "parity", "de")
    assert de["significant"] and de["severity"] != "none"
    assert de["ci_high"] < 0 and de["group_b"] == "en"
    assert not row(findings, "parity", "ru")["significant"]
    assert row(findings, "label_agreement", "de")["effect"] < 0.8
    assert row(findings, "label_agreement", "ru")["effect"] == 1.0
    assert row(findings, "label_accuracy", "en")["effect"] == 1.0
    assert unreadable == {"ml": {"zh": 0.8}}


def test_no_shift_no_finding() -> None:
    findings, _ = findings_of(*planted({}))
    assert not findings.loc[findings["metric"] == "parity", "significant"].any()


def test_an_unreadable_language_is_flagged_not_reported_as_bias() -> None:
    findings, unreadable = findings_of(*planted({"zh": -0.4}))
    zh = row(findings, "parity", "zh")
    assert zh["p_value"] < 0.05  # the statistics are kept ...
    assert not zh["significant"] and zh["severity"] == "none"  # ... but it is no bias finding
    assert "not a bias finding" in zh["note"]
    assert "cannot read zh" in row(findings, "unknown_rate", "zh")["note"]
    assert row(findings, "unknown_rate", "en")["effect"] == 0.0
    assert "zh" in unreadable["ml"]


def test_tokenization_descriptions_per_language() -> None:
    findings, _ = findings_of(*planted({}))
    assert row(findings, "fertility_per_word", "en")["effect"] == pytest.approx(10 / 4)
    zh_words = row(findings, "fertility_per_word", "zh")
    assert np.isnan(zh_words["effect"]) and "without spaces" in zh_words["note"]
    assert row(findings, "fertility_per_char", "zh")["effect"] == pytest.approx(2.0)
    assert row(findings, "truncation_rate", "ru")["effect"] == pytest.approx(3 / N)
    described = findings[findings["group_b"].isna()]
    assert described["p_value"].isna().all() and not described["significant"].any()


def test_embedding_similarity_is_described_and_retrieval_is_label_agreement() -> None:
    examples, _ = planted({})
    rng = np.random.default_rng(2)
    rows = []
    for example in examples.itertuples():
        similarity = 1.0 if example.lang == "en" else {"de": 0.8, "ru": 0.6, "zh": 0.1}[example.lang]
        nearest = example.instance_id if example.lang != "zh" else f"i{rng.integers(N)}"
        rows.append(
            {
                "example_id": example.example_id,
                "output": REFERENCE_SIMILARITY,
                "score": similarity,
                "label": nearest,
            }
        )
    effects = build_parallel_effects(examples, pd.DataFrame(rows), {"ml": "en"})
    findings = build_parallel_findings(effects, STATS)
    assert set(findings["metric"]) == {"translation_similarity", "label_agreement"}
    assert row(findings, "translation_similarity", "ru")["effect"] == pytest.approx(0.6)
    assert row(findings, "label_agreement", "de")["effect"] == 1.0
    assert row(findings, "label_agreement", "zh")["effect"] < 0.3
    assert findings["p_value"].isna().all()


def test_content_share_weighs_content_words_against_function_words() -> None:
    examples = pd.DataFrame(
        [
            {"example_id": "ml/i0/en", "probe_set": "ml", "lang": "en", "text": "The food was good."},
            {"example_id": "ml/i0/xx", "probe_set": "ml", "lang": "xx", "text": "Blah blah."},
        ]
    )
    tokens = pd.DataFrame(
        [
            # [CLS] the food was good . [SEP]: "food" and "good" are content words
            ("ml/i0/en", "[CLS]", 0, 0, 5.0),
            ("ml/i0/en", "the", 0, 3, 1.0),
            ("ml/i0/en", "food", 4, 8, -2.0),
            ("ml/i0/en", "was", 9, 12, 1.0),
            ("ml/i0/en", "good", 13, 17, 6.0),
            ("ml/i0/en", ".", 17, 18, 0.0),
            ("ml/i0/xx", "blah", 0, 4, 1.0),
        ],
        columns=["example_id", "token", "char_start", "char_end", "attribution"],
    ).assign(method="integrated_gradients")
    shares = content_share_findings(tokens, examples, {"[CLS]", "[SEP]"}, STATS)
    en = row(shares, "content_attribution_share", "en")
    assert en["effect"] == pytest.approx(8 / 10)
    assert "no function-word list" in row(shares, "content_attribution_share", "xx")["note"]
    assert "did not converge" not in en["note"]
    # a text whose integrated gradients missed the tolerance is kept and counted in the note
    flagged = tokens.assign(converged=True)
    flagged.loc[flagged["example_id"] == "ml/i0/en", "converged"] = False
    en = row(
        content_share_findings(flagged, examples, {"[CLS]", "[SEP]"}, STATS),
        "content_attribution_share",
        "en",
    )
    assert en["effect"] == pytest.approx(8 / 10) and en["n"] == 1
    assert "integrated gradients did not converge for 1 of these texts" in en["note"]


def test_association_outputs_are_compared_by_parity_not_as_seat_sets() -> None:
    examples, predictions = planted({"de": -0.3})
    predictions = predictions.assign(output="assoc:pleasant_vs_unpleasant", label=None)
    effects = build_parallel_effects(examples, predictions, {"ml": "en"})
    findings = build_parallel_findings(effects, STATS)
    assert set(findings["metric"]) == {"parity"}
    assert row(findings, "parity", "de")["significant"]
    assert not row(findings, "parity", "ru")["significant"]


def flipped_language() -> tuple[pd.DataFrame, pd.DataFrame]:
    """de reverses every statement's sentiment: positives read 0.1, negatives 0.9."""
    examples, predictions = planted({})
    de = predictions["example_id"].str.endswith("/de")
    predictions.loc[de, "score"] = 1.0 - predictions.loc[de, "score"]
    predictions.loc[de, "label"] = np.where(predictions.loc[de, "score"] >= 0.5, "positive", "negative")
    return examples, predictions


def test_a_language_read_backwards_is_found_per_label_though_its_pooled_parity_cancels() -> None:
    findings, _ = findings_of(*flipped_language())
    assert not row(findings, "parity", "de")["significant"]  # +0.8 on negatives, -0.8 on positives
    by_label = findings[(findings["metric"] == "parity_by_label") & (findings["group_a"] == "de")]
    assert set(by_label["subset"]) == {"label=negative", "label=positive"}
    assert by_label["significant"].all() and (by_label["severity"] == "high").all()
    negative = by_label[by_label["subset"] == "label=negative"].iloc[0]
    assert negative["effect"] == pytest.approx(0.8, abs=0.02) and negative["n"] == N // 2
    assert row(findings, "label_agreement", "de")["effect"] == 0.0
    ru = findings[(findings["metric"] == "parity_by_label") & (findings["group_a"] == "ru")]
    assert len(ru) == 2 and not ru["significant"].any()


def test_unreadable_rows_leave_the_bh_family() -> None:
    findings, _ = findings_of(*planted({"de": -0.5, "zh": -0.4}))
    zh = findings[findings["metric"].isin(["parity", "parity_by_label"]) & (findings["group_a"] == "zh")]
    assert zh["p_value"].notna().all() and zh["q_value"].isna().all() and not zh["significant"].any()
    family = findings[findings["metric"].isin(["parity", "parity_by_label"]) & (findings["group_a"] != "zh")]
    from audit.metrics.stats import benjamini_hochberg

    assert np.allclose(family["q_value"], benjamini_hochberg(family["p_value"].to_numpy()))


def test_an_unreadable_reference_makes_every_comparison_of_its_set_no_finding() -> None:
    examples, predictions = planted({"de": -0.5})
    effects = build_parallel_effects(examples, predictions, {"ml": "zh"})
    compared = build_parallel_findings(effects, STATS, examples)
    described = build_language_findings(examples, predictions, STATS, model_labels=None)
    findings, unreadable = mark_unreadable(pd.concat([compared, described], ignore_index=True), 0.5, STATS)
    assert unreadable == {"ml": {"zh": 0.8}}
    parity = findings[findings["metric"] == "parity"]
    assert set(parity["group_b"]) == {"zh"} and len(parity) == 3
    assert not parity["significant"].any() and parity["note"].str.contains("reference language zh").all()


def test_token_ratio_compares_each_text_with_its_reference_text() -> None:
    findings, _ = findings_of(*planted({}))
    zh = row(findings, "token_ratio", "zh")
    assert zh["effect"] == pytest.approx(1.0) and zh["group_b"] == "en"  # 10 tokens each in the plant


def test_a_language_whose_characters_are_mostly_unknown_is_unreadable_though_few_tokens_are() -> None:
    """WordPiece makes one [UNK] of a whole unknown word: ru plants 0 unknown tokens of 10 but 6 of
    its 15 characters unknown; with a limit of 0.35 that is unreadable (zh too: 4 of 5 characters)."""
    examples, predictions = planted({})
    effects = build_parallel_effects(examples, predictions, {"ml": "en"})
    compared = build_parallel_findings(effects, STATS, examples)
    described = build_language_findings(examples, predictions, STATS, model_labels=None)
    findings, unreadable = mark_unreadable(pd.concat([compared, described], ignore_index=True), 0.35, STATS)
    assert row(findings, "unknown_rate", "ru")["effect"] == 0.0
    assert row(findings, "unknown_char_rate", "ru")["effect"] == pytest.approx(0.4)
    assert unreadable == {"ml": {"ru": 0.4, "zh": 0.8}}
