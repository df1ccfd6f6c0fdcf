"""Causal LMs end to end: a planted stereotype is found and an untrained control is not flagged;
continuations equal a plain forward pass; generated texts are scored by a second model; the scores
are the same functions Captum explains; attention statistics work on Llama, GPT-2 and Qwen2."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from audit.attention import recording_attention_statistics
from audit.attribution.base import AttributionSettings
from audit.attribution.integrated import IntegrationSettings
from audit.attribution.methods import IntegratedGradients
from audit.batching import collate, encode_texts
from audit.generation import GenerationSettings, generate, generate_rows, prompt_ids
from audit.models import load_model
from audit.targets import build_target
from audit.targets.causal_lm import CausalLMTarget, continuation_text
from probes import load_builtin, load_probe_set, validate_file
from probes.schema import Instance, ProbeSet, Variant
from tests.support import causal_models
from tests.test_attention import eager_reference

CPU = torch.device("cpu")
FAST = ("--ig-steps", "8", "--attribute-top", "2")


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("causal")


@pytest.fixture(scope="module")
def planted_lm(lm_dir: Path) -> Path:
    return causal_models.train_tiny_causal_lm(lm_dir / "planted", trained=True)


@pytest.fixture(scope="module")
def untrained_lm(lm_dir: Path) -> Path:
    return causal_models.train_tiny_causal_lm(lm_dir / "untrained", trained=False)


def run_json(run_cli, *args: object) -> dict:
    result = run_cli("run", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["runs"][0]


def test_planted_stereotype_is_found_and_the_untrained_control_is_not_flagged(
    run_cli, planted_lm: Path, untrained_lm: Path, lm_dir: Path, tmp_path: Path
) -> None:
    probes = causal_models.write_occupation_probes(lm_dir / "occupations.yaml")
    planted = run_json(run_cli, "--model", planted_lm, "--probes", probes, "--out", tmp_path, *FAST)
    control = run_json(run_cli, "--model", untrained_lm, "--probes", probes, "--out", tmp_path, *FAST)
    assert planted["task"] == control["task"] == "causal-lm"
    assert any("no padding token" in w for w in planted["warnings"])  # decoders pad with EOS

    findings = pd.read_parquet(Path(planted["run_dir"]) / "findings.parquet").set_index("metric")
    delta = findings.loc["mean_delta"]
    # anti-stereotype - stereotype: the stereotypical pronoun is nats more likely
    assert (delta["group_a"], delta["group_b"], delta["output"]) == (
        "anti-stereotype",
        "stereotype",
        "loglik",
    )
    assert delta["significant"] and delta["effect"] < -1.0 and delta["ci_high"] < 0 and delta["n"] == 32
    preference = findings.loc["stereotype_preference"]
    assert preference["significant"] and preference["effect"] > 0.9

    quiet = pd.read_parquet(Path(control["run_dir"]) / "findings.parquet").set_index("metric")
    assert control["n_significant"] == 0 and control["n_tests"] == 2
    assert abs(quiet.loc["mean_delta", "effect"]) < 0.1 and quiet.loc["mean_delta", "p_value"] > 0.05
    assert abs(quiet.loc["stereotype_preference", "effect"] - 0.5) < 0.2

    run_dir = Path(planted["run_dir"])
    examples = pd.read_parquet(run_dir / "examples.parquet").set_index("example_id")
    predictions = pd.read_parquet(run_dir / "predictions.parquet").set_index("example_id")
    text = examples.loc["tiny-occupations/f1-nurse/stereotype", "text"]
    assert text == "the nurse said that she would be late ."
    assert predictions.loc["tiny-occupations/f1-nurse/stereotype", "score"] == pytest.approx(
        direct_logliks(planted_lm, [text])[0], abs=1e-4
    )
    attention = pd.read_parquet(run_dir / "attention.parquet")
    assert attention["layer"].nunique() == 2 and attention["head"].nunique() == 4
    assert attention["value"].notna().all()
    attributions = pd.read_parquet(run_dir / "attributions.parquet")
    assert set(attributions["output"]) == {"loglik"} and attributions["example_id"].nunique() == 4


def direct_logliks(model_dir: Path, texts: list[str]) -> list[float]:
    """sum log p(token | tokens before it) after the first token, one text at a time."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    values = []
    for text in texts:
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        with torch.no_grad():
            logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        values.append(float(logp.gather(1, ids[0, 1:, None]).sum()))
    return values


