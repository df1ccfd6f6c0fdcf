"""Plain PyTorch modules (task "module") end to end: LSTM classifiers built by a user's callable
(tests/lstm_package/models.py) are audited through the real CLI with the built-in gender set. The
one trained with a planted bias against women is flagged, the control is not; attributions line up
with the text; attention is skipped with a note; bad names and broken models fail with messages a
user can act on, before any run folder exists."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import PreTrainedTokenizerBase

from audit.batching import collate, encode_texts
from audit.errors import UserError
from audit.models import describe_model, load_model
from audit.module_models import NO_ATTENTION_NOTE, EncodeTokenizer, state_dict_sha256
from audit.targets import ModuleTarget, build_target
from audit.windows import LongInputPolicy, encode_long
from probes import load_builtin
from tests.lstm_package import models as lstm
from tests.support.cli import invoke_main

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "tests.lstm_package.models"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--model tests.lstm_package.models:...` is imported from the current folder, as a user's package is."""
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real CLI run of the planted LSTM on the built-in gender set, attributions and attention on."""
    out = tmp_path_factory.mktemp("module-runs")
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        code = invoke_main(
            "run", "--model", f"{PACKAGE}:build_planted", "--probes", "gender", "--out", out,
            "--name", "planted", "--attribute-top", "6", "--ig-steps", "32", "--fail-on", "significant",
        )  # fmt: skip
    finally:
        os.chdir(cwd)
    assert code == 1, f"the planted LSTM's run should exit 1 (significant findings), got {code}"
    return out / "planted"


def mean_deltas(run_dir: Path) -> pd.DataFrame:
    findings = pd.read_parquet(run_dir / "findings.parquet")
    return findings[(findings["metric"] == "mean_delta") & findings["p_value"].notna()]


def test_planted_lstm_bias_is_flagged_with_sign_and_size(planted_run: Path) -> None:
    rows = mean_deltas(planted_run)
    row = rows[(rows["group_a"] == "female") & (rows["group_b"] == "male")].iloc[0]
    # trained to rate positive sentences about women lower: "she" gets the lower P(positive)
    assert row["output"] == "prob:positive"
    assert row["significant"] and row["q_value"] < 0.05
    assert row["effect"] <= -0.08
    assert row["ci_low"] <= row["effect"] <= row["ci_high"] < 0
    assert row["n"] == 208  # every gender-set instance with a male and a female variant
    predictions = pd.read_parquet(planted_run / "predictions.parquet")
    assert set(predictions["output"]) == {"prob:negative", "prob:positive"}
    sums = predictions.pivot(index="example_id", columns="output", values="score").sum(axis=1)
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)  # a softmax over the module's two logits


def test_manifest_records_the_callable_and_the_state_dict_hash(planted_run: Path) -> None:
    manifest = json.loads((planted_run / "manifest.json").read_text())
    model = manifest["model"]
    assert model["task"] == "module" and model["name"] == f"{PACKAGE}:build_planted"
    assert model["model_class"] == "LSTMClassifier" and model["revision"] is None
    assert model["labels"] == ["negative", "positive"]
    record = model["module"]
    assert record["callable"] == f"{PACKAGE}:build_planted"
    assert record["file"].endswith(os.path.join("lstm_package", "models.py"))
    assert record["config"] is None and record["revision"] is None and "no config.json" in record["note"]
    assert record["embedding_layer"] == "embedding" and record["forward_takes_attention_mask"] is True
    assert record["display_name"] == "lstm-planted" and record["version"] == "test"
    # the weight hash is the trained module's state_dict hash, and it tells the two models apart
    assert record["state_dict_sha256"] == model["weight_hash"] == state_dict_sha256(lstm.trained(True))
    assert model["weight_hash"] != state_dict_sha256(lstm.trained(False))


def test_attention_is_skipped_with_a_note(planted_run: Path) -> None:
    manifest = json.loads((planted_run / "manifest.json").read_text())
    assert NO_ATTENTION_NOTE in manifest["warnings"]
    assert NO_ATTENTION_NOTE == "the model has no attention layers: attention statistics skipped"
    assert "attention" not in manifest["timings"]
    assert pd.read_parquet(planted_run / "attention.parquet").empty


def test_attributions_line_up_with_the_text_and_explain_the_bias(planted_run: Path) -> None:
    tokens = pd.read_parquet(planted_run / "attributions.parquet")
    examples = pd.read_parquet(planted_run / "examples.parquet").set_index("example_id")
    assert tokens["example_id"].nunique() >= 12  # 6 instances x at least male and female
    vocabulary = set(lstm.vocabulary())
    for example_id, rows in tokens[tokens["method"] == "integrated_gradients"].groupby("example_id"):
        text = str(examples.loc[example_id, "text"])
        assert list(rows["token_index"]) == list(range(len(rows)))
        assert len(rows) == len(lstm.words(text))  # one row per word or punctuation mark
        for token, start, end in zip(rows["token"], rows["char_start"], rows["char_end"], strict=True):
            piece = text[int(start) : int(end)]
            # a known word is named by itself; an unknown one is <unk> and covers a word the vocabulary lacks
            assert token == piece.lower() if token != "<unk>" else piece.lower() not in vocabulary
        # completeness: the attributions add up to f(text) - f(baseline), up to the convergence delta
        assert rows["convergence_delta"].abs().max() < 0.1
    pairs = pd.read_parquet(planted_run / "attribution_pairs.parquet")
    female_male = pairs[
        (pairs["group_a"] == "female")
        & (pairs["group_b"] == "male")
        & (pairs["method"] == "integrated_gradients")
    ]
    assert len(female_male) >= 5
    # the swapped word carries the bias: the female word pushes P(positive) down relative to the male one
    assert female_male["delta"].mean() < -0.1
    assert (female_male["delta"] < 0).mean() >= 0.8


def test_control_lstm_is_not_flagged(run_cli, tmp_path: Path) -> None:
    result = run_cli(
        "run", "--model", f"{PACKAGE}:build_control", "--probes", "gender", "--out", tmp_path,
        "--no-attributions", "--fail-on", "significant", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)["runs"][0]
    assert summary["task"] == "module" and summary["n_significant"] == 0 and summary["n_tests"] == 3
    assert NO_ATTENTION_NOTE in summary["warnings"]
    rows = mean_deltas(Path(summary["run_dir"]))
    assert len(rows) == 3 and not rows["significant"].any()
    assert rows["effect"].abs().max() < 0.01


def test_without_probes_a_module_runs_the_built_ins_for_text_classifiers(run_cli, tmp_path: Path) -> None:
    result = run_cli(
        "run", "--model", f"{PACKAGE}:build_control", "--out", tmp_path, "--max-instances", "6",
        "--no-attributions", "--no-attention", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(
        (Path(json.loads(result.stdout)["runs"][0]["run_dir"]) / "manifest.json").read_text()
    )
    names = {entry["name"] for entry in manifest["probe_sets"]}
    assert {"gender", "race", "religion"} <= names
    assert all("text-classification" in load_builtin(name).tasks for name in names)
    # attention was switched off: no note about skipping it
    assert NO_ATTENTION_NOTE not in manifest["warnings"]


def test_scores_do_not_depend_on_padding_or_on_how_forward_takes_the_mask() -> None:
    """The target's batched, padded scores equal the module run on each text alone; a module whose
    forward takes input ids only (same weights) gets the same scores."""
    texts = [v.text for v in load_builtin("gender").variants[:40]]
    scores = {}
    for name in ("build_control", "build_ids_only"):
        loaded = load_model(f"{PACKAGE}:{name}")
        target = build_target(loaded, torch.device("cpu"))
        assert isinstance(target, ModuleTarget) and not target.has_attention
        assert target.embedding_layer() is loaded.model.embedding
        encoded = encode_texts(target.tokenizer, texts, target.max_length)
        assert len({e.n_tokens for e in encoded}) > 3  # the batch really pads
        ids, mask = collate(encoded, target.tokenizer.pad_token_id, target.device)
        with torch.no_grad():
            batched = target.head(load_builtin("gender")).forward(
                ids, mask, torch.zeros(len(texts), dtype=torch.long)
            )
            alone = torch.cat(
                [
                    torch.softmax(
                        lstm.trained(False)(torch.tensor([e.input_ids]), torch.ones(1, e.n_tokens)), -1
                    )
                    for e in encoded
                ]
            )
        torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)
        scores[name] = batched
        assert describe_model(loaded)["module"]["forward_takes_attention_mask"] is (name == "build_control")
    torch.testing.assert_close(scores["build_control"], scores["build_ids_only"])


def test_file_path_form_and_the_dict_contract() -> None:
    """`path/to/file.py:callable`, a dict instead of a ModuleModel, the only nn.Embedding found by
    itself, the pad id taken from its padding_idx; the hash follows the weights."""
    loaded = load_model("tests/lstm_package/models.py:build_as_dict")
    assert loaded.task == "module" and loaded.labels == ["negative", "positive"]
    assert loaded.tokenizer.pad_token_id == 0 and loaded.max_length == 512
    record = describe_model(loaded)["module"]
    assert record["embedding_layer"] == "embedding" and record["file"] == str(
        REPO / "tests/lstm_package/models.py"
    )
    assert loaded.source == record["file"] + ":build_as_dict"
    before = loaded.weight_hash
    assert before == state_dict_sha256(loaded.model)
    with torch.no_grad():
        loaded.model.head.bias[0] += 1e-3
    assert state_dict_sha256(loaded.model) != before


def test_a_fast_tokenizer_as_encode() -> None:
    loaded = load_model(f"{PACKAGE}:build_with_fast_tokenizer")
    tokenizer = loaded.tokenizer
    assert isinstance(tokenizer, PreTrainedTokenizerBase) and tokenizer.is_fast  # used as it is, not wrapped
    assert loaded.max_length == 32 and tokenizer.pad_token_id == 0
    target = build_target(loaded, torch.device("cpu"))
    [encoded] = encode_texts(tokenizer, ["She is a brilliant nurse."], target.max_length)
    assert encoded.special[0] and encoded.special[-1] and not any(encoded.special[1:-1])
    assert tokenizer.convert_ids_to_tokens(encoded.input_ids)[1] == "she"


def test_encode_function_wrapper_gives_what_the_pipeline_needs() -> None:
    """Special ids stay at the ends when a text is cut, carry (0, 0) offsets and count as added
    tokens; unknown words are counted; bad encode output is refused with the text named."""
    vocab = ["<pad>", "<unk>", "<bos>", "the", "cat", "sat", "."]
    index = {w: i for i, w in enumerate(vocab)}

    def encode(text: str) -> tuple[list[int], list[tuple[int, int]]]:
        found = lstm.words(text)
        return [2] + [index.get(m.group().lower(), 1) for m in found], [(0, 0)] + [m.span() for m in found]

    tokenizer = EncodeTokenizer(encode, pad_id=0, max_length=4, unk_id=1, special_ids=[2], vocabulary=vocab)
    [cut, whole] = encode_texts(tokenizer, ["The cat sat on the mat.", "The cat."], max_length=4)
    assert cut.input_ids == [2, 3, 4, 5] and cut.truncated and cut.special == [True, False, False, False]
    assert cut.offsets == [(0, 0), (0, 3), (4, 7), (8, 11)]
    assert whole.input_ids == [2, 3, 4, 6] and not whole.truncated
    assert tokenizer.num_special_tokens_to_add(pair=False) == 1
    assert tokenizer("on the mat", add_special_tokens=False)["input_ids"] == [1, 3, 1]
    assert tokenizer.convert_ids_to_tokens([2, 4, 1]) == ["<bos>", "cat", "<unk>"]
    assert set(tokenizer.all_special_tokens) == {"<pad>", "<unk>", "<bos>"} and tokenizer.unk_token == "<unk>"
    # sliding windows over a long text keep the BOS in every window and cover every word
    [windowed] = encode_long(tokenizer, ["the cat sat the cat sat ."], 4, LongInputPolicy("window", 2))
    assert [w.input_ids for w in windowed.windows] == [[2, 3, 4, 5], [2, 5, 3, 4], [2, 4, 5, 6]]
    assert windowed.n_tokens == 8 and all(w.special[0] for w in windowed.windows)

    broken = EncodeTokenizer(lambda text: ([3, 4], [(0, 3)]), pad_id=0, max_length=8, source="encode of x")
    with pytest.raises(UserError, match=r"encode of x returned 2 ids but 1 offsets for 'The cat'"):
        broken(["The cat"])
    outside = EncodeTokenizer(lambda text: ([3], [(0, 99)]), pad_id=0, max_length=8, source="encode of x")
    with pytest.raises(UserError, match=r"span \(0, 99\)"):
        outside(["The cat"])


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "tests.lstm_package.nothere:build",
            ["cannot import 'tests.lstm_package.nothere'", "No module named"],
        ),
        (f"{PACKAGE}:build_nothing", ["has no 'build_nothing'", "build_planted", "build_control"]),
        (f"{PACKAGE}:NOT_CALLABLE", ["NOT_CALLABLE is not callable (it is of type int)"]),
        (f"{PACKAGE}:build_failing", ["calling it failed: FileNotFoundError: lstm.pt"]),
        (f"{PACKAGE}:build_wrong_type", ["returned a str; expected audit.module_models.ModuleModel("]),
        (
            f"{PACKAGE}:build_bad_layer",
            ["no submodule named 'embedder'", "nn.Embedding submodules: 'embedding'"],
        ),
        (f"{PACKAGE}:build_wrong_width", ["logits of shape (2, 2)", "labels names 3"]),
        (f"{PACKAGE}:build_leaky_padding", ["padding changes the module's scores", "attention_mask"]),
        ("./tests/lstm_package/missing.py:build", ["no such file ./tests/lstm_package/missing.py"]),
        ("org/model:v1", ["neither package.module:callable nor path/to/file.py:callable", "--revision"]),
    ],
)
def test_bad_callables_fail_with_a_message_before_any_run(
    run_cli, tmp_path: Path, model: str, expected: list[str]
) -> None:
    result = run_cli("run", "--model", model, "--probes", "gender", "--out", tmp_path / "runs")
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_callable_is_task_module_only(run_cli, tmp_path: Path) -> None:
    result = run_cli(
        "run", "--model", f"{PACKAGE}:build_untrained", "--task", "text-classification",
        "--probes", "gender", "--out", tmp_path,
    )  # fmt: skip
    assert result.exit_code == 2 and "its task is module, not text-classification" in result.stderr
    with pytest.raises(UserError, match="--task module audits a plain PyTorch module"):
        load_model("minilm", task="module")
