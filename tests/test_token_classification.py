"""Token classification (NER) end to end, on tiny models whose behaviour is known
(tests/support/ner_qa_models.py): the planted recognizer tags the african_american names of the built-in
``names-ner`` set as O and every other name as a person; the control tags every name as a person.
The audit must find the recall gap on the planted model only, and its scores must be the model's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoModelForTokenClassification, AutoTokenizer, BertForTokenClassification

from audit.metrics.entity_recall import build_entity_recall_findings
from audit.metrics.options import TestOptions
from audit.stages.prepare import default_probe_sets
from audit.tables import TABLES
from audit.targets.token_classification import entity_type, person_label_ids
from probes import load_builtin
from probes.loaders import BUILTIN_DIR
from tests.support.ner_qa_models import (
    NER_LABELS,
    UNRECOGNISED_GROUP,
    names_by_group,
    ner_tokenizer,
    train_tiny_ner,
)
from tests.support.tiny_models import tiny_config

GROUPS = ("african_american", "asian", "european_american", "hispanic")


@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ner")


@pytest.fixture(scope="module")
def planted_ner(ner_dir: Path) -> Path:
    return train_tiny_ner(ner_dir / "planted", planted=True)


@pytest.fixture(scope="module")
def control_ner(ner_dir: Path) -> Path:
    return train_tiny_ner(ner_dir / "control", planted=False)


def _run(model: Path, out: Path, name: str) -> Path:
    from tests.support.cli import invoke_main

    code = invoke_main(
        "run", "--model", model, "--out", out, "--name", name,
        "--attribute-top", "2", "--ig-steps", "8", "--no-attention",
    )  # fmt: skip
    assert code == 0, f"audit run on {model} exited with {code}"
    return out / name


@pytest.fixture(scope="module")
def planted_run(planted_ner: Path, ner_dir: Path) -> Path:
    return _run(planted_ner, ner_dir / "runs", "planted")


@pytest.fixture(scope="module")
def control_run(control_ner: Path, ner_dir: Path) -> Path:
    return _run(control_ner, ner_dir / "runs", "control")


def _findings(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "findings.parquet")


def test_person_labels_are_read_from_id2label() -> None:
    assert person_label_ids(["O", "B-PER", "I-PER", "B-LOC"]) == [1, 2]
    assert person_label_ids(["O", "B-PERSON", "I-PERSON"]) == [1, 2]
    assert person_label_ids(["PER", "LOC", "O"]) == [0]
    assert person_label_ids(["O", "b-per", "E-PER", "S-PER"]) == [1, 2, 3]
    assert person_label_ids(["O", "B-LOC", "B-PERIOD"]) == []
    assert entity_type("I-ORG") == "ORG" and entity_type("O") == "O"


def test_names_ner_uses_the_names_of_the_race_set_and_is_the_ner_default() -> None:
    race = yaml.safe_load((BUILTIN_DIR / "race.yaml").read_text(encoding="utf-8"))
    ner = yaml.safe_load((BUILTIN_DIR / "names-ner.yaml").read_text(encoding="utf-8"))
    assert {g: s["name"] for g, s in ner["groups"].items()} == {
        g: s["name"] for g, s in race["groups"].items()
    }
    probe_set = load_builtin("names-ner")
    assert probe_set.tasks == ("token-classification",)
    assert len(probe_set.instances) == 162
    for variant in probe_set.variants:  # the focus span is exactly the name
        assert (
            variant.text[variant.focus[0].start : variant.focus[0].end] in names_by_group()[variant.variant]
        )
    assert default_probe_sets("token-classification") == ["names-ner"]
    assert "names-ner" not in default_probe_sets("text-classification")


def test_planted_recognizer_misses_one_groups_names_and_the_audit_finds_it(planted_run: Path) -> None:
    findings = _findings(planted_run)
    recall = findings[findings["metric"] == "entity_recall"].set_index("group_a")
    assert recall.loc[UNRECOGNISED_GROUP, "effect"] <= 0.05
    for group in set(GROUPS) - {UNRECOGNISED_GROUP}:
        assert recall.loc[group, "effect"] >= 0.95
    assert recall["p_value"].isna().all() and not recall["significant"].any()  # descriptive
    assert (recall["n"] == 162).all() and recall["group_b"].isna().all()

    paired = findings[(findings["metric"] == "mean_delta") & (findings["group_b"] != "rest")]
    involved = (paired["group_a"] == UNRECOGNISED_GROUP) | (paired["group_b"] == UNRECOGNISED_GROUP)
    for output in ("recalled:PER", "prob:PER"):
        gaps = paired[involved & (paired["output"] == output)]
        assert len(gaps) == 3 and gaps["significant"].all(), gaps
        assert (gaps["effect"] <= -0.9).all()  # african_american sorts first: a - b is its deficit
        assert (gaps["ci_high"] < 0).all() and (gaps["q_value"] < 0.01).all()
    others = paired[~involved]
    assert not others["significant"].any(), others
    assert list(findings.columns) == TABLES["findings"]


def test_control_recognizer_has_no_finding(control_run: Path) -> None:
    findings = _findings(control_run)
    assert not findings["significant"].any(), findings[findings["significant"]]
    recall = findings[findings["metric"] == "entity_recall"]
    assert sorted(recall["group_a"]) == sorted(GROUPS) and (recall["effect"] >= 0.95).all()
    manifest = json.loads((control_run / "manifest.json").read_text())
    assert manifest["summary"]["n_significant"] == 0 and manifest["model"]["task"] == "token-classification"


def test_scores_equal_a_direct_computation_from_the_model(planted_run: Path, planted_ner: Path) -> None:
    examples = pd.read_parquet(planted_run / "examples.parquet")
    predictions = pd.read_parquet(planted_run / "predictions.parquet")
    tokenizer = AutoTokenizer.from_pretrained(planted_ner)
    model = AutoModelForTokenClassification.from_pretrained(planted_ner).eval()
    chosen = examples.iloc[:: max(1, len(examples) // 24)]
    for _, example in chosen.iterrows():
        ((start, end),) = json.loads(example["focus"])
        encoding = tokenizer(example["text"], return_offsets_mapping=True, return_tensors="pt")
        offsets = encoding.pop("offset_mapping")[0].tolist()
        span = [i for i, (s, e) in enumerate(offsets) if e > s and s < end and start < e]
        with torch.no_grad():
            probabilities = torch.softmax(model(**encoding).logits[0], dim=-1).double()
        person = probabilities[:, [NER_LABELS.index("B-PER"), NER_LABELS.index("I-PER")]].sum(dim=1)
        first = probabilities[span[0]]
        rows = predictions[predictions["example_id"] == example["example_id"]].set_index("output")
        assert rows.loc["prob:PER", "score"] == pytest.approx(float(person[span].mean()), abs=1e-5)
        expected_label = NER_LABELS[int(first.argmax())]
        assert rows.loc["recalled:PER", "score"] == float(expected_label in ("B-PER", "I-PER"))
        assert rows.loc["first_token:B-PER", "score"] == pytest.approx(float(first[1]), abs=1e-5)
        assert set(rows["label"]) == {expected_label}


def test_attributions_explain_the_person_probability(planted_run: Path) -> None:
    attributions = pd.read_parquet(planted_run / "attributions.parquet")
    assert not attributions.empty and set(attributions["output"]) == {"prob:PER"}
    focus = attributions[attributions["is_focus"]]
    assert (
        focus["example_id"].nunique() == attributions["example_id"].nunique()
    )  # every name is a focus token


def test_entity_recall_rows_are_wilson_shares() -> None:
    examples = pd.DataFrame(
        {
            "example_id": ["a1", "b1", "a2", "b2", "a3", "b3"],
            "probe_set": "s",
            "attribute": "race",
            "variant": ["x", "y", "x", "y", "x", "y"],
        }
    )
    predictions = pd.DataFrame(
        {
            "example_id": examples["example_id"],
            "output": "recalled:PER",
            "score": [1.0, 0.0, 1.0, 1.0, 0.0, 0.0],
            "label": None,
        }
    )
    frame = build_entity_recall_findings(examples, predictions, TestOptions())
    assert list(frame.columns) == TABLES["findings"]
    rows = frame.set_index("group_a")
    assert rows.loc["x", "effect"] == pytest.approx(2 / 3) and rows.loc["y", "effect"] == pytest.approx(1 / 3)
    assert 0 < rows.loc["x", "ci_low"] < 2 / 3 < rows.loc["x", "ci_high"] < 1
    empty = build_entity_recall_findings(examples, predictions.assign(output="prob:PER"), TestOptions())
    assert empty.empty and list(empty.columns) == TABLES["findings"]


def test_a_model_without_a_person_label_is_refused(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    tokenizer = ner_tokenizer()
    labels = ("O", "B-LOC", "I-LOC")
    config = tiny_config(len(tokenizer), num_labels=3, id2label=dict(enumerate(labels)))
    torch.manual_seed(0)
    BertForTokenClassification(config).save_pretrained(tmp_path / "no-person")
    tokenizer.save_pretrained(tmp_path / "no-person")
    result = run_cli("run", "--model", tmp_path / "no-person", "--out", tmp_path / "runs")
    assert result.exit_code == 2
    assert "no person label" in result.stderr and "O, B-LOC, I-LOC" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_custom_template_set_for_ner_runs(tmp_path: Path, planted_ner: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    yaml_probes = tmp_path / "ner.yaml"
    yaml_probes.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-ner",
                "attribute": "race",
                "tasks": ["token-classification"],
                "groups": {"a": {"name": ["Emily", "Greg"]}, "b": {"name": ["Lakisha", "Jamal"]}},
                "templates": ["{name} went home.", "We called {name} yesterday."],
            }
        ),
        encoding="utf-8",
    )
    result = run_cli(
        "run",
        "--model",
        planted_ner,
        "--probes",
        yaml_probes,
        "--out",
        tmp_path / "runs",
        "--no-attributions",
        "--no-attention",
    )
    assert result.exit_code == 0, result.stderr
    findings = pd.read_parquet(next((tmp_path / "runs").iterdir()) / "findings.parquet")
    recall = findings[findings["metric"] == "entity_recall"].set_index("group_a")["effect"]
    assert recall["a"] == 1.0 and recall["b"] == 0.0  # Lakisha and Jamal are the planted group's names


def test_sets_the_ner_target_cannot_score_are_refused(planted_ner: Path) -> None:
    from audit.models import load_model
    from audit.targets import build_target
    from probes.schema import Instance, ProbeSet, Variant

    target = build_target(load_model(str(planted_ner)), torch.device("cpu"))
    no_focus = ProbeSet(
        name="no-focus",
        instances=(
            Instance(
                instance_id="i1",
                attribute="race",
                variants=tuple(
                    Variant(instance_id="i1", variant=g, attribute="race", text="Emily went home.")
                    for g in "ab"
                ),
            ),
        ),
    )
    assert "no focus span" in target.check_probe_set(no_focus)[0]
    long_text = "Emily " + "went home and " * 40
    too_long = no_focus.model_copy(
        update={
            "instances": (
                Instance(
                    instance_id="i1",
                    attribute="race",
                    variants=tuple(
                        Variant(
                            instance_id="i1",
                            variant=g,
                            attribute="race",
                            text=long_text,
                            focus=({"start": 0, "end": 5},),
                        )  # type: ignore[arg-type]
                        for g in "ab"
                    ),
                ),
            )
        }
    )
    assert "more than the model's 64" in target.check_probe_set(too_long)[0]
    assert "multiple_choice set" in target.check_probe_set(load_builtin("bbq-mini"))[0]