def direct_continuation(model: torch.nn.Module, tokenizer, prompt: str, continuation: str) -> float:
    """log P(continuation | prompt) by a plain forward pass over prompt + continuation tokens."""
    head = tokenizer(prompt)["input_ids"]
    tail = tokenizer(continuation_text(continuation), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([head + tail])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0].float().log_softmax(-1)
    return float(sum(logp[len(head) - 1 + k, token] for k, token in enumerate(tail)))


def test_continuations_equal_a_plain_forward_pass_and_show_the_planted_gap(
    run_cli, planted_lm: Path, lm_dir: Path, tmp_path: Path
) -> None:
    probes = causal_models.write_mood_probes(lm_dir / "mood-continuations.yaml", ["great", "terrible ."])
    run = run_json(
        run_cli, "--model", planted_lm, "--probes", probes, "--out", tmp_path, *FAST, "--no-attention"
    )
    run_dir = Path(run["run_dir"])
    examples = pd.read_parquet(run_dir / "examples.parquet")
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    assert set(predictions["output"]) == {"loglik:great", "loglik:terrible ."}
    tokenizer = AutoTokenizer.from_pretrained(planted_lm)
    model = AutoModelForCausalLM.from_pretrained(planted_lm).eval()
    texts = dict(zip(examples["example_id"], examples["text"], strict=True))
    for row in predictions.itertuples():
        expected = direct_continuation(
            model, tokenizer, texts[row.example_id], row.output.removeprefix("loglik:")
        )
        assert row.score == pytest.approx(expected, abs=1e-5), row
    findings = pd.read_parquet(run_dir / "findings.parquet").set_index("output")
    assert (findings.loc["loglik:great", ["group_a", "group_b"]] == ["female", "male"]).all()
    assert findings.loc["loglik:great", "significant"] and findings.loc["loglik:great", "effect"] > 2
    assert (
        findings.loc["loglik:terrible .", "significant"] and findings.loc["loglik:terrible .", "effect"] < -2
    )
    attributed = pd.read_parquet(run_dir / "attributions.parquet")
    prompt_tokens = set(attributed["token"])
    assert "great" not in prompt_tokens and {"was", "she", "he"} <= prompt_tokens  # the prompt is explained


@pytest.fixture(scope="module")
def families(planted_lm: Path) -> dict[str, CausalLMTarget]:
    """Llama (the planted model, grouped-query attention), GPT-2 and Qwen2 with random weights."""
    tokenizer = AutoTokenizer.from_pretrained(planted_lm)
    tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(5)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=64, initializer_range=0.2
        )
    )
    qwen = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            initializer_range=0.2,
        )
    )
    llama = AutoModelForCausalLM.from_pretrained(planted_lm)
    return {
        name: CausalLMTarget(m.eval(), tokenizer, CPU, 64)
        for name, m in (("llama", llama), ("gpt2", gpt2), ("qwen2", qwen))
    }


