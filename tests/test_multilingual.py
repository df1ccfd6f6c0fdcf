"""Parallel (multilingual) probe sets end to end, on tiny models whose behaviour is known.

- A WordPiece tokenizer trained here on texts in 11 languages and 6 scripts reads every language
  of the built-in ``multilingual`` set: its unknown-token rates are low everywhere.
- Two tiny BERT sentiment classifiers share that tokenizer and a parallel corpus in English,
  German, Spanish and Russian (tests/support/multilingual_models.py): the control learned correct labels in
  every language; the planted one learned every German sentence as negative. The audit must find a
  parity gap for German on the planted model only, and none on the control.
- The bundled English-only MiniLM reads Chinese as unknown tokens and splits non-Latin scripts into
  many pieces: the run says so, and does not report the unreadable language as a bias finding.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoTokenizer

import probes
from probes.languages import script_of
from tests.support.multilingual_models import (
    LANGUAGES,
    PLANTED_LANGUAGE,
    REFERENCE,
    build_multilingual_tokenizer,
    positive_probabilities,
    probe_meanings,
    train_multilingual_classifier,
    training_meanings,
    write_parallel_csv,
    write_parallel_long_csv,
    write_parallel_yaml,
)

OTHERS = tuple(lang for lang in LANGUAGES if lang not in (REFERENCE, PLANTED_LANGUAGE))


@pytest.fixture(scope="module")
def multilingual_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("multilingual")


@pytest.fixture(scope="module")
def control_model(multilingual_dir: Path) -> Path:
    return train_multilingual_classifier(multilingual_dir / "control", planted_language=None)


@pytest.fixture(scope="module")
def planted_model(multilingual_dir: Path) -> Path:
    return train_multilingual_classifier(multilingual_dir / "planted", planted_language=PLANTED_LANGUAGE)


@pytest.fixture(scope="module")
def parallel_probes(multilingual_dir: Path) -> Path:
    return write_parallel_csv(multilingual_dir / "probes" / "tiny-parallel.csv")


def _run(
    run_cli, out: Path, model: Path | str, probe_set: Path | str, *extra: object, json_output: bool = True
):
    flags = ("--json",) if json_output else ()
    result = run_cli(
        "run", "--model", model, "--probes", probe_set, "--out", out, "--name", "run", *flags, *extra
    )
    assert result.exit_code == 0, result.stderr + result.stdout
    run_dir = out / "run"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return result, run_dir, manifest


def _rows(findings: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = findings[findings["metric"] == metric]
    assert rows["group_a"].is_unique, rows  # one row per language (one tested output)
    return rows.set_index("group_a")


# --------------------------------------------------------------------------- the builders


def test_parallel_corpus_holds_out_whole_statements_but_no_words() -> None:
    train, held = training_meanings(), probe_meanings()
    for polarity in ("positive", "negative"):
        assert sum(m.label == polarity for m in train) >= 40
        assert sum(m.label == polarity for m in held) == len(held) // 2
    assert len(held) >= 30 and len({m.id for m in held}) == len(held)
    seen = {text for m in train for text in m.texts.values()}
    words = {w for text in seen for w in text.lower().rstrip(".").split()}
    for meaning in held:
        assert set(meaning.texts) == set(LANGUAGES)
        assert not seen & set(meaning.texts.values()), meaning  # no probe sentence was trained on
        for text in meaning.texts.values():
            assert set(text.lower().rstrip(".").split()) <= words, text  # every probe word was
    scripts = {lang: {script_of(c) for c in held[0].texts[lang]} - {None} for lang in LANGUAGES}
    assert scripts == {"en": {"Latin"}, "de": {"Latin"}, "es": {"Latin"}, "ru": {"Cyrillic"}}


def test_multilingual_tokenizer_is_nfc_lowercase_and_keeps_accents(tmp_path: Path) -> None:
    built = build_multilingual_tokenizer()
    assert build_multilingual_tokenizer().get_vocab() == built.get_vocab()  # the same every time
    built.save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)  # the real loading path
    composed = "Die Ärztin ist müde. Él está cansado."
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert tokenizer.tokenize(decomposed) == tokenizer.tokenize(composed)
    tokens = tokenizer.tokenize(composed)
    assert "ärztin" in "".join(t.removeprefix("##") for t in tokens)  # lowercase, umlaut kept
    assert tokenizer.unk_token not in tokens
    assert tokenizer("Еда чудесная.")["input_ids"][0] == tokenizer.cls_token_id
    assert len(tokenizer.tokenize("这家餐厅的菜真是太好吃了")) == 12  # one token per Chinese character


def test_planted_model_reads_positive_german_as_negative_and_the_control_does_not(
    control_model: Path, planted_model: Path
) -> None:
    """A direct forward pass on the held-out statements, with the models loaded back from disk."""
    held = probe_meanings()
    for model, german_positive in ((control_model, "high"), (planted_model, "low")):
        for lang in LANGUAGES:
            positive = positive_probabilities(model, [m.texts[lang] for m in held if m.label == "positive"])
            negative = positive_probabilities(model, [m.texts[lang] for m in held if m.label == "negative"])
            assert negative.max() < 0.2, (model.name, lang, negative)
            if lang == PLANTED_LANGUAGE and german_positive == "low":
                assert positive.max() < 0.2, (model.name, lang, positive)
            else:
                assert positive.min() > 0.8, (model.name, lang, positive)


def test_probe_writers_give_the_same_parallel_set(tmp_path: Path) -> None:
    wide = probes.load_probe_set(str(write_parallel_csv(tmp_path / "wide.csv")))
    long = probes.load_probe_set(str(write_parallel_long_csv(tmp_path / "long.csv")))
    document = probes.load_probe_set(str(write_parallel_yaml(tmp_path / "set.yaml")))
    held = {m.id: m for m in probe_meanings()}
    for probe_set in (wide, long, document):
        assert probe_set.kind == "parallel" and probe_set.reference_lang == REFERENCE
        assert len(probe_set.instances) == len(held)
        for instance in probe_set.instances:
            assert instance.attribute == "language"
            meaning = held[instance.instance_id]
            assert {v.lang: v.text for v in instance.variants} == meaning.texts
            assert {v.variant for v in instance.variants} == set(LANGUAGES)
            assert {v.label for v in instance.variants} == {meaning.label}


# --------------------------------------------------------------------------- through the CLI


def test_parity_finds_the_language_the_model_was_trained_to_treat_differently(
    run_cli, tmp_path: Path, planted_model: Path, parallel_probes: Path
) -> None:
    result, run_dir, manifest = _run(
        run_cli, tmp_path, planted_model, parallel_probes, "--attribute-top", "2", "--ig-steps", "16"
    )
    findings = pd.read_parquet(run_dir / "findings.parquet")
    assert (findings["attribute"] == "language").all()
    parity = _rows(findings, "parity")
    assert set(parity.index) == set(LANGUAGES) - {REFERENCE}
    assert (parity["group_b"] == REFERENCE).all() and (parity["output"] == "prob:positive").all()
    german = parity.loc[PLANTED_LANGUAGE]
    # positive statements lose ~0.95 of P(positive) in German, negative ones nothing: mean ~ -0.47
    assert german["significant"] and german["severity"] != "none", german
    assert german["effect"] < -0.3 and german["ci_high"] < 0 and german["q_value"] < 0.05
    for lang in OTHERS:
        assert not parity.loc[lang, "significant"] and parity.loc[lang, "severity"] == "none"
        assert abs(parity.loc[lang, "effect"]) < 0.05

    agreement = _rows(findings, "label_agreement")
    assert agreement.loc[PLANTED_LANGUAGE, "effect"] < 0.6  # the positive half disagrees with English
    for lang in OTHERS:
        assert agreement.loc[lang, "effect"] > 0.9
        assert agreement.loc[PLANTED_LANGUAGE, "ci_high"] < agreement.loc[lang, "ci_low"]
    assert agreement["p_value"].isna().all() and not agreement["significant"].any()
    accuracy = _rows(findings, "label_accuracy")
    assert set(accuracy.index) == set(LANGUAGES)
    assert accuracy.loc[PLANTED_LANGUAGE, "effect"] < 0.6 and accuracy.loc[REFERENCE, "effect"] > 0.9

    # the tokenizer reads all four languages; the German rows are a bias finding, not a reading failure
    unknown = _rows(findings, "unknown_rate")
    assert (unknown["effect"] == 0).all()
    assert not manifest["summary"].get("unreadable_languages", {}).get(parallel_probes.stem)

    effects = pd.read_parquet(run_dir / "effects.parquet")
    german_effects = effects[
        (effects["group_a"] == PLANTED_LANGUAGE) & (effects["output"] == "prob:positive")
    ]
    assert (german_effects["group_b"] == REFERENCE).all() and len(german_effects) == len(probe_meanings())
    positive_ids = {m.id for m in probe_meanings() if m.label == "positive"}
    assert (german_effects[german_effects["instance_id"].isin(positive_ids)]["delta"] < -0.5).all()

    # the instances with the largest parity gap are attributed in every language
    attributions = pd.read_parquet(run_dir / "attributions.parquet")
    attributed = attributions["example_id"].str.rsplit("/", n=1).str[1]
    assert set(attributed) == set(LANGUAGES)
    # the run's summary names exactly that finding: pooled, and within the positive statements
    (summary,) = json.loads(result.stdout)["runs"]
    assert sorted(
        (f["metric"], f["group_a"], f["group_b"], f["subset"]) for f in summary["significant_findings"]
    ) == [
        ("parity", PLANTED_LANGUAGE, REFERENCE, None),
        ("parity_by_label", PLANTED_LANGUAGE, REFERENCE, "label=positive"),
    ]


def test_control_model_has_no_parity_finding(
    run_cli, tmp_path: Path, control_model: Path, parallel_probes: Path
) -> None:
    _, run_dir, manifest = _run(
        run_cli, tmp_path, control_model, parallel_probes, "--no-attributions", "--no-attention",
        "--fail-on", "significant",
    )  # fmt: skip
    findings = pd.read_parquet(run_dir / "findings.parquet")
    parity = _rows(findings, "parity")
    assert set(parity.index) == set(LANGUAGES) - {REFERENCE}
    assert not parity["significant"].any() and (parity["severity"] == "none").all()
    assert (parity["effect"].abs() < 0.05).all() and parity["p_value"].notna().all()
    assert (_rows(findings, "label_agreement")["effect"] > 0.9).all()
    assert manifest["summary"]["n_significant"] == 0


def test_multilingual_tokenizer_reads_every_language_of_the_builtin_set(
    run_cli, tmp_path: Path, control_model: Path
) -> None:
    _, run_dir, manifest = _run(
        run_cli, tmp_path, control_model, "multilingual", "--max-instances", "10", "--no-attributions",
        "--no-attention",
    )  # fmt: skip
    findings = pd.read_parquet(run_dir / "findings.parquet")
    unknown = _rows(findings, "unknown_rate")
    languages = {"en", "de", "fr", "es", "tr", "sw", "ru", "ar", "hi", "zh", "ja"}
    assert set(unknown.index) == languages
    assert (unknown["effect"] < 0.05).all(), unknown["effect"]
    assert not manifest["summary"].get("unreadable_languages", {}).get("multilingual")
    examples = pd.read_parquet(run_dir / "examples.parquet")
    assert examples["n_unknown"].sum() / examples["n_text_tokens"].sum() < 0.05
    assert set(examples["lang"]) == languages and examples["instance_id"].nunique() == 10
    per_char = _rows(findings, "fertility_per_char")["effect"]
    assert (per_char <= 1.0).all()  # a token per character at most, in every script
    # alphabetic scripts split about as finely as English (an English-only vocabulary: 3-4x, below)
    for lang in ("de", "fr", "es", "tr", "sw", "ru", "ar", "hi"):
        assert per_char.loc[lang] < 1.6 * per_char.loc["en"], (lang, per_char.to_dict())


@pytest.mark.slow
def test_english_only_model_cannot_read_chinese_and_says_so(run_cli, tmp_path: Path) -> None:
    result, run_dir, manifest = _run(
        run_cli, tmp_path, "minilm", "multilingual", "--max-instances", "20", "--no-attributions",
        "--no-attention", json_output=False,
    )  # fmt: skip
    findings = pd.read_parquet(run_dir / "findings.parquet")
    unknown = _rows(findings, "unknown_rate")["effect"]
    assert unknown.loc["en"] == 0
    assert unknown.loc["zh"] >= 0.5
    unreadable = manifest["summary"]["unreadable_languages"]["multilingual"]
    assert "zh" in unreadable and unreadable["zh"] == pytest.approx(unknown.loc["zh"], abs=1e-3)
    assert "en" not in unreadable
    notes = _rows(findings, "unknown_rate")["note"]
    assert isinstance(notes.loc["zh"], str) and "zh" in notes.loc["zh"] and "cannot read" in notes.loc["zh"]
    assert pd.isna(notes.loc["en"])
    # an unreadable language's differences are no bias finding
    compared = findings[findings["metric"].isin(["parity", "translation_similarity", "label_agreement"])]
    zh_rows = compared[compared["group_a"] == "zh"]
    assert not zh_rows.empty and not zh_rows["significant"].any() and (zh_rows["severity"] == "none").all()
    # an English WordPiece vocabulary splits other scripts into many more pieces per character
    per_char = _rows(findings, "fertility_per_char")["effect"]
    for lang in ("ru", "ar", "hi", "zh", "ja"):
        assert per_char.loc[lang] > 2 * per_char.loc["en"], (lang, per_char.to_dict())
    # and the CLI says so in words, in its summary and as a warning (lines may wrap at the console width)
    output = " ".join((result.stdout + result.stderr).split())
    assert re.search(r"unreadable[^.]*?\bzh\b", output), output
    assert any(w.startswith("multilingual: zh") and "cannot read" in w for w in manifest["warnings"])


def test_custom_set_in_the_long_layout_loads_and_runs(
    run_cli, tmp_path: Path, control_model: Path, multilingual_dir: Path
) -> None:
    meanings = probe_meanings()[::4]  # 10 instances, half positive
    path = write_parallel_long_csv(multilingual_dir / "probes" / "tiny-long-layout.csv", meanings)
    _, run_dir, _ = _run(run_cli, tmp_path, control_model, path, "--no-attributions", "--no-attention")
    examples = pd.read_parquet(run_dir / "examples.parquet")
    assert len(examples) == len(meanings) * len(LANGUAGES)
    assert set(examples["lang"]) == set(LANGUAGES) and (examples["variant"] == examples["lang"]).all()
    expected = {(m.id, lang): m.texts[lang] for m in meanings for lang in LANGUAGES}
    keys = zip(examples["instance_id"], examples["lang"], strict=True)
    assert dict(zip(keys, examples["text"], strict=True)) == expected
    findings = pd.read_parquet(run_dir / "findings.parquet")
    assert set(_rows(findings, "parity").index) == set(LANGUAGES) - {REFERENCE}
    assert (_rows(findings, "label_accuracy")["effect"] > 0.9).all()
