"""Long documents end to end through the real CLI, on tiny models whose behaviour is known.

- The key reader (tests/support/long_models.py) is a BERT classifier with a hard 512-position limit that
  reads a positive key sentence wherever it stands inside its window. Under truncation a key
  placed past token 512 must have exactly no effect, and the run must say why; with sliding
  windows the same key must move the output again.
- Random-init Llama-style (grouped-query attention, rotary) and ModernBERT (global and local
  layers) classifiers with 4096 positions run the whole pipeline on documents up to 8k tokens:
  attention statistics with the key sentence's mass and the sinks', segment attributions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.support.long_models import (
    build_long_llama,
    build_long_modernbert,
    train_key_reader,
    write_long_probe_file,
)


@pytest.fixture(scope="session")
def key_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_key_reader(tmp_path_factory.mktemp("long") / "key-reader")


@pytest.fixture(scope="session")
def long_probes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_long_probe_file(tmp_path_factory.mktemp("long-probes") / "tiny-long.yaml")


def _run(run_cli, out: Path, model: Path, probes: Path, *extra: object) -> tuple[Path, dict]:
    result = run_cli(
        "run", "--model", model, "--probes", probes, "--out", out, "--name", "run", "--json", *extra
    )
    assert result.exit_code == 0, result.stderr
    run_dir = out / "run"
    return run_dir, json.loads((run_dir / "manifest.json").read_text())


def _key_effects(run_dir: Path) -> pd.DataFrame:
    findings = pd.read_parquet(run_dir / "findings.parquet")
    return findings[findings["metric"] == "key_effect"].set_index(["doc_length", "position"])


def test_key_sentence_beyond_the_model_limit_has_no_effect_under_truncation(
    run_cli, tmp_path: Path, key_reader: Path, long_probes: Path
) -> None:
    run_dir, manifest = _run(
        run_cli,
        tmp_path,
        key_reader,
        long_probes,
        "--no-attention",
        "--no-attributions",
        "--fail-on",
        "significant",
    )
    # key sentences that work are significant but no problem: --fail-on significant stayed 0
    assert manifest["summary"]["n_significant"] == 0 and manifest["summary"]["n_key_effects_significant"] > 5
    effects = _key_effects(run_dir)

    # inside the window (every position of a 128-token document, the start of a 2048-token one)
    # the key sentence decides the output
    for position in (0.0, 0.25, 0.5, 0.75, 1.0):
        row = effects.loc[(128, position)]
        assert row["effect"] > 0.3 and row["significant"], row
    assert effects.loc[(2048, 0.0)]["effect"] > 0.3
    # past token 512 of a 2048-token document it is cut away: exactly no effect, and the row says why
    for position in (0.5, 0.75, 1.0):
        row = effects.loc[(2048, position)]
        assert row["effect"] == 0.0 and not row["significant"]
        assert "beyond the model's 512-token limit" in row["note"]
    assert any("lost their key sentence to truncation" in w for w in manifest["warnings"])
    assert manifest["long_inputs"] == {"strategy": "truncate", "max_length": 512}

    examples = pd.read_parquet(run_dir / "examples.parquet")
    long_rows = examples[examples["doc_length"] == 2048]
    assert long_rows["truncated"].all() and (long_rows["n_tokens"] == 512).all()
    assert (examples["n_windows"] == 1).all()

    findings = pd.read_parquet(run_dir / "findings.parquet")
    context = findings[(findings["metric"] == "effective_context") & (findings["doc_length"] == 2048)].iloc[0]
    assert context["effect"] <= 512  # the key reaches the output from the first quarter at most


def test_sliding_windows_read_the_whole_document(
    run_cli, tmp_path: Path, key_reader: Path, long_probes: Path
) -> None:
    run_dir, manifest = _run(
        run_cli,
        tmp_path,
        key_reader,
        long_probes,
        "--long-inputs",
        "window",
        "--long-attribute-top",
        "1",
        "--long-token-attributions",
    )
    effects = _key_effects(run_dir)
    for position in (0.0, 0.5, 1.0):
        row = effects.loc[(2048, position)]
        assert row["effect"] > 0.05, row.to_dict()  # mean over ~8 windows: diluted, not gone
        assert pd.isna(row["note"])
        # at the start the key lies in one window of eight, and the filler it pushes along changes
        # the other windows a little: the mean is too diluted to test there (max aggregation reads
        # it: test_window_max_aggregation_keeps_the_key_window_whole); in the middle and at the end it lies in two windows
        if position > 0:
            assert row["significant"], row.to_dict()
    examples = pd.read_parquet(run_dir / "examples.parquet")
    assert (examples.loc[examples["doc_length"] == 2048, "n_windows"] > 1).all()
    assert not examples["truncated"].any()
    assert manifest["long_inputs"] == {
        "strategy": "window",
        "max_length": 512,
        "stride": 255,
        "aggregate": "mean",
    }
    assert not any("truncation" in w for w in manifest["warnings"])
    # token attributions of windowed documents come back as one row per token of the text
    tokens = pd.read_parquet(run_dir / "attributions.parquet").merge(examples, on="example_id")
    windowed = tokens[tokens["n_windows"] > 1]
    assert not windowed.empty
    for _, rows in windowed.groupby(["example_id", "method"]):
        assert list(rows["token_index"]) == list(range(len(rows)))
        real = rows[rows["char_end"] > 0]
        assert real["char_start"].is_unique and real["char_start"].is_monotonic_increasing
    segments = pd.read_parquet(run_dir / "segment_attributions.parquet")
    assert segments["is_key"].any() and (segments["n_tokens"] > 0).all()
    # attention statistics of a windowed document: one row per document x layer x head x statistic,
    # its key sentence's mass measured in the window that holds it
    attention = pd.read_parquet(run_dir / "attention.parquet")
    assert set(attention["example_id"]) <= set(examples["example_id"])
    assert not attention.duplicated(["example_id", "layer", "head", "stat"]).any()
    key_mass = attention[attention["stat"] == "focus_mass"].merge(examples, on="example_id")
    windowed_keys = key_mass[(key_mass["n_windows"] > 1) & key_mass["position"].notna()]
    assert not windowed_keys.empty and (windowed_keys["value"] > 0).all()


def test_window_max_aggregation_keeps_the_key_window_whole(
    run_cli, tmp_path: Path, key_reader: Path, long_probes: Path
) -> None:
    run_dir, _ = _run(
        run_cli,
        tmp_path,
        key_reader,
        long_probes,
        "--long-inputs",
        "window",
        "--window-aggregate",
        "max",
        "--no-attention",
        "--no-attributions",
    )
    effects = _key_effects(run_dir)
    for position in (0.0, 0.5, 1.0):
        assert effects.loc[(2048, position)]["effect"] > 0.3  # the window holding the key decides


@pytest.mark.parametrize("build", [build_long_llama, build_long_modernbert], ids=["llama-gqa", "modernbert"])
def test_long_context_architectures_run_with_attention_and_segments(
    run_cli, tmp_path: Path, build, long_probes: Path
) -> None:
    model = build(tmp_path / "model")
    probes = write_long_probe_file(
        tmp_path / "long.yaml", lengths=(256, 2048, 8192), positions=(0.0, 0.5, 1.0)
    )
    run_dir, manifest = _run(
        run_cli, tmp_path, model, probes, "--max-instances", 2, "--long-attribute-top", 1
    )
    assert manifest["long_inputs"]["max_length"] == 4096
    effects = _key_effects(run_dir)
    # a key past the 4096-token limit is cut away; inside it, the untrained model still reacts a little
    assert (
        effects.loc[(8192, 1.0)]["effect"] == 0.0 and "4096-token limit" in effects.loc[(8192, 1.0)]["note"]
    )
    assert effects.loc[(2048, 1.0)]["effect"] != 0.0

    attention = pd.read_parquet(run_dir / "attention.parquet")
    examples = pd.read_parquet(run_dir / "examples.parquet")
    assert set(attention["stat"]) >= {"entropy", "focus_mass", "special_mass", "sink_mass", "mean_distance"}
    focus = attention[attention["stat"] == "focus_mass"].merge(examples, on="example_id")
    by_variant = focus.groupby(["doc_length", "position"])["value"].mean()
    assert by_variant.loc[(2048, 0.5)] > 0  # the key sentence gets attention mass where it is
    assert pd.isna(by_variant.loc[(8192, 1.0)])  # and none is measured where it was cut away
    sinks = attention[attention["stat"] == "sink_mass"]["value"]
    assert ((sinks > 0) & (sinks <= 1.0 + 1e-6)).all()

    segments = pd.read_parquet(run_dir / "segment_attributions.parquet")
    assert not segments.empty and segments["is_key"].any()
    assert set(segments["method"]) == {"segment_ablation"}
    cut = segments.merge(examples[["example_id", "doc_length", "position", "text"]], on="example_id")
    # a truncated document is segmented where the model read it; one whose key was cut away is not
    # explained at all (nothing of the key reached the model)
    assert cut[(cut["doc_length"] == 8192) & (cut["position"] == 1.0)].empty
    start = cut[(cut["doc_length"] == 8192) & (cut["position"] == 0.0)]
    assert start["is_key"].any() and (start["char_end"] < start["text"].str.len()).all()
    assert (start["n_tokens"] > 0).all()


def test_embedding_models_compare_long_documents_with_the_key_query(
    run_cli, tmp_path: Path, key_reader: Path, long_probes: Path
) -> None:
    run_dir, _ = _run(
        run_cli,
        tmp_path,
        key_reader,
        long_probes,
        "--task",
        "embedding",
        "--no-attention",
        "--no-attributions",
    )
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    assert predictions["output"].str.startswith("sim:").all()
    effects = pd.read_parquet(run_dir / "effects.parquet")
    assert set(effects["output"]) == {f"sim:pos{i}" for i in range(8)}
    assert (effects.groupby("instance_id")["output"].nunique() == 1).all()  # each key on its own query
