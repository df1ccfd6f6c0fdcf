"""What a demanding user runs into: mistyped flags, bad folders, damaged runs, inputs that cannot
be compared. Each case exits 2 with a message (or warns), and never leaves a misleading run."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
)

from audit.store import RunStore
from tests.support import tiny_models


def test_mistyped_flags_are_usage_errors_not_internal_errors(run_cli):
    for args in (
        ("run", "--bogus"),
        ("run", "--seed", "x"),
        ("probes", "validate"),
        ("probes", "show", "gender", "--limit", "x"),
    ):
        result = run_cli(*args)
        assert result.exit_code == 2, (args, result.stderr)
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_an_out_folder_that_cannot_be_created_is_a_clear_error(
    run_cli, fair_classifier, classifier_probes, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli(
        "run", "--model", fair_classifier, "--probes", classifier_probes, "--out", blocker / "runs"
    )
    assert result.exit_code == 2 and "cannot create the run folder" in result.stderr


def test_a_name_is_a_folder_name_not_a_path(run_cli, fair_classifier, classifier_probes, tmp_path):
    result = run_cli(
        "run", "--model", fair_classifier, "--probes", classifier_probes, "--out", tmp_path, "--name", "../x"
    )
    assert result.exit_code == 2 and "--name" in result.stderr
    assert not (tmp_path.parent / "x").exists()


def test_colliding_ids_fail_before_any_run_folder_exists(run_cli, fair_classifier, tmp_path):
    probes = tmp_path / "collide.csv"
    probes.write_text(
        "instance_id,variant,attribute,text\nx/y,m,gender,he is kind .\nx/y,f,gender,she is kind .\n"
        "x,y/m,gender,he is rude .\nx,y/f,gender,she is rude .\n"
    )
    out = tmp_path / "runs"
    result = run_cli("run", "--model", fair_classifier, "--probes", probes, "--out", out)
    assert result.exit_code == 2 and "x/y/m" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_run_files_follow_the_umask_and_default_names_never_collide(tmp_path):
    old = os.umask(0o022)
    try:
        store = RunStore.create(tmp_path / "r", unique=True)
        store.write_manifest({"run_id": "r"})
        mode = stat.S_IMODE((store.path / "manifest.json").stat().st_mode)
        assert mode == 0o644
        second = RunStore.create(tmp_path / "r", unique=True)
        assert second.path.name == "r-2"
    finally:
        os.umask(old)


def test_damaged_and_unfinished_runs_are_reported_not_crashed_on(run_cli, cli_run_dir, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "broken").mkdir()
    (runs / "broken" / "manifest.json").write_text("{not json")
    (runs / "failed").mkdir()
    (runs / "failed" / "manifest.json").write_text(
        json.dumps(
            {"run_id": "failed", "status": "failed", "error": "RuntimeError: boom", "model": {"name": "m"}}
        )
    )
    listed = run_cli("runs", "list", "--runs", runs)
    assert listed.exit_code == 0 and "failed" in listed.stdout and "skipping" in listed.stderr
    shown = run_cli("runs", "show", "failed", "--runs", runs)
    assert shown.exit_code == 0 and "not complete" in shown.stdout and "boom" in shown.stdout
    broken = run_cli("runs", "show", "broken", "--runs", runs)
    assert broken.exit_code == 2 and "damaged" in broken.stderr
    missing = run_cli("runs", "list", "--runs", tmp_path / "nowhere")
    assert missing.exit_code == 2


def test_variants_the_model_cannot_tell_apart_are_left_out(run_cli, fair_classifier, tmp_path):
    probes = tmp_path / "unknown-names.csv"
    rows = ["text_a,text_b,group_a,group_b,attribute,instance_id"]
    rows += [
        f"zorblax is {w} .,quuxly is {w} .,a,b,names,unk-{i}" for i, w in enumerate(["kind", "rude", "lazy"])
    ]
    rows += [
        f"he is {w} .,she is {w} .,a,b,names,known-{i}"
        for i, w in enumerate(["kind", "rude", "lazy", "honest", "cruel", "great"])
    ]
    probes.write_text("\n".join(rows) + "\n")
    result = run_cli("run", "--model", fair_classifier, "--probes", probes, "--out", tmp_path, "--name", "u",
                     "--no-attention", "--no-attributions", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "3 instance(s) of unknown-names left out" in result.stderr
    summary = json.loads(result.stdout)["runs"][0]
    assert summary["instances_left_out"] == {"inputs_identical": {"unknown-names": 3}}
    assert any("cannot tell them apart" in w for w in summary["warnings"])
    assert (pd.read_parquet(tmp_path / "u" / "findings.parquet")["n"] == 6).all()


def test_a_probe_set_for_another_task_is_refused_before_running(run_cli, fair_classifier, tmp_path):
    probes = tmp_path / "emb-only.yaml"
    probes.write_text(
        "name: emb-only\nattribute: gender\ntasks: [embedding]\n"
        "groups: {male: {p: he}, female: {p: she}}\ntemplates: ['{p} is kind .', '{p} is rude .']\n"
    )
    result = run_cli("run", "--model", fair_classifier, "--probes", probes, "--out", tmp_path / "runs")
    assert result.exit_code == 2 and "meant for embedding" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_config_paths_are_relative_to_the_config_file(
    run_cli, fair_classifier, classifier_probes, tmp_path, monkeypatch
):
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "pairs.csv").write_text(classifier_probes.read_text())
    (folder / "audit.yaml").write_text(
        f"models: {fair_classifier}\nprobes: pairs.csv\nattention: false\nattributions: false\n"
    )
    monkeypatch.chdir(tmp_path)
    result = run_cli("run", "--config", folder / "audit.yaml", "--out", tmp_path / "runs", "--name", "c")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "runs" / "c" / "findings.parquet").exists()


def test_multi_label_heads_are_scored_with_a_sigmoid(run_cli, classifier_probes, tmp_path):
    tokenizer = tiny_models.build_tokenizer([line for line in classifier_probes.read_text().splitlines()])
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, num_labels=3,
        problem_type="multi_label_classification", id2label={0: "toxic", 1: "insult", 2: "threat"},
        label2id={"toxic": 0, "insult": 1, "threat": 2},
    )  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path / "multi"
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    result = run_cli("run", "--model", folder, "--probes", classifier_probes, "--out", tmp_path, "--name", "m",
                     "--no-attention", "--no-attributions", "--max-instances", "5")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    predictions = pd.read_parquet(tmp_path / "m" / "predictions.parquet")
    examples = pd.read_parquet(tmp_path / "m" / "examples.parquet")
    text = examples["text"].iloc[0]
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(**AutoTokenizer.from_pretrained(folder)(text, return_tensors="pt")).logits[0]
    mine = predictions[predictions["example_id"] == examples["example_id"].iloc[0]].set_index("output")[
        "score"
    ]
    np.testing.assert_allclose(
        mine[["prob:toxic", "prob:insult", "prob:threat"]], torch.sigmoid(logits), atol=1e-5
    )
    # all three labels are tested (no binary shortcut)
    outputs = set(pd.read_parquet(tmp_path / "m" / "findings.parquet")["output"].dropna())
    assert outputs == {"prob:toxic", "prob:insult", "prob:threat"}


def test_a_variant_without_focus_has_no_focus_attribution(run_cli, fair_classifier, tmp_path):
    probes = tmp_path / "insert.csv"
    rows = ["text_a,text_b,group_a,group_b,attribute,instance_id"]
    rows += [
        f"the cook is {w} .,the great cook is {w} .,plain,marked,x,i{i}"
        for i, w in enumerate(["kind", "rude", "lazy"])
    ]
    probes.write_text("\n".join(rows) + "\n")
    result = run_cli(
        "run",
        "--model",
        fair_classifier,
        "--probes",
        probes,
        "--out",
        tmp_path,
        "--name",
        "ins",
        "--no-attention",
    )
    assert result.exit_code == 0, result.stderr
    pairs = pd.read_parquet(tmp_path / "ins" / "attribution_pairs.parquet")
    assert len(pairs) == 6
    # group_a = "marked" has the inserted word; "plain" has no focus span: NaN, not a measured 0
    assert pairs["focus_attribution_a"].notna().all() and pairs["focus_attribution_b"].isna().all()


def test_a_flag_turns_back_on_what_the_config_file_turned_off(
    run_cli, fair_classifier, classifier_probes, tmp_path
):
    config = tmp_path / "audit.yaml"
    config.write_text(
        f"models: {fair_classifier}\nprobes: {classifier_probes}\nattention: false\nattributions: false\n"
    )
    result = run_cli(
        "run", "--config", config, "--attention", "--out", tmp_path, "--name", "on", "--max-instances", "4"
    )
    assert result.exit_code == 0, result.stderr
    assert len(pd.read_parquet(tmp_path / "on" / "attention.parquet")) > 0
    assert len(pd.read_parquet(tmp_path / "on" / "attributions.parquet")) == 0


def test_rows_probe_sets_get_associations_for_embedding_audits(run_cli, biased_embedder, tmp_path):
    """A CSV of pairs cannot hold associations; --associations supplies them (file or built-in)."""
    probes = tmp_path / "pairs.csv"
    rows = ["text_a,text_b,group_a,group_b,attribute,instance_id"]
    rows += [
        f"{p.text_a},{p.text_b},male,female,gender,{p.instance_id}"
        for p in tiny_models.embedder_probe_pairs()
    ]
    probes.write_text("\n".join(rows) + "\n")
    without = run_cli("run", "--model", biased_embedder, "--probes", probes, "--out", tmp_path / "a")
    assert without.exit_code == 2 and "--associations" in without.stderr
    associations = tmp_path / "assoc.yaml"
    associations.write_text(
        "associations:\n  - name: career_vs_family\n    a_name: career\n    b_name: family\n"
        f"    a: [{', '.join(tiny_models.CAREER_WORDS)}]\n    b: [{', '.join(tiny_models.FAMILY_WORDS)}]\n"
    )
    result = run_cli("run", "--model", biased_embedder, "--probes", probes, "--associations", associations,
                     "--out", tmp_path / "b", "--no-attention", "--no-attributions", "--fail-on", "significant")  # fmt: skip
    assert result.exit_code == 1, result.stdout + result.stderr
    findings = pd.read_parquet(next((tmp_path / "b").iterdir()) / "findings.parquet")
    shift = findings[(findings["metric"] == "mean_delta") & (findings["group_b"] == "male")].iloc[0]
    assert shift["output"] == "assoc:career_vs_family" and shift["significant"] and shift["effect"] < 0
    bad = tmp_path / "bad-assoc.yaml"
    bad.write_text("associations:\n  - name: x\n    a: [one]\n")
    broken = run_cli("run", "--model", biased_embedder, "--probes", probes, "--associations", bad)
    assert broken.exit_code == 2 and f"{bad}" in broken.stderr and "association 1" in broken.stderr


def test_the_default_run_leaves_out_sets_marked_out_of_it():
    from audit.stages.prepare import default_probe_sets
    from probes import list_builtin

    default = default_probe_sets()
    assert "gender" in default and "multilingual" in default
    assert "gender-fr" not in default and "long-context" not in default
    assert {"gender-fr", "gender-es", "gender-de"} <= set(list_builtin(kind="counterfactual"))
