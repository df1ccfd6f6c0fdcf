"""Parallel (multilingual) probe sets end to end, on tiny models whose behaviour is known.

- A WordPiece tokenizer trained here on texts in 11 languages and 6 scripts reads every language
  of the built-in ``multilingual`` set: its unknown-token rates are low everywhere.
- Two tiny BERT sentiment classifiers share that tokenizer and a parallel corpus in English,
  German, Spanish and Russian (tests/multilingual_models.py): the control learned correct labels in
  every language; the planted one learned every German sentence as negative. The audit must find a
  parity gap for German on the planted model only, and none on the control.
- The bundled English-only MiniLM reads Chinese as unknown tokens and splits non-Latin scripts into
  many pieces: the run says so, and does not report the unreadable language as a bias finding.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from multilingual_models import (
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
from transformers import AutoTokenizer

import probes
from probes.parallel import script_of

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


def _run(run_cli, out: Path, model: Path | str, probe_set: Path | str, *extra: object):
    result = run_cli(
        "run", "--model", model, "--probes", probe_set, "--out", out, "--name", "run", "--json", *extra
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
    build_multilingual_tokenizer().save_pretrained(tmp_path)
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