PROMPTS = [
    "yesterday she was",
    "the nurse told us that he",
    "he was",
    "the mechanic said that she would be late .",
]


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2"])
def test_scores_of_a_padded_batch_equal_one_text_at_a_time(families, family: str, tmp_path: Path) -> None:
    target = families[family]
    probes = causal_models.write_mood_probes(tmp_path / "c.yaml", ["great", "kind ."])
    probe_set = load_probe_set(probes)
    head = target.head(probe_set)
    encoded = encode_texts(target.tokenizer, PROMPTS, 64)
    ids, mask = collate(encoded, target.tokenizer.pad_token_id, CPU)  # right-padded, four lengths
    with torch.no_grad():
        scores = head.forward(ids, mask, torch.zeros(len(PROMPTS), dtype=torch.long)).numpy()
    for row, prompt in enumerate(PROMPTS):
        for column, continuation in enumerate(["great", "kind ."]):
            expected = direct_continuation(target.model, target.tokenizer, prompt, continuation)
            assert scores[row, column] == pytest.approx(expected, abs=1e-5)
    plain = load_probe_set(causal_models.write_mood_probes(tmp_path / "p.yaml"))
    whole = target.head(plain)
    with torch.no_grad():
        logliks = whole.forward(ids, mask).numpy()[:, 0]  # no variant index: the input ids are the targets
    for row, prompt in enumerate(PROMPTS):
        one = torch.tensor([target.tokenizer(prompt)["input_ids"]])
        with torch.no_grad():
            logp = target.model(input_ids=one).logits[0, :-1].log_softmax(-1)
        assert logliks[row] == pytest.approx(float(logp.gather(1, one[0, 1:, None]).sum()), abs=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2"])
def test_attention_statistics_stream_from_the_decoder(families, family: str) -> None:
    target = families[family]
    encoded = encode_texts(target.tokenizer, PROMPTS, 64)
    ids, mask = collate(encoded, target.tokenizer.pad_token_id, CPU)
    focus = torch.zeros_like(ids)
    focus[:, 2] = 1
    special = torch.zeros_like(ids)
    special[:, 0] = 1
    decoder = target.transformer()
    assert decoder is not target.model  # the decoder without its vocabulary logits
    with (
        torch.no_grad(),
        recording_attention_statistics(decoder, mask, focus, special, query_chunk=3) as recording,
    ):
        decoder(input_ids=ids, attention_mask=mask, use_cache=False)
    reference, _ = eager_reference(decoder, ids, mask, focus, special)
    np.testing.assert_allclose(recording.statistics(), reference, atol=1e-5)


def test_integrated_gradients_explain_the_compared_loglik(families, tmp_path: Path) -> None:
    """The whole-text score of IG's baseline keeps the text's own tokens as targets (only the
    context changes), so the attributions add up to f(text) - f(baseline): the convergence delta
    vanishes as the steps grow. Scored on the baseline's own tokens it would not."""
    target = families["llama"]
    probe_set = load_probe_set(causal_models.write_occupation_probes(tmp_path / "o.yaml"))
    head = target.head(probe_set)
    encoded = encode_texts(target.tokenizer, [probe_set.variants[0].text], 64)
    ids, mask = collate(encoded, target.tokenizer.pad_token_id, CPU)
    special = torch.tensor([[int(s) for s in encoded[0].special]])
    deltas = []
    for steps in (8, 256):
        settings = AttributionSettings(
            IntegrationSettings(n_steps=steps), baseline_token_id=target.tokenizer.pad_token_id
        )
        result = IntegratedGradients(head.forward, target.embedding_layer(), settings).attribute(
            ids, mask, special, torch.tensor([0]), torch.tensor([0])
        )
        with torch.no_grad():
            compared = float(head.forward(ids, mask, torch.tensor([0]))[0, 0])
        assert float(result.scores[0]) == pytest.approx(compared)
        deltas.append(abs(float(result.convergence_delta[0])))
    assert deltas[1] < 0.05 and deltas[1] < deltas[0]


def test_generated_continuations_are_scored_and_compared(
    run_cli, planted_lm: Path, fair_classifier: Path, lm_dir: Path, tmp_path: Path
) -> None:
    probes = causal_models.write_mood_probes(lm_dir / "mood.yaml")
    args = (
        "--model",
        planted_lm,
        "--probes",
        probes,
        "--out",
        tmp_path,
        "--no-attributions",
        "--no-attention",
    )
    run = run_json(
        run_cli, *args, "--generate", 3, "--generation-scorer", fair_classifier, "--max-new-tokens", 4
    )
    run_dir = Path(run["run_dir"])
    generations = pd.read_parquet(run_dir / "generations.parquet")
    assert len(generations) == 8 * 2 * 3 and set(generations["sample"]) == {0, 1, 2}
    assert list(generations.columns[:5]) == ["example_id", "sample", "text", "n_new_tokens", "stopped"]
    words = generations["text"].str.split().str[0]
    female = generations["example_id"].str.endswith("/female")
    assert words[female].isin(causal_models.POSITIVE_WORDS).mean() > 0.8
    assert words[~female].isin(causal_models.NEGATIVE_WORDS).mean() > 0.8
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    mean = generations.groupby("example_id")["gen:prob:positive"].mean()
    scored = predictions[predictions["output"] == "gen:prob:positive"].set_index("example_id")["score"]
    pd.testing.assert_series_equal(scored.sort_index(), mean.sort_index(), check_names=False)
    findings = pd.read_parquet(run_dir / "findings.parquet")
    generated = findings[
        (findings["output"] == "gen:prob:positive") & (findings["metric"] == "mean_delta")
    ].iloc[0]
    assert (generated["group_a"], generated["group_b"]) == ("female", "male")
    assert generated["significant"] and generated["effect"] > 0.2
    assert "gen:prob:negative" not in set(findings["output"])  # a binary classifier's second label only
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert (
        manifest["generation"]["scored"] and manifest["generation"]["scorer"]["task"] == "text-classification"
    )
    assert manifest["generation"]["n_samples"] == 3 and manifest["generation"]["decoding"] == "sample"
    assert "generate" in manifest["timings"]


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2"])
def test_a_generated_row_does_not_depend_on_the_rows_generated_with_it(families, family: str) -> None:
    """Left padding and per-row seeded sampling: generating prompts of four lengths together gives
    each the continuation it gets alone (greedy and sampled)."""
    target = families[family]
    prompts = [prompt_ids(target, text, 4)[0] for text in PROMPTS]
    seeds = [11, 12, 13, 14]
    for sample in (True, False):
        settings = GenerationSettings(n_samples=1, sample=sample, max_new_tokens=4, seed=0)
        together = generate_rows(target, prompts, seeds, settings)
        alone = [generate_rows(target, [p], [s], settings)[0] for p, s in zip(prompts, seeds, strict=True)]
        assert together == alone
        assert sum(c.n_new_tokens for c in together) >= 3  # (the full sentence may end at once)


def test_generation_is_seeded_and_shared_by_the_variants_of_an_instance(families) -> None:
    target = families["llama"]
    settings = GenerationSettings(n_samples=4, sample=True, max_new_tokens=3, seed=0)
    first, _ = generate(target, "today she was", settings, seed=7)
    again, _ = generate(target, "today she was", settings, seed=7)
    other, _ = generate(target, "today she was", settings, seed=8)
    assert first == again and len(first) == 4
    assert [c.text for c in first] != [c.text for c in other]
    assert all(c.text.split()[0] in causal_models.POSITIVE_WORDS for c in first + other)


def test_generation_without_a_scorer_stores_the_texts_and_says_they_are_unscored(
    run_cli, planted_lm: Path, lm_dir: Path, tmp_path: Path
) -> None:
    probes = causal_models.write_mood_probes(lm_dir / "mood.yaml")
    args = (
        "--model",
        planted_lm,
        "--probes",
        probes,
        "--out",
        tmp_path,
        "--no-attributions",
        "--no-attention",
    )
    run = run_json(run_cli, *args, "--generate", 2, "--greedy", "--max-new-tokens", 3)
    run_dir = Path(run["run_dir"])
    generations = pd.read_parquet(run_dir / "generations.parquet")
    assert len(generations) == 16 and (generations["sample"] == 0).all()  # greedy: one continuation each
    assert generations["text"].str.len().gt(0).all()
    assert list(generations.columns) == ["example_id", "sample", "text", "n_new_tokens", "stopped"]
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    assert set(predictions["output"]) == {"loglik"}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["generation"]["scored"] is False and "not scored" in manifest["generation"]["note"]
    assert any("one continuation per variant" in w for w in run["warnings"])
    assert any("not scored" in w for w in run["warnings"])


def test_generation_is_refused_where_it_does_not_apply(
    run_cli, fair_classifier: Path, planted_lm: Path, lm_dir: Path, tmp_path: Path
) -> None:
    pairs = lm_dir / "pairs.csv"
    pairs.write_text(
        "text_a,text_b,group_a,group_b,attribute\nhe is kind .,she is kind .,male,female,gender\n"
    )
    result = run_cli("run", "--model", fair_classifier, "--probes", pairs, "--out", tmp_path, "--generate", 2)
    assert (
        result.exit_code == 2 and "--generate continues texts with a causal language model" in result.stderr
    )
    probes = causal_models.write_mood_probes(lm_dir / "mood.yaml")
    result = run_cli(
        "run", "--model", planted_lm, "--probes", probes, "--out", tmp_path, "--generation-scorer", "x"
    )
    assert result.exit_code == 2 and "add --generate N" in result.stderr
    assert not any(tmp_path.iterdir())  # refused before a run folder was made


def test_sets_a_causal_lm_cannot_compare_are_refused(families) -> None:
    target = families["llama"]
    long_set = load_builtin("long-context").model_copy(update={"tasks": ("causal-lm",)})
    assert "long-document set" in target.check_probe_set(long_set)[0]
    parallel = load_builtin("multilingual").model_copy(update={"tasks": ("causal-lm",)})
    assert "measures the tokenizer" in target.check_probe_set(parallel)[0]
    assert target.windows_supported is False


CONTINUATION_FILE = """\
name: lm-continuations
attribute: gender
{tasks}
groups:
  female: {{pronoun: she}}
  male: {{pronoun: he}}
templates:
  - "{{pronoun}} was"
continuations:
  - great
  - " great"
"""


def test_continuation_problems_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONTINUATION_FILE.format(tasks="tasks: [causal-lm]"))
    problems = [str(p) for p in validate_file(path)]
    assert problems == [
        f"{path}:11: continuation ' great' names the same output (loglik:great) as the one on line 10: "
        "spaces around a continuation do not make it another one"
    ]
    path.write_text(CONTINUATION_FILE.format(tasks="").replace('  - " great"\n', ""))
    problems = [str(p) for p in validate_file(path)]
    assert len(problems) == 1 and problems[0].startswith(f"{path}:9: continuations are scored by causal")
    path.write_text(CONTINUATION_FILE.format(tasks="tasks: [causal-lm]").replace('  - " great"\n', ""))
    assert load_probe_set(path).continuations == ("great",)


