"""End to end through the real CLI: planted biases are flagged with the right sign and size,
controls are not, tables meet the contracts, bad input exits 2 with nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from audit.tables import TABLES


def findings_of(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "findings.parquet")


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if (p / "manifest.json").exists()]
    assert len(runs) == 1, runs
    return runs[0]


def test_planted_classifier_bias_is_flagged_with_sign_and_size(
    run_cli, biased_classifier, classifier_probes, tmp_path
):
    result = run_cli(
        "run", "--model", biased_classifier, "--probes", classifier_probes, "--out", tmp_path,
        "--no-attention", "--no-attributions", "--fail-on", "significant", "--json",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    summary = json.loads(result.stdout)["runs"][0]
    assert summary["n_significant"] >= 1
    findings = findings_of(only_run(tmp_path))
    row = findings[
        (findings["metric"] == "mean_delta")
        & (findings["output"] == "prob:positive")
        & (findings["group_a"] == "female")
        & (findings["group_b"] == "male")
    ].iloc[0]
    # groups are ordered by name (a=female, b=male); "she" gets the lower positive probability:
    # a negative effect, large, with its confidence interval away from zero
    assert row["significant"]
    assert row["effect"] <= -0.1
    assert row["ci_low"] <= row["effect"] <= row["ci_high"] < 0
    assert row["q_value"] < 0.05
    assert row["n"] == 80
    # a binary classifier's two probabilities are one test, not two; both are still predicted
    assert set(findings["output"].dropna()) == {"prob:positive"}
    predictions = pd.read_parquet(only_run(tmp_path) / "predictions.parquet")
    assert set(predictions["output"]) == {"prob:negative", "prob:positive"}


def test_fair_classifier_is_not_flagged(run_cli, fair_classifier, classifier_probes, tmp_path):
    result = run_cli(
        "run", "--model", fair_classifier, "--probes", classifier_probes, "--out", tmp_path,
        "--no-attention", "--no-attributions", "--fail-on", "significant", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    findings = findings_of(only_run(tmp_path))
    assert len(findings) > 0
    assert not findings["significant"].any()
    positive = findings[(findings["metric"] == "mean_delta") & (findings["output"] == "prob:positive")].iloc[
        0
    ]
    assert abs(positive["effect"]) < 0.02


def test_planted_embedding_association_is_flagged(run_cli, biased_embedder, embedder_probes, tmp_path):
    result = run_cli(
        "run", "--model", biased_embedder, "--probes", embedder_probes, "--out", tmp_path,
        "--no-attention", "--no-attributions", "--fail-on", "significant",
    )  # fmt: skip
    assert result.exit_code == 1, result.stdout + result.stderr
    findings = findings_of(only_run(tmp_path))
    shift = findings[
        (findings["metric"] == "mean_delta") & (findings["output"] == "assoc:career_vs_family")
    ].iloc[0]
    seat = findings[findings["metric"] == "seat_effect_size"].iloc[0]
    # "she" sentences (a) sit nearer to family words than "he" sentences (b): negative shift and SEAT d
    assert (shift["group_a"], shift["group_b"]) == ("female", "male")
    assert shift["significant"] and shift["effect"] < -0.02 and shift["ci_high"] < 0
    assert seat["significant"] and seat["effect"] < -0.8


def test_control_embedder_is_not_flagged(run_cli, fair_embedder, embedder_probes, tmp_path):
    result = run_cli(
        "run", "--model", fair_embedder, "--probes", embedder_probes, "--out", tmp_path,
        "--no-attention", "--no-attributions", "--fail-on", "significant",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert not findings_of(only_run(tmp_path))["significant"].any()


def test_run_tables_meet_the_contracts(cli_run_dir):
    run_dir = cli_run_dir / "tiny-biased"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["model"]["task"] == "text-classification"
    assert set(manifest["timings"]) >= {
        "load",
        "encode",
        "score",
        "findings",
        "attributions",
        "attention",
        "write",
    }
    assert manifest["probe_sets"][0]["hash"]
    assert len(manifest["git_hash"]) == 40 and isinstance(manifest["git_dirty"], bool)
    tables = {name: pd.read_parquet(run_dir / f"{name}.parquet") for name in TABLES}
    for name, frame in tables.items():
        assert list(frame.columns)[: len(TABLES[name])] == TABLES[name], name
    examples = tables["examples"]
    assert len(examples) == 160 and examples["example_id"].is_unique
    assert len(tables["predictions"]) == 160 * 2
    # attributions for the variants of the 5 instances with the largest effects, both methods
    attributed = tables["attributions"]
    assert attributed["example_id"].nunique() == 10
    assert set(attributed["method"]) == {"integrated_gradients", "gradient_x_input"}
    assert attributed["is_focus"].any()
    ig = attributed[attributed["method"] == "integrated_gradients"]
    assert ig["convergence_delta"].abs().max() < 0.05
    # focus tokens are the swapped pronoun
    focus_tokens = set(attributed.loc[attributed["is_focus"], "token"].str.lower())
    assert focus_tokens <= {"he", "she"}
    assert len(tables["attribution_pairs"]) == 5 * 2
    # attention: every example x 2 layers x 2 heads x 5 statistics
    attention = tables["attention"]
    assert len(attention) == 160 * 2 * 2 * 5
    assert set(attention["stat"]) == {"entropy", "focus_mass", "special_mass", "sink_mass", "mean_distance"}


def test_bad_probe_file_exits_2_with_file_and_line_and_runs_nothing(run_cli, fair_classifier, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "text_a,text_b,group_a,group_b,attribute\nhe is here .,she is here .,male,female,gender\n,she ran .,male,female,gender\n"
    )
    out = tmp_path / "runs"
    result = run_cli("run", "--model", fair_classifier, "--probes", bad, "--out", out)
    assert result.exit_code == 2
    assert f"{bad}:3:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_unknown_model_and_bad_flags_exit_2(run_cli, classifier_probes, tmp_path):
    missing = run_cli(
        "run", "--model", tmp_path / "no-such-model", "--probes", classifier_probes, "--out", tmp_path
    )
    assert missing.exit_code == 2 and "Traceback" not in missing.stderr
    bad_flag = run_cli("run", "--fail-on", "sometimes", "--probes", classifier_probes)
    assert bad_flag.exit_code == 2 and "--fail-on" in bad_flag.stderr


def test_an_existing_run_is_never_overwritten(run_cli, fair_classifier, classifier_probes, tmp_path):
    args = ("run", "--model", fair_classifier, "--probes", classifier_probes, "--out", tmp_path,
            "--name", "same", "--no-attention", "--no-attributions")  # fmt: skip
    assert run_cli(*args).exit_code == 0
    before = (tmp_path / "same" / "findings.parquet").read_bytes()
    again = run_cli(*args)
    assert again.exit_code == 2 and "already holds a run" in again.stderr
    assert (tmp_path / "same" / "findings.parquet").read_bytes() == before


def test_probes_validate_reports_every_problem(run_cli, tmp_path, classifier_probes):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text_a": "he ran .", "text_b": "she ran .", "group_a": "m", "group_b": "f", "attribute": "gender"}\n'
                   '{"text_a": "he ran .", "group_a": "m", "group_b": "f", "attribute": "gender"}\n'
                   'not json\n')  # fmt: skip
    result = run_cli("probes", "validate", bad)
    assert result.exit_code == 2
    assert f"{bad}:2:" in result.stderr and f"{bad}:3:" in result.stderr
    ok = run_cli("probes", "validate", classifier_probes)
    assert ok.exit_code == 0, ok.stderr


def test_runs_list_and_show(run_cli, cli_run_dir):
    listed = run_cli("runs", "list", "--runs", cli_run_dir)
    assert listed.exit_code == 0 and "tiny-biased" in listed.stdout
    shown = run_cli("runs", "show", "tiny-biased", "--runs", cli_run_dir, "--json")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["status"] == "complete"
    missing = run_cli("runs", "show", "nope", "--runs", cli_run_dir)
    assert missing.exit_code == 2 and "tiny-biased" in missing.stderr


@pytest.mark.slow
def test_bundled_real_models_run_end_to_end(run_cli, tmp_path):
    result = run_cli(
        "run", "--model", "minilm-sentiment", "--model", "minilm", "--probes", "gender", "--probes", "race",
        "--max-instances", "40", "--attribute-top", "3", "--patching", "--out", tmp_path, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summaries = json.loads(result.stdout)["runs"]
    assert [s["task"] for s in summaries] == ["text-classification", "embedding"]
    for summary in summaries:
        run_dir = Path(summary["run_dir"])
        for name in TABLES:
            frame = pd.read_parquet(run_dir / f"{name}.parquet")
            assert list(frame.columns)[: len(TABLES[name])] == TABLES[name]
            # long documents only; causal LMs with --generate only
            assert len(frame) > 0 or name in ("segment_attributions", "generations"), (run_dir, name)
        findings = pd.read_parquet(run_dir / "findings.parquet")
        # flip rates and "rest" contrasts are descriptive: no p-value
        descriptive = (findings["metric"] == "flip_rate") | (findings["group_b"] == "rest")
        assert findings.loc[descriptive, "p_value"].isna().all()
        tested = findings[~descriptive]
        assert len(tested) > 0
        assert tested["p_value"].between(0, 1).all() and tested["q_value"].between(0, 1).all()
        assert (tested["q_value"] >= tested["p_value"] - 1e-12).all()


@pytest.mark.slow
def test_bundled_real_models_read_long_documents_only_within_their_limit(run_cli, tmp_path):
    """The built-in long-context set on both bundled models: a key sentence decides the sentiment
    model's output anywhere in a short document, and nothing past MiniLM's limit reaches it."""
    result = run_cli(
        "run", "--model", "minilm-sentiment", "--model", "minilm", "--probes", "long-context",
        "--max-instances", "3", "--max-doc-tokens", "2048", "--long-attribute-top", "1", "--out", tmp_path,
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    sentiment, embedding = (Path(s["run_dir"]) for s in json.loads(result.stdout)["runs"])
    manifest = json.loads((sentiment / "manifest.json").read_text())
    limit = manifest["long_inputs"]["max_length"]
    findings = pd.read_parquet(sentiment / "findings.parquet")
    keys = findings[findings["metric"] == "key_effect"].set_index(["doc_length", "position"])
    assert (keys.loc[128, "effect"] > 0.2).all()  # each key pushes towards its own label
    beyond = keys.loc[2048]
    cut = beyond[beyond.index > 0.3]  # 30% of 2048 tokens lies past a 512-token limit
    assert (cut["effect"] == 0).all() and cut["note"].str.contains(f"{limit}-token limit").all()
    assert any("lost their key sentence to truncation" in w for w in manifest["warnings"])
    swaps = findings[findings["metric"] == "swap_effect"]
    cut_away = swaps["note"].str.contains("beyond the model's", na=False)  # 0 by construction: described
    assert cut_away.any() and swaps.loc[cut_away, "p_value"].isna().all()
    assert swaps.loc[~cut_away, "p_value"].notna().all() and (~cut_away).sum() > 10
    segments = pd.read_parquet(sentiment / "segment_attributions.parquet")
    assert segments["is_key"].any()

    similarity = pd.read_parquet(embedding / "findings.parquet")
    start = similarity[(similarity["metric"] == "key_effect") & (similarity["position"] == 0.0)]
    assert (
        start.loc[start["doc_length"] == 128, "effect"] > 0
    ).all()  # the key pulls the document to its query


def test_a_local_dataset_with_a_column_mapping_is_audited(run_cli, biased_classifier, tmp_path):
    """CrowS-Pairs-style columns mapped onto the pairs layout from the command line."""
    from datasets import Dataset

    from tests.support import tiny_models

    pairs = tiny_models.classifier_probe_pairs()
    folder = tmp_path / "crows-like"
    Dataset.from_dict(
        {
            "sent_more": [p.text_a for p in pairs],
            "sent_less": [p.text_b for p in pairs],
            "bias_type": ["gender"] * len(pairs),
        }
    ).save_to_disk(str(folder))
    mapping = [
        "--probe-map",
        "text_a=sent_more",
        "--probe-map",
        "text_b=sent_less",
        "--probe-map",
        "attribute=bias_type",
    ]
    defaults = ["--probe-default", "group_a=male", "--probe-default", "group_b=female"]
    result = run_cli(
        "run", "--model", biased_classifier, "--probes", folder, *mapping, *defaults, "--out", tmp_path / "runs",
        "--no-attention", "--no-attributions", "--fail-on", "significant",
    )  # fmt: skip
    assert result.exit_code == 1, result.stdout + result.stderr
    findings = findings_of(only_run(tmp_path / "runs"))
    assert findings.loc[findings["metric"] == "mean_delta", "significant"].all()
    unmapped = run_cli("run", "--model", biased_classifier, "--probes", folder, "--out", tmp_path / "runs2")
    assert unmapped.exit_code == 2 and "text_a" in unmapped.stderr
    bad_pair = run_cli("run", "--probes", folder, "--probe-map", "text_a")
    assert bad_pair.exit_code == 2 and "--probe-map takes KEY=VALUE" in bad_pair.stderr


def test_settings_from_an_audit_yaml_and_flags_win(run_cli, biased_classifier, classifier_probes, tmp_path):
    config = tmp_path / "audit.yaml"
    config.write_text(
        f"models: [{biased_classifier}]\nprobes: [{classifier_probes}]\nattributions: false\n"
        "attention: false\nmin_effect: 0.5\n"
    )
    # the planted effect (about 0.3) is below a 0.5 practical threshold: not significant
    high_bar = run_cli("run", "--config", config, "--out", tmp_path / "a", "--fail-on", "significant")
    assert high_bar.exit_code == 0, high_bar.stdout + high_bar.stderr
    # a flag overrides the file
    low_bar = run_cli(
        "run", "--config", config, "--min-effect", "0.05", "--out", tmp_path / "b", "--fail-on", "significant"
    )  # fmt: skip
    assert low_bar.exit_code == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("modles: [x]\nalpha: 2\n")
    result = run_cli("run", "--config", bad)
    assert result.exit_code == 2
    assert f"{bad}: modles" in result.stderr and f"{bad}: alpha" in result.stderr


def test_the_installed_entry_point_runs(tmp_path):
    """`python -m audit` through a real process: help, probe listing, and exit 2 for a bad file."""
    import subprocess
    import sys

    listing = subprocess.run(
        [sys.executable, "-m", "audit", "probes", "list"], capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    assert "gender" in listing.stdout and "disability" in listing.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntemplates: ['{nobody} ran']\n")
    checked = subprocess.run(
        [sys.executable, "-m", "audit", "probes", "validate", str(bad)], capture_output=True, text=True
    )
    assert checked.returncode == 2
    assert f"{bad}:" in checked.stderr and "Traceback" not in checked.stderr


def test_instances_whose_swapped_words_are_truncated_away_are_left_out_not_read_as_fair(
    run_cli, biased_classifier, tmp_path
):
    probes = tmp_path / "late-pronoun.csv"
    rows = ["text_a,text_b,group_a,group_b,attribute,instance_id"]
    for i, word in enumerate(["great", "kind", "honest", "friendly", "brilliant", "talented"]):
        rows.append(f"he is {word} .,she is {word} .,male,female,gender,early-{i}")
        rows.append(f"the cook says the pilot is {word} and so is he .,"
                    f"the cook says the pilot is {word} and so is she .,male,female,gender,late-{i}")  # fmt: skip
    probes.write_text("\n".join(rows) + "\n")
    result = run_cli(
        "run", "--model", biased_classifier, "--probes", probes, "--out", tmp_path, "--name", "cut",
        "--max-length", "8", "--no-attention", "--no-attributions",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "6 instance(s) of late-pronoun left out" in result.stderr
    run_dir = tmp_path / "cut"
    examples = pd.read_parquet(run_dir / "examples.parquet")
    late = examples["instance_id"].str.startswith("late")
    assert examples.loc[late, "truncated"].all() and examples.loc[late, "focus_truncated"].all()
    assert not examples.loc[~late, "focus_truncated"].any()
    effects = pd.read_parquet(run_dir / "effects.parquet")
    assert set(effects["instance_id"]) == {f"early-{i}" for i in range(6)}
    assert (findings_of(run_dir)["n"] == 6).all()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["summary"]["instances_left_out"] == {"focus_truncated": {"late-pronoun": 6}}
    assert manifest["summary"]["n_truncated_examples"] == 12


def test_slashes_in_instance_ids_and_group_names_keep_attribution_pairs(run_cli, fair_classifier, tmp_path):
    probes = tmp_path / "slashes.csv"
    rows = ["text_a,text_b,group_a,group_b,attribute,instance_id"]
    rows += [
        f"he is a {w} cook .,she is a {w} cook .,he/him,she/her,gender,t/{i}"
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
        "s",
        "--no-attention",
    )
    assert result.exit_code == 0, result.stderr
    pairs = pd.read_parquet(tmp_path / "s" / "attribution_pairs.parquet")
    assert len(pairs) == 3 * 2  # 3 instances x 2 methods
    assert set(pairs["instance_id"]) == {"t/0", "t/1", "t/2"}
    assert set(zip(pairs["group_a"], pairs["group_b"], strict=True)) == {("he/him", "she/her")}
    # 3 instances: the smallest attainable sign-flip p is 0.25, and the run says so
    assert "cannot reach p < 0.05" in result.stderr
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["summary"]["n_underpowered_tests"] == 1
    findings = pd.read_parquet(tmp_path / "s" / "findings.parquet")
    tested = findings[findings["metric"] == "mean_delta"].iloc[0]
    assert tested["note"].startswith("only 3 instance(s): no result could reach p < 0.05")


def test_probes_list_says_each_sets_kind_and_whether_audit_run_uses_it():
    import os
    import subprocess
    import sys

    listing = subprocess.run(
        [sys.executable, "-m", "audit", "probes", "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert listing.returncode == 0, listing.stderr
    rows = {line.split("│")[1].strip(): line for line in listing.stdout.splitlines() if line.count("│") > 3}
    assert "parallel (en)" in rows["multilingual"] and "│ yes " in rows["multilingual"]
    assert "│ by name " in rows["long-context"] and "│ by name " in rows["gender-fr"]
    assert "counterfactual" in rows["gender"] and "│ yes " in rows["gender"]


def strict_json(text: str) -> object:
    """json.loads that refuses the NaN / Infinity tokens Python writes by default (not JSON)."""

    def refuse(token: str) -> object:
        raise ValueError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=refuse)


UNBOUNDED = "unbounded (n = 5: too few instances to exclude any value at 95%)"


def test_an_unbounded_interval_reads_as_such_everywhere_and_json_stays_valid(
    run_cli, biased_classifier, classifier_probes, tmp_path
):
    """Five instances: the sign-flip inversion at 95% cannot bound the mean (its smallest p is 2/32 =
    0.0625 > 0.05), so the interval is (-inf, inf); with alpha = 0.1 and confidence set to 0.95 in the
    config file, the row is still significant (p = q = 0.0625 < 0.1), so the CLI table shows it. The
    table, --json and `runs show` say "unbounded" and JSON stays JSON; the run warns that confidence
    is not 1 - alpha."""
    config = tmp_path / "audit.yaml"
    config.write_text("alpha: 0.1\nconfidence: 0.95\n", encoding="utf-8")
    pairs = pd.read_csv(classifier_probes)
    five = tmp_path / "five-pairs.csv"  # positive sentences: the planted bias lowers "she" in every one
    pairs[pairs["instance_id"].str.startswith("positive-")].head(5).to_csv(five, index=False)
    common = (
        "run", "--config", config, "--model", biased_classifier, "--probes", five,
        "--no-attention", "--no-attributions",
    )  # fmt: skip
    printed = run_cli(*common, "--out", tmp_path / "table")
    assert printed.exit_code == 0, printed.stderr
    run_dir = only_run(tmp_path / "table")
    row = findings_of(run_dir).query("metric == 'mean_delta'").iloc[0]
    assert row["significant"] and row["n"] == 5 and row["p_value"] == pytest.approx(0.0625)
    assert (row["ci_low"], row["ci_high"]) == (float("-inf"), float("inf"))
    assert "effect [95% CI]" in printed.stdout and UNBOUNDED in printed.stdout
    assert "inf" not in printed.stdout.replace(UNBOUNDED, "")

    as_json = run_cli(*common, "--out", tmp_path / "json", "--json")
    assert as_json.exit_code == 0, as_json.stderr
    summary = strict_json(as_json.stdout)["runs"][0]  # type: ignore[index]
    (significant,) = [f for f in summary["significant_findings"] if f["metric"] == "mean_delta"]
    assert significant["ci_low"] is None and significant["ci_high"] is None
    assert significant["interval"] == UNBOUNDED
    assert significant["ci_method"] == "sign-flip inversion"
    assert any("confidence = 0.95 is not 1 - alpha = 0.9" in w for w in summary["warnings"])

    shown = run_cli("runs", "show", str(run_dir), "--runs", tmp_path / "table")
    assert shown.exit_code == 0, shown.stderr
    assert UNBOUNDED in shown.stdout
    for command in (("runs", "show", str(run_dir), "--json"), ("runs", "list", "--json")):
        listed = run_cli(*command, "--runs", tmp_path / "table")
        assert listed.exit_code == 0, listed.stderr
        strict_json(listed.stdout)


def test_interval_text_edges() -> None:
    from audit.tables import interval_text

    assert interval_text(-0.01234, 0.5, 12, 0.95) == "[-0.012, +0.500]"
    assert interval_text(float("-inf"), float("inf"), 3, 0.9) == (
        "unbounded (n = 3: too few instances to exclude any value at 90%)"
    )
    assert interval_text(0.1, float("inf"), 3, 0.975) == "[+0.100, +inf)"
    assert interval_text(float("nan"), 1.0, 3, 0.95) == interval_text(None, None, 3, 0.95) == "none"


def test_a_start_token_given_to_a_model_that_is_not_a_causal_lm_is_said_to_be_ignored(
    run_cli, biased_classifier: Path, classifier_probes: Path, tmp_path: Path
) -> None:
    common = ("run", "--model", biased_classifier, "--probes", classifier_probes, "--no-attributions",
              "--no-attention", "--json")  # fmt: skip
    given = run_cli(*common, "--start-token", "eos", "--out", tmp_path / "given")
    assert given.exit_code == 0, given.stderr
    (summary,) = json.loads(given.stdout)["runs"]
    assert any("--start-token eos applies to causal LMs only" in w for w in summary["warnings"])
    default = run_cli(*common, "--out", tmp_path / "default")
    (summary,) = json.loads(default.stdout)["runs"]
    assert not any("--start-token" in w for w in summary["warnings"])
