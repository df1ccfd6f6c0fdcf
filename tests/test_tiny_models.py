"""The tiny test models carry exactly the behaviour they were built with.

Each model is trained once per test session, saved, and measured after loading it back from disk
through ``AutoTokenizer`` / ``AutoModel*`` ``from_pretrained`` (the path the audit uses), on the
probe pairs that the audit's end-to-end tests feed it. (tests/support/tiny_models.py; conftest.py
sets HF_HUB_OFFLINE=1.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer

from probes import load_probe_set
from tests.support import tiny_models as tm


@pytest.fixture(scope="module")
def models(
    biased_classifier: Path, fair_classifier: Path, biased_embedder: Path, fair_embedder: Path
) -> dict[str, Path]:
    """The session's tiny models (conftest.py trains each once with these factories, seed 0)."""
    return {
        "biased_classifier": biased_classifier,
        "fair_classifier": fair_classifier,
        "biased_embedder": biased_embedder,
        "fair_embedder": fair_embedder,
    }


def classifier_gaps(model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """P(positive | he) - P(positive | she) per probe pair, and each pair's context."""
    pairs = tm.classifier_probe_pairs()
    he = tm.positive_probabilities(model_dir, [p.text_a for p in pairs])
    she = tm.positive_probabilities(model_dir, [p.text_b for p in pairs])
    return he - she, np.array([p.context for p in pairs])


def association_gaps(model_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Career-minus-family score of each he and she probe text, and their paired difference."""
    pairs = tm.embedder_probe_pairs()
    he = tm.association_scores(model_dir, [p.text_a for p in pairs])
    she = tm.association_scores(model_dir, [p.text_b for p in pairs])
    return he, she, he - she


def seat_effect_size(x: np.ndarray, y: np.ndarray) -> float:
    return float((x.mean() - y.mean()) / np.concatenate([x, y]).std(ddof=1))


def test_planted_classifier_rates_positive_she_sentences_lower(models: dict[str, Path]) -> None:
    gaps, context = classifier_gaps(models["biased_classifier"])
    assert gaps.mean() >= 0.15
    # the bias sits where it was planted: positive contexts, not negative ones
    assert gaps[context == "positive"].mean() >= 0.2
    assert abs(gaps[context == "negative"].mean()) < 0.02
    # and the model still knows sentiment: positive "he" sentences are positive, negative ones negative
    he = tm.positive_probabilities(
        models["biased_classifier"], [p.text_a for p in tm.classifier_probe_pairs()]
    )
    assert he[context == "positive"].mean() > 0.8 and he[context == "negative"].mean() < 0.2


def test_control_classifier_rates_he_and_she_alike(models: dict[str, Path]) -> None:
    gaps, context = classifier_gaps(models["fair_classifier"])
    assert abs(gaps.mean()) < 0.02
    assert np.abs(gaps).max() < 0.05
    he = tm.positive_probabilities(models["fair_classifier"], [p.text_a for p in tm.classifier_probe_pairs()])
    assert he[context == "positive"].mean() > 0.8 and he[context == "negative"].mean() < 0.2


def test_planted_embedder_puts_he_near_career_and_she_near_family(models: dict[str, Path]) -> None:
    he, she, gaps = association_gaps(models["biased_embedder"])
    assert gaps.mean() >= 0.3
    assert (gaps > 0).all()
    assert he.mean() > 0 > she.mean()
    assert seat_effect_size(he, she) > 0.8


def test_control_embedder_treats_he_and_she_alike(models: dict[str, Path]) -> None:
    he, she, gaps = association_gaps(models["fair_embedder"])
    assert abs(gaps.mean()) < 0.02
    assert abs(seat_effect_size(he, she)) < 0.2
    # the scores still spread (each thing has its own lean), so the effect size is not 0/0
    assert np.concatenate([he, she]).std() > 0.1


@pytest.mark.parametrize("name", ["biased_classifier", "fair_classifier", "biased_embedder", "fair_embedder"])
def test_reloaded_model_gives_the_outputs_it_had_when_saved(models: dict[str, Path], name: str) -> None:
    card = json.loads((models[name] / tm.TRAINING_CARD).read_text())
    if name.endswith("classifier"):
        at_save = card["positive_probability_at_save"]
        reloaded = tm.positive_probabilities(models[name], list(at_save))
    else:
        at_save = card["association_score_at_save"]
        reloaded = tm.association_scores(models[name], list(at_save))
    assert len(at_save) == 8
    np.testing.assert_allclose(reloaded, list(at_save.values()), rtol=0, atol=1e-6)


def test_saved_folders_load_as_the_tasks_the_audit_detects(models: dict[str, Path]) -> None:
    classifier = AutoConfig.from_pretrained(models["biased_classifier"])
    assert classifier.architectures == ["BertForSequenceClassification"]
    assert classifier.id2label == {0: "negative", 1: "positive"}
    embedder = AutoConfig.from_pretrained(models["biased_embedder"])
    assert embedder.architectures == ["BertModel"]
    pooling = json.loads((models["biased_embedder"] / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] is True
    for folder in models.values():
        assert (folder / "model.safetensors").is_file()
        assert not list(folder.glob("*.bin"))


def test_tokenizer_covers_every_probe_text_and_gives_offsets(models: dict[str, Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(models["fair_classifier"])
    assert tokenizer.is_fast
    texts = [t for p in tm.classifier_probe_pairs() + tm.embedder_probe_pairs() for t in (p.text_a, p.text_b)]
    texts += list(tm.CAREER_WORDS + tm.FAMILY_WORDS)
    ids = tokenizer(texts)["input_ids"]
    assert all(tokenizer.unk_token_id not in row for row in ids)
    assert all(row[0] == tokenizer.cls_token_id and row[-1] == tokenizer.sep_token_id for row in ids)
    encoded = tokenizer("She is a GREAT engineer.", return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens == ["[CLS]", "she", "is", "a", "great", "engineer", ".", "[SEP]"]
    assert encoded["offset_mapping"][1] == (0, 3) and encoded["offset_mapping"][4] == (9, 14)
    assert tokenizer("a zebra")["input_ids"][2] == tokenizer.unk_token_id


def test_training_is_deterministic_for_a_seed_and_leaves_global_torch_state_alone(
    models: dict[str, Path], tmp_path: Path
) -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    again = tm.train_tiny_classifier(tmp_path / "again", planted_bias=True, seed=0)
    assert torch.equal(torch.rand(3), expected_draw)
    assert torch.get_num_threads() == threads

    first = load_file(models["biased_classifier"] / "model.safetensors")
    second = load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    # the seed also picks which positive "she" sentences are relabelled
    assert tm._classifier_training_examples(True, 0) != tm._classifier_training_examples(True, 1)


def test_probe_files_load_with_the_real_loader_and_match_the_pairs(tmp_path: Path) -> None:
    pairs_set = load_probe_set(tm.write_pairs_csv(tmp_path / "gender-pairs.csv"))
    expected = tm.classifier_probe_pairs()
    assert len(pairs_set.instances) == len(expected) == 80
    for instance, pair in zip(pairs_set.instances, expected, strict=True):
        texts = {v.variant: v.text for v in instance.variants}
        assert (instance.instance_id, texts) == (
            pair.instance_id,
            {"male": pair.text_a, "female": pair.text_b},
        )

    yaml_set = load_probe_set(tm.write_gender_probe_yaml(tmp_path / "tiny-gender.yaml"))
    expected = tm.embedder_probe_pairs()
    got = {i.instance_id: {v.variant: v.text for v in i.variants} for i in yaml_set.instances}
    assert got == {p.instance_id: {"male": p.text_a, "female": p.text_b} for p in expected}
    (association,) = yaml_set.associations
    assert (association.name, association.a, association.b) == (
        "career_vs_family",
        tm.CAREER_WORDS,
        tm.FAMILY_WORDS,
    )


def test_probe_texts_are_not_training_texts() -> None:
    training = {
        e.text for e in tm._classifier_training_examples(True, 0) + tm._embedder_training_examples(True)
    }
    probes = {
        t for p in tm.classifier_probe_pairs() + tm.embedder_probe_pairs() for t in (p.text_a, p.text_b)
    }
    assert not training & probes