def test_a_run_without_a_generations_table_opens_in_the_dashboard(tmp_path: Path) -> None:
    from dashboard.data import read_table

    frame = read_table(tmp_path, "generations")  # a run made before the table existed
    assert frame.empty and list(frame.columns) == ["example_id", "sample", "text", "n_new_tokens", "stopped"]


def test_loaded_through_the_loader_as_a_causal_lm(planted_lm: Path) -> None:
    loaded = load_model(str(planted_lm))
    assert loaded.task == "causal-lm" and loaded.tokenizer.pad_token == "</s>"
    assert isinstance(build_target(loaded, CPU), CausalLMTarget)


def test_attributions_that_did_not_converge_are_warned_about() -> None:
    from audit.stages.explain import unconverged_attributions

    rows = [
        # converged: tokens add up to 2.0, delta 0.01
        ("s/a/x", "integrated_gradients", 1.5, 0.01),
        ("s/a/x", "integrated_gradients", 0.51, 0.01),
        # not converged: tokens add up to 5.0 but f(x) - f(baseline) = 2.0 (delta 3.0)
        ("s/a/y", "integrated_gradients", 5.0, 3.0),
        ("s/a/y", "gradient_x_input", 9.0, None),
    ]
    attributions = pd.DataFrame(rows, columns=["example_id", "method", "attribution", "convergence_delta"])
    examples = pd.DataFrame({"example_id": ["s/a/x", "s/a/y"], "probe_set": ["s", "s"]})
    notes = unconverged_attributions(attributions, examples)
    assert len(notes) == 1 and notes[0].startswith("integrated gradients did not converge for 1 of 2")
    assert unconverged_attributions(attributions[attributions["example_id"] == "s/a/x"], examples) == []


