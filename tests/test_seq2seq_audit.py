"""The seq2seq audit end to end through the real CLI, on tiny T5 and Marian models.

- A random T5 with a task prefix in its config runs the German translation set (4 instances): every
  table is written with its contract columns, and its numbers are those computed directly (the
  model's loss for each target, greedy generation of the prefixed sources, the forms counted from
  the generations table).
- A Marian model trained for seconds to translate every source with the masculine form (even
  after "her") gets significant findings (the expected form's probability and the accuracy of its
  translations both drop for female sources; --fail-on significant exits 1); the control, trained
  to follow the pronoun, gets none (exit 0), although its gender_preference differs between her
  and his sources (an expected effect: significant, severity none).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

import probes
from audit.stages.prepare import sample_instances
from audit.tables import TABLES
from probes.translation import classify_output
from tests.support.cli import invoke_main
from tests.support.seq2seq_models import T5_PREFIX, greedy_translations, save_random_seq2seq, train_translator

SET = "translation-gender-de"
PLANTED_INSTANCES = 16


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seq2seq-audit")
    return {
        "t5": save_random_seq2seq(root / "t5", "t5", t5_prefix=True),
        "planted": train_translator(root / "planted", planted=True, max_instances=PLANTED_INSTANCES),
        "control": train_translator(root / "control", planted=False, max_instances=PLANTED_INSTANCES),
    }


def _run(model: Path, out: Path, name: str, *extra: object) -> tuple[int, Path]:
    code = invoke_main(
        "run", "--model", model, "--probes", SET, "--out", out, "--name", name, "--device", "cpu", *extra
    )
    return code, out / name


def _table(run: Path, name: str) -> pd.DataFrame:
    frame = pd.read_parquet(run / f"{name}.parquet")
    assert set(TABLES[name]) <= set(frame.columns), name
    return frame


def test_translation_run_tables_match_direct_computation(models: dict[str, Path], tmp_path: Path) -> None:
    code, run = _run(
        models["t5"], tmp_path, "t5", "--max-instances", 4, "--ig-steps", 8, "--attribute-top", 1
    )
    assert code == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["model"]["task"] == "seq2seq"
    assert manifest["generation"]["task_prefix"] == {SET: T5_PREFIX}
    assert manifest["generation"]["decoding"] == "greedy"
    examples = _table(run, "examples")
    assert len(examples) == 12  # 4 instances x female, male, ambiguous
    variants = {
        f"{SET}/{v.instance_id}/{v.variant}": v
        for v in sample_instances(probes.load_probe_set(SET), 4).variants
    }
    assert set(examples["example_id"]) == set(variants)

    predictions = _table(run, "predictions").pivot(index="example_id", columns="output", values="score")
    assert set(predictions.columns) == {
        "loglik:feminine",
        "loglik:masculine",
        "gender_preference",
        "expected_probability",
    }
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models["t5"])
    model = AutoModelForSeq2SeqLM.from_pretrained(models["t5"]).eval()
    for example_id, variant in list(variants.items())[:4]:
        for name in ("feminine", "masculine"):
            batch = tokenizer(
                [T5_PREFIX + variant.text], text_target=[variant.targets[name]], return_tensors="pt"
            )
            with torch.no_grad():
                loss = model(**batch).loss
            direct = -float(loss) * batch["labels"].shape[1]
            assert predictions.loc[example_id, f"loglik:{name}"] == pytest.approx(direct, abs=1e-4)
    difference = predictions["loglik:feminine"] - predictions["loglik:masculine"]
    assert (predictions["gender_preference"] - difference).abs().max() < 1e-5

    generations = _table(run, "generations")
    assert len(generations) == 12 and set(generations["sample"]) == {0}
    limit = manifest["generation"]["max_new_tokens"][SET]
    order = list(generations["example_id"])
    direct = greedy_translations(
        models["t5"], [T5_PREFIX + variants[e].text for e in order], max_new_tokens=limit
    )
    assert list(generations["text"]) == direct
    assert list(generations["form"]) == [
        classify_output(t, variants[e].target_words) for e, t in zip(order, direct, strict=True)
    ]

    findings = _table(run, "findings")
    metrics = set(findings["metric"])
    assert {"mean_delta", "generation_accuracy", "generation_accuracy_gap", "generation_share"} <= metrics
    merged = generations.merge(examples[["example_id", "variant", "label"]], on="example_id")
    for group in ("female", "male"):
        row = findings[(findings["metric"] == "generation_accuracy") & (findings["group_a"] == group)].iloc[0]
        rows = merged[merged["variant"] == group]
        assert row["effect"] == pytest.approx((rows["form"] == rows["label"]).mean())
        assert row["n"] == 4 and pd.isna(row["p_value"])
    gap = findings[findings["metric"] == "generation_accuracy_gap"].iloc[0]
    assert (gap["group_a"], gap["group_b"]) == ("female", "male") and 0 <= gap["p_value"] <= 1
    assert gap["q_value"] >= gap["p_value"]

    attributions = _table(run, "attributions")
    assert set(attributions["output"]) == {"gender_preference"}
    tokens = attributions.groupby(["example_id", "method"])["token_index"].count()
    n_tokens = examples.set_index("example_id")["n_tokens"]
    assert all(
        count == n_tokens[e] for (e, _), count in tokens.items()
    )  # source tokens: no prefix, no target
    attention = _table(run, "attention")
    assert attention["example_id"].nunique() == 12 and set(attention["layer"]) == {0, 1}


def test_planted_masculine_default_is_found_and_control_is_not(
    models: dict[str, Path], tmp_path: Path
) -> None:
    options = (
        "--max-instances",
        PLANTED_INSTANCES,
        "--no-attributions",
        "--no-attention",
        "--fail-on",
        "significant",
    )
    results = {}
    for which in ("planted", "control"):
        code, run = _run(models[which], tmp_path, which, *options)
        results[which] = (code, run, _table(run, "findings"), _table(run, "generations"))
    code, run, findings, generations = results["planted"]
    assert code == 1  # significant findings
    examples = _table(run, "examples")
    texts = examples.set_index("example_id")["text"]
    limit = json.loads((run / "manifest.json").read_text())["generation"]["max_new_tokens"][SET]
    assert list(generations["text"]) == greedy_translations(
        models["planted"], [texts[e] for e in generations["example_id"]], max_new_tokens=limit
    )
    forms = (
        generations.merge(examples[["example_id", "variant"]])
        .groupby("variant")["form"]
        .agg(lambda s: s.value_counts().to_dict())
    )
    assert forms["female"].get("masculine", 0) >= 14  # the planted behaviour, in its own translations

    def row(frame: pd.DataFrame, metric: str, output: str, a: str = "female", b: str = "male") -> pd.Series:
        found = frame[
            (frame["metric"] == metric)
            & (frame["output"] == output)
            & (frame["group_a"] == a)
            & (frame["group_b"] == b)
        ]
        assert len(found) == 1
        return found.iloc[0]

    gap = row(findings, "generation_accuracy_gap", "generation")
    assert gap["significant"] and gap["effect"] <= -0.8 and gap["severity"] != "none"
    expected = row(findings, "mean_delta", "expected_probability")
    assert expected["significant"] and expected["effect"] < -0.5 and expected["severity"] == "high"
    preference = row(findings, "mean_delta", "gender_preference")
    assert not preference["significant"]  # it ignores the pronoun

    code, run, findings, generations = results["control"]
    assert code == 0
    assert not (findings["significant"] & (findings["severity"] != "none")).any()
    gap = row(findings, "generation_accuracy_gap", "generation")
    assert not gap["significant"] and abs(gap["effect"]) < gap["threshold"]
    accuracy = findings[findings["metric"] == "generation_accuracy"].set_index("group_a")["effect"]
    assert accuracy["female"] >= 0.85 and accuracy["male"] >= 0.85
    preference = row(findings, "mean_delta", "gender_preference")
    assert preference["significant"] and preference["effect"] > 0 and preference["severity"] == "none"
    assert "expected effect" in preference["note"]
    summary = json.loads((run / "manifest.json").read_text())["summary"]
    assert summary["n_significant"] == 0


def test_the_dashboard_opens_a_seq2seq_run(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _ = _run(
        models["control"], tmp_path, "control", "--max-instances", 2, "--ig-steps", 4, "--attribute-top", 1
    )
    assert code == 0
    from dashboard.data import RUNS_DIR_ENV

    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path))
    app = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
    at = AppTest.from_file(app, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    for page in ("app_pages/findings.py", "app_pages/instances.py"):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--generation-scorer", "minilm-sentiment"), "leave the scorer out"),
        (("--long-inputs", "window"), "does not apply to seq2seq"),
    ],
)
def test_options_that_do_not_apply_are_refused(
    models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    message: str,
) -> None:
    code, run = _run(models["control"], tmp_path, "refused", "--max-instances", 2, *extra)
    assert code == 2 and not run.exists()
    assert message in capsys.readouterr().err


def test_generate_samples_several_translations(models: dict[str, Path], tmp_path: Path) -> None:
    code, run = _run(
        models["control"],
        tmp_path,
        "sampled",
        "--max-instances",
        1,
        "--generate",
        3,
        "--no-attributions",
        "--no-attention",
    )
    assert code == 0
    generations = _table(run, "generations")
    assert generations.groupby("example_id")["sample"].apply(lambda k: sorted(k) == [0, 1, 2]).all()
    assert json.loads((run / "manifest.json").read_text())["generation"]["decoding"] == "sample"
    assert len(generations) == 3 * 3