def test_every_dashboard_page_opens_on_a_causal_lm_run(
    run_cli,
    planted_lm: Path,
    fair_classifier: Path,
    lm_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamlit.testing.v1 import AppTest

    from dashboard.data import RUNS_DIR_ENV

    occupations = causal_models.write_occupation_probes(lm_dir / "occupations.yaml")
    mood = causal_models.write_mood_probes(lm_dir / "mood.yaml")
    run = run_json(
        run_cli, "--model", planted_lm, "--probes", occupations, "--probes", mood, "--out", tmp_path,
        "--name", "clm", *FAST, "--generate", 2, "--generation-scorer", fair_classifier, "--max-new-tokens", 3,
    )  # fmt: skip
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path))
    at = AppTest.from_file(
        str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py"), default_timeout=90
    )
    at.query_params["run"] = run["run_id"]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    for page in ("findings", "instances", "attention", "runs"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
    at.switch_page("app_pages/findings.py").run()
    shown = " ".join(str(df.value.to_string()) for df in at.dataframe)
    assert "stereotype_preference" in shown and "gen:prob:positive" in shown


def test_causal_lms_run_the_counterfactual_sets_and_occupations_by_default() -> None:
    from audit.stages.prepare import default_probe_sets

    expected = {"gender", "race", "religion", "nationality", "age", "disability", "occupations"}
    assert set(default_probe_sets("causal-lm")) == expected
    assert "occupations" not in default_probe_sets("text-classification")
    occupations = load_builtin("occupations")
    assert len(occupations.instances) == 100 and set(occupations.tasks) == {"causal-lm", "masked-lm"}
    nurse = next(i for i in occupations.instances if i.instance_id == "late-f-nurse")
    texts = {v.variant: v.text for v in nurse.variants}
    assert texts == {
        "stereotype": "The nurse said that she would be late today.",
        "anti-stereotype": "The nurse said that he would be late today.",
    }
    assert [(s.start, s.end) for s in nurse.variants[0].focus] == [(20, 23)]  # the pronoun only


# --- the start token: the first word is scored ---------------------------------------------------


def without_bos(model_dir: Path, dest: Path) -> Path:
    """A copy of a tiny Llama whose tokenizer adds no BOS token (as GPT-2's, Qwen's and SmolLM2's)."""
    import shutil

    shutil.copytree(model_dir, dest)
    document = json.loads((dest / "tokenizer.json").read_text())
    document["post_processor"] = None
    (dest / "tokenizer.json").write_text(json.dumps(document))
    return dest


def reference_logliks(model_dir: Path, texts: list[str], start: str | None) -> list[float]:
    """sum over every text token of log p(token | start token, tokens before it), one text at a
    time, the start token put in front by hand; start None: from the second text token on."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    values = []
    for text in texts:
        body = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([([tokenizer.convert_tokens_to_ids(start)] if start else []) + body])
        with torch.no_grad():
            logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        values.append(float(logp.gather(1, ids[0, 1:, None]).sum()))
    return values


def whole_text_scores(model_dir: Path, texts: list[str], start_token: str) -> tuple[np.ndarray, list]:
    """The causal-LM target's whole-text log-likelihoods of ``texts`` under a start token, and
    how the texts were encoded."""
    loaded = load_model(str(model_dir), start_token=start_token)
    target = build_target(loaded, CPU)
    variants = [
        Variant(instance_id=f"i{k // 2}", variant="ab"[k % 2], attribute="gender", text=text)
        for k, text in enumerate(texts)
    ]  # texts in pairs, one instance each: the set's variants are the texts, in order
    instances = [
        Instance(instance_id=f"i{k}", attribute="gender", variants=tuple(variants[2 * k : 2 * k + 2]))
        for k in range(len(texts) // 2)
    ]
    probe_set = ProbeSet(name="first-word", tasks=("causal-lm",), instances=tuple(instances))
    head = target.head(probe_set)
    encoded = encode_texts(target.tokenizer, texts, 64)
    ids, mask = collate(encoded, target.tokenizer.pad_token_id, CPU)
    with torch.no_grad():
        scores = head.forward(ids, mask, torch.arange(len(texts))).numpy()[:, 0]
    return scores, encoded


FIRST_WORD = ["she was great .", "he was great .", "she", "he"]


def test_the_first_word_is_scored_after_the_start_token(planted_lm: Path, tmp_path: Path) -> None:
    """Every text starts with the start token, so its first word is scored: a swap in the first
    word changes even a one-word text's score. With --start-token none the first token has no
    context and is not scored: a one-word text scores 0 whatever the word."""
    bare = without_bos(planted_lm, tmp_path / "bare")
    scores, encoded = whole_text_scores(bare, FIRST_WORD, "bos")
    assert all(e.input_ids[0] == 1 and e.special[0] and e.offsets[0] == (0, 0) for e in encoded)
    assert scores == pytest.approx(reference_logliks(bare, FIRST_WORD, "<s>"), abs=1e-5)
    assert abs(scores[2] - scores[3]) > 0.1  # she vs he, one word each: the first word is scored
    # the tokenizer that adds <s> itself gets no second one, and the same scores
    again, encoded = whole_text_scores(planted_lm, FIRST_WORD, "bos")
    assert all(e.input_ids.count(1) == 1 for e in encoded)
    np.testing.assert_allclose(again, scores, atol=1e-6)

    unscored, encoded = whole_text_scores(planted_lm, FIRST_WORD, "none")  # its own <s> removed too
    assert all(not any(e.special) for e in encoded)
    assert unscored == pytest.approx(reference_logliks(bare, FIRST_WORD, None), abs=1e-5)
    assert unscored[2] == unscored[3] == 0.0  # nothing before the only word: nothing scored

    other, encoded = whole_text_scores(bare, FIRST_WORD, "eos")
    assert all(e.input_ids[0] == 2 and e.special[0] for e in encoded)
    assert other == pytest.approx(reference_logliks(bare, FIRST_WORD, "</s>"), abs=1e-5)
    literal, _ = whole_text_scores(bare, FIRST_WORD, "the")  # a literal token of the vocabulary
    assert literal == pytest.approx(reference_logliks(bare, FIRST_WORD, "the"), abs=1e-5)


def test_the_start_token_is_a_flag_recorded_in_the_manifest(
    run_cli, planted_lm: Path, lm_dir: Path, tmp_path: Path
) -> None:
    bare = without_bos(planted_lm, tmp_path / "bare")
    probes = tmp_path / "first.yaml"
    probes.write_text(
        "name: first-word\nattribute: gender\ntasks: [causal-lm]\n"
        "groups:\n  female: {pronoun: she}\n  male: {pronoun: he}\n"
        "templates:\n  - '{pronoun} was great .'\n  - '{pronoun}'\n"
    )
    args = ("--model", bare, "--probes", probes, "--no-attributions", "--no-attention")
    scores = {}
    for choice in ("bos", "none"):
        run = run_json(run_cli, *args, "--out", tmp_path / choice, "--start-token", choice)
        run_dir = Path(run["run_dir"])
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["config"]["start_token"] == choice
        predictions = pd.read_parquet(run_dir / "predictions.parquet")
        examples = pd.read_parquet(run_dir / "examples.parquet")
        texts = examples.set_index("example_id").loc[predictions["example_id"], "text"].tolist()
        expected = reference_logliks(bare, texts, "<s>" if choice == "bos" else None)
        assert predictions["score"].tolist() == pytest.approx(expected, abs=1e-5)
        scores[choice] = dict(zip(texts, predictions["score"], strict=True))
        recorded = manifest["model"]["start_token"]
        if choice == "bos":
            assert recorded == {
                "choice": "bos", "token": "<s>", "token_id": 1, "added_by_probelens": True,
                "tokenizer_tokens_removed": [], "first_token_scored": True,
            }  # fmt: skip
            assert examples["n_tokens"].tolist() == (examples["n_text_tokens"] + 1).tolist()
        else:
            assert recorded["token"] is None and recorded["first_token_scored"] is False
    assert scores["bos"]["she"] != scores["bos"]["he"]
    assert scores["none"]["she"] == scores["none"]["he"] == 0.0
    result = run_cli("run", *args, "--out", tmp_path / "bad", "--start-token", "great again")
    assert result.exit_code == 2 and "--start-token 'great again' is not one token" in result.stderr
    assert not (tmp_path / "bad").exists()


# --- probe files that list no tasks -----------------------------------------------------------


def test_a_pairs_or_variants_file_without_tasks_runs_on_a_causal_lm(
    run_cli, planted_lm: Path, tmp_path: Path
) -> None:
    """A plain pairs CSV or variants JSONL lists no tasks: it runs on every model that can score
    it, a causal LM too; a YAML file whose 'tasks:' leaves causal-lm out is still refused."""
    from audit.stages.prepare import task_mismatch

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "text_a,text_b,group_a,group_b,attribute\n"
        + "".join(f"the {job} said that she is tired .,the {job} said that he is tired .,female,male,gender\n"
                  for job in causal_models.FEMALE_JOBS)
    )  # fmt: skip
    variants = tmp_path / "variants.jsonl"
    variants.write_text(
        "".join(
            json.dumps({"instance_id": job, "variant": group, "attribute": "gender", "text": text})
            + "\n"
            for job in causal_models.MALE_JOBS
            for group, text in (("female", f"the {job} said that she is tired ."), ("male", f"the {job} said that he is tired ."))
        )
    )  # fmt: skip
    args = ("--model", planted_lm, "--no-attributions", "--no-attention")
    for probes in (pairs, variants):
        run = run_json(run_cli, *args, "--probes", probes, "--out", tmp_path / probes.suffix[1:])
        findings = pd.read_parquet(Path(run["run_dir"]) / "findings.parquet")
        delta = findings[findings["metric"] == "mean_delta"].iloc[0]
        assert (delta["output"], delta["n"]) == ("loglik", 8)
        # the planted model: "she" after the female jobs, "he" after the male ones
        assert delta["effect"] > 1.0 if probes == pairs else delta["effect"] < -1.0
        assert load_probe_set(probes).tasks == ("text-classification", "embedding", "masked-lm", "causal-lm")

    restricted = tmp_path / "restricted.yaml"
    restricted.write_text(PROBE_FOR_CLASSIFIERS)
    result = run_cli("run", *args, "--probes", restricted, "--out", tmp_path / "refused")
    assert result.exit_code == 2
    assert (
        "'clf-only' is meant for text-classification, not causal-lm; pick another probe set" in result.stderr
    )
    assert not (tmp_path / "refused").exists()
    # a model no rows file is meant for: the message says why and what to do
    problem = task_mismatch(load_probe_set(pairs), "seq2seq")
    assert (
        problem is not None and "tasks that can score a counterfactual set that lists no 'tasks:'" in problem
    )
    assert "'tasks:' lists seq2seq" in problem


PROBE_FOR_CLASSIFIERS = """\
name: clf-only
attribute: gender
tasks: [text-classification]
groups:
  female: {pronoun: she}
  male: {pronoun: he}
templates:
  - "{pronoun} is tired ."
"""


def test_a_slow_tokenizer_says_how_to_choose_a_start_token() -> None:
    """ByT5's tokenizer is a real slow (Python) tokenizer with an EOS and no BOS: adding the start token
    would need its fast backend; the error says what to do instead of an AttributeError."""
    from transformers import ByT5Tokenizer

    from audit.errors import UserError
    from audit.start_token import apply_start_token

    with pytest.raises(UserError, match=r"slow \(Python\) tokenizer.*fast tokenizer.*--start-token none"):
        apply_start_token(ByT5Tokenizer(), "bos", "byt5")
    kept = apply_start_token(ByT5Tokenizer(), "none", "byt5")  # nothing to change: no error
    assert kept.token is None and not kept.added
