"""Extractive question answering on BBQ-style sets, end to end, and the BBQ JSONL loader.

Three tiny QA models trained on the built-in ``bbq-mini`` (tests/support/ner_qa_models.py): the control
answers correctly; one is planted in ambiguous contexts (it answers with the stereotype where
"unknown" is right), one in disambiguated contexts (it answers with the stereotype even when the
context says otherwise). Each metric must find its own plant and nothing else; the control must not
be flagged; the span probabilities must be the model's own (start and end logits of the pair
encoding).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from audit.errors import ProbeFileError
from audit.metrics import stats
from audit.metrics.multiple_choice import (
    answer_table,
    bias_score,
    build_choice_findings,
    choice_table,
    permutation_gap_test,
)
from audit.metrics.options import TestOptions
from audit.stages.prepare import default_probe_sets
from audit.tables import TABLES
from probes import load_builtin, load_probe_set, validate_file
from tests.support.bbq_mini_source import TARGET, render
from tests.support.ner_qa_models import qa_items, train_tiny_qa

DATA = Path(__file__).parent / "data" / "bbq"
CATEGORIES = ("age", "gender_identity", "nationality")


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qa")


def _run(model: Path, out: Path, name: str, *extra: object) -> Path:
    from tests.support.cli import invoke_main

    code = invoke_main("run", "--model", model, "--out", out, "--name", name, "--no-attention", *extra)
    assert code == 0, f"audit run on {model} exited with {code}"
    return out / name


@pytest.fixture(scope="module")
def control_run(qa_dir: Path) -> tuple[Path, Path]:
    model = train_tiny_qa(qa_dir / "control", planted_in=None)
    return model, _run(model, qa_dir / "runs", "control", "--attribute-top", "2", "--ig-steps", "8")


@pytest.fixture(scope="module")
def ambiguous_run(qa_dir: Path) -> Path:
    return _run(
        train_tiny_qa(qa_dir / "ambig", planted_in="ambig"), qa_dir / "runs", "ambig", "--no-attributions"
    )


@pytest.fixture(scope="module")
def disambiguated_run(qa_dir: Path) -> Path:
    model = train_tiny_qa(qa_dir / "disambig", planted_in="disambig")
    return _run(model, qa_dir / "runs", "disambig", "--no-attributions")


def _rows(run: Path, metric: str) -> pd.DataFrame:
    findings = pd.read_parquet(run / "findings.parquet")
    return findings[findings["metric"] == metric].set_index("attribute")


# --------------------------------------------------------------------------- end to end


def test_bbq_mini_is_the_question_answering_default_and_is_what_its_generator_makes() -> None:
    assert TARGET.read_text(encoding="utf-8") == render()
    probe_set = load_builtin("bbq-mini")
    assert probe_set.kind == "multiple_choice" and probe_set.tasks == ("question-answering",)
    assert len(probe_set.instances) == 144 and probe_set.attributes == sorted(CATEGORIES)
    assert default_probe_sets("question-answering") == ["bbq-mini"]
    assert "bbq-mini" not in default_probe_sets("text-classification")
    conditions = pd.Series([(i.attribute, i.choice.context_condition) for i in probe_set.instances])  # type: ignore[union-attr]
    assert set(conditions.value_counts()) == {24}


def test_ambiguous_plant_moves_the_ambiguous_bias_score_only(ambiguous_run: Path) -> None:
    bias = _rows(ambiguous_run, "bias_score_ambig")
    preference = _rows(ambiguous_run, "preference_ambig")
    gap = _rows(ambiguous_run, "accuracy_gap_disambig")
    for category in CATEGORIES:
        assert bias.loc[category, "effect"] >= 0.8 and bias.loc[category, "significant"]
        assert bias.loc[category, "ci_low"] > 0 and bias.loc[category, "severity"] == "high"
        assert preference.loc[category, "effect"] >= 0.8 and preference.loc[category, "significant"]
        assert not gap.loc[category, "significant"] and abs(gap.loc[category, "effect"]) <= 0.2
    accuracy = _rows(ambiguous_run, "accuracy")
    assert (accuracy[accuracy["subset"] == "context=ambig"]["effect"] <= 0.2).all()


def test_disambiguated_plant_moves_the_accuracy_gap_only(disambiguated_run: Path) -> None:
    bias = _rows(disambiguated_run, "bias_score_ambig")
    gap = _rows(disambiguated_run, "accuracy_gap_disambig")
    for category in CATEGORIES:
        assert gap.loc[category, "effect"] >= 0.8 and gap.loc[category, "significant"]
        assert (
            gap.loc[category, "group_a"] == "pro_stereotype"
            and gap.loc[category, "group_b"] == "anti_stereotype"
        )
        assert not bias.loc[category, "significant"] and abs(bias.loc[category, "effect"]) <= 0.2
    s_dis = _rows(disambiguated_run, "bias_score_disambig")
    assert (s_dis["effect"] >= 0.8).all() and s_dis["p_value"].isna().all()  # descriptive


def test_control_is_not_flagged(control_run: tuple[Path, Path]) -> None:
    _, run = control_run
    findings = pd.read_parquet(run / "findings.parquet")
    assert list(findings.columns) == TABLES["findings"]
    assert not findings["significant"].any(), findings[findings["significant"]]
    tested = findings[findings["p_value"].notna()]
    assert set(tested["metric"]) == {"bias_score_ambig", "preference_ambig", "accuracy_gap_disambig"}
    assert (
        tested["q_value"].notna().all() and findings.loc[findings["p_value"].isna(), "q_value"].isna().all()
    )
    accuracy = findings[findings["metric"] == "accuracy"]
    assert len(accuracy) == 6 and (accuracy["effect"] >= 0.8).all()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"]["task"] == "question-answering" and manifest["summary"]["n_significant"] == 0


def test_span_probabilities_are_the_models_own(control_run: tuple[Path, Path]) -> None:
    model_dir, run = control_run
    examples = pd.read_parquet(run / "examples.parquet")
    predictions = pd.read_parquet(run / "predictions.parquet").pivot(
        index="example_id", columns="output", values="score"
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    instances = {i.instance_id: i for i in qa_items().instances}
    for _, example in examples.iloc[:: len(examples) // 20].iterrows():
        choice = instances[example["instance_id"]].choice
        assert choice is not None
        assert example["text"] == f"{choice.question} [SEP] {choice.passage}"
        ((start, end),) = json.loads(example["focus"])
        offset = len(choice.question) + len(" [SEP] ")
        pair = tokenizer(choice.question, choice.passage, return_offsets_mapping=True, return_tensors="pt")
        offsets = pair.pop("offset_mapping")[0].tolist()
        in_passage = [s == 1 for s in pair.sequence_ids()]
        span = [
            i for i, ((s, e), inside) in enumerate(zip(offsets, in_passage, strict=True))
            if inside and e > s and s < end - offset and start - offset < e
        ]  # fmt: skip
        assert example["n_tokens"] == pair["input_ids"].shape[1]
        with torch.no_grad():
            output = model(**pair)
        log_start = torch.log_softmax(output.start_logits[0].double(), dim=-1)[span[0]]
        log_end = torch.log_softmax(output.end_logits[0].double(), dim=-1)[span[-1]]
        scores = predictions.loc[example["example_id"]]
        assert scores["logprob:answer"] == pytest.approx(float(log_start + log_end), abs=1e-4)
        assert scores["prob:answer"] == pytest.approx(
            math.exp(float(log_start + log_end)), rel=1e-4, abs=1e-9
        )


def test_attributions_and_effects_of_the_multiple_choice_set(control_run: tuple[Path, Path]) -> None:
    _, run = control_run
    effects = pd.read_parquet(run / "effects.parquet")
    assert len(effects) == 144 and set(effects["group_a"]) == {"stereotyped"}
    assert set(effects["group_b"]) == {"non_stereotyped"} and set(effects["output"]) == {"prob:answer"}
    assert np.allclose(effects["delta"], effects["score_a"] - effects["score_b"])
    attributions = pd.read_parquet(run / "attributions.parquet")
    assert set(attributions["output"]) == {"prob:answer"} and attributions["example_id"].nunique() == 6
    assert attributions.groupby("example_id")["is_focus"].any().all()  # each answer span is its focus


# --------------------------------------------------------------------------- metrics


def _answers(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """(condition, polarity, correct role, answered role) -> an answers table, via the real code."""
    roles = {"stereotyped": "s", "non_stereotyped": "n", "unknown": "u"}
    choices = pd.DataFrame(
        [
            {
                "probe_set": "p",
                "instance_id": f"i{k}",
                "attribute": "age",
                "context_condition": condition,
                "question_polarity": polarity,
                "correct": roles[correct],
                "stereotyped": "s",
                "non_stereotyped": "n",
                "unknown": "u",
            }
            for k, (condition, polarity, correct, _) in enumerate(rows)
        ],
        columns=list(choice_table([]).columns),
    )
    examples = pd.DataFrame(
        [
            {"example_id": f"i{k}/{v}", "probe_set": "p", "instance_id": f"i{k}", "variant": v}
            for k in range(len(rows))
            for v in "snu"
        ],
        columns=["example_id", "probe_set", "instance_id", "variant"],
    )
    predictions = pd.DataFrame(
        [
            {
                "example_id": f"i{k}/{v}",
                "output": "logprob:answer",
                "score": 0.0 if v == roles[answered] else -3.0,
                "label": None,
            }
            for k, (_, _, _, answered) in enumerate(rows)
            for v in "snu"
        ],
        columns=["example_id", "output", "score", "label"],
    )
    return answer_table(choices, examples, predictions)


def test_bbq_bias_scores_follow_the_paper() -> None:
    # ambiguous: 6 stereotyped answers to negative questions (pro), 2 to non-negative ones (anti),
    # 2 other-group answers to non-negative questions (pro), 10 unknown (correct)
    rows = [("ambig", "neg", "unknown", "stereotyped")] * 6
    rows += [("ambig", "nonneg", "unknown", "stereotyped")] * 2
    rows += [("ambig", "nonneg", "unknown", "non_stereotyped")] * 2
    rows += [("ambig", "neg", "unknown", "unknown")] * 10
    answers = _answers(rows)
    assert answers["answer_pro"].sum() == 8 and answers["answer_anti"].sum() == 2
    findings = build_choice_findings(answers, TestOptions(n_resamples=500, n_permutations=2000)).set_index(
        "metric"
    )
    s_dis = 2 * 8 / 10 - 1
    assert findings.loc["bias_score_ambig", "effect"] == pytest.approx((1 - 10 / 20) * s_dis)
    assert findings.loc["bias_score_ambig", "p_value"] == pytest.approx(
        scipy_stats.binomtest(8, 10, 0.5).pvalue
    )
    assert findings.loc["accuracy", "effect"] == pytest.approx(0.5)
    probabilities = np.exp([0.0, -3.0, -3.0]) / np.exp([0.0, -3.0, -3.0]).sum()
    expected_preference = (
        8 * (probabilities[0] - probabilities[1]) + 2 * (probabilities[1] - probabilities[0])
    ) / 20
    assert findings.loc["preference_ambig", "effect"] == pytest.approx(expected_preference)
    assert float(bias_score(np.array(0), np.array(0), np.array(1.0))) == 0.0  # only "unknown": no bias


def test_accuracy_gap_compares_pro_and_anti_stereotype_items() -> None:
    # disambiguated: 10 items whose correct answer is pro-stereotype (all right), 10 anti (2 right)
    rows = [("disambig", "neg", "stereotyped", "stereotyped")] * 5
    rows += [("disambig", "nonneg", "non_stereotyped", "non_stereotyped")] * 5
    rows += [("disambig", "neg", "non_stereotyped", "non_stereotyped")] * 2
    rows += [("disambig", "neg", "non_stereotyped", "stereotyped")] * 8
    findings = build_choice_findings(
        _answers(rows), TestOptions(n_resamples=500, n_permutations=4000)
    ).set_index("metric")
    gap = findings.loc["accuracy_gap_disambig"]
    assert gap["effect"] == pytest.approx(1.0 - 0.2)
    assert gap["p_value"] < 0.01 and gap["significant"] and gap["ci_low"] > 0.4
    assert gap["q_value"] >= gap["p_value"]
    assert findings.loc["bias_score_disambig", "effect"] == pytest.approx(2 * 18 / 20 - 1)
    balanced = build_choice_findings(
        _answers(rows[:10] + [("disambig", "neg", "non_stereotyped", "non_stereotyped")] * 10), TestOptions()
    )
    assert balanced.set_index("metric").loc["accuracy_gap_disambig", "effect"] == 0.0
    assert not balanced["significant"].any()


def _gap_rows(pro: list[bool], anti: list[bool]) -> list[tuple[str, str, str, str]]:
    """Disambiguated negative questions: right (True) or wrong answers on pro- and anti-stereotype items."""
    rows = [("disambig", "neg", "stereotyped", "stereotyped" if ok else "non_stereotyped") for ok in pro]
    return rows + [
        ("disambig", "neg", "non_stereotyped", "non_stereotyped" if ok else "stereotyped") for ok in anti
    ]


def _adjusted_pvalue(correct: np.ndarray, groups: np.ndarray, shift: float, m: int, seed: int) -> float:
    """From scratch: the permutation test of "gap = shift" on the outcomes with the shift taken off the
    first group, over the reassignments permutation_gap_test draws from the same seed."""
    adjusted = correct - shift * groups
    n_a, n_b = groups.sum(), (~groups).sum()
    observed = abs(adjusted[groups].mean() - adjusted[~groups].mean())
    shuffled = np.random.default_rng(seed).permuted(
        np.broadcast_to(groups.astype(float), (m, groups.size)), axis=1
    )
    in_a = shuffled @ adjusted
    gaps = np.abs(in_a / n_a - (adjusted.sum() - in_a) / n_b)
    return float(((gaps >= observed - 1e-9).sum() + 1) / (m + 1))


def test_accuracy_gap_interval_inverts_its_permutation_test() -> None:
    # 2 of 2 pro-stereotype items wrong, 2 of 2 anti right: the percentile bootstrap said [-1, -1]
    # while p = 0.34 (with 2 + 2 items no reassignment is rare enough to reject anything)
    findings = build_choice_findings(_answers(_gap_rows([False] * 2, [True] * 2)), TestOptions())
    gap = findings.set_index("metric").loc["accuracy_gap_disambig"]
    assert gap["effect"] == -1.0 and gap["p_value"] > 0.3
    assert (gap["ci_low"], gap["ci_high"]) == (-1.0, 1.0)
    assert gap["ci_method"] == stats.PERMUTATION_INVERSION
    # the ends are where the from-scratch test of the shifted gap starts to reject
    groups = np.array([True] * 14 + [False] * 11)
    correct = np.array([1.0] * 13 + [0.0] * 1 + [1.0] * 4 + [0.0] * 7)
    test = permutation_gap_test(
        correct, groups, n_permutations=3000, rng=np.random.default_rng(7), confidence=0.95
    )
    assert test.p_value == pytest.approx(_adjusted_pvalue(correct, groups, 0.0, 3000, 7))
    assert test.p_value <= 0.05 and 0 < test.ci_low < 13 / 14 - 4 / 11 < test.ci_high
    for end, outside in ((test.ci_low, -1e-6), (test.ci_high, 1e-6)):
        assert _adjusted_pvalue(correct, groups, end - outside, 3000, 7) > 0.05
        assert _adjusted_pvalue(correct, groups, end + outside, 3000, 7) <= 0.05


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pro=st.lists(st.booleans(), min_size=1, max_size=30),
    anti=st.lists(st.booleans(), min_size=1, max_size=30),
    level=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
    seed=st.integers(0, 3),
)
def test_no_accuracy_gap_row_contradicts_its_test(
    pro: list[bool], anti: list[bool], level: float, seed: int
) -> None:
    options = TestOptions(confidence=level, n_permutations=1000, n_resamples=200, seed=seed)
    gap = (
        build_choice_findings(_answers(_gap_rows(pro, anti)), options)
        .set_index("metric")
        .loc["accuracy_gap_disambig"]
    )
    assert gap["ci_method"] == stats.PERMUTATION_INVERSION
    assert -1.0 <= gap["ci_low"] <= gap["effect"] <= gap["ci_high"] <= 1.0
    excludes = gap["ci_low"] > 0 or gap["ci_high"] < 0
    assert excludes == (gap["p_value"] <= stats.interval_alpha(level))


def test_empty_and_one_sided_sets() -> None:
    assert build_choice_findings(_answers([]), TestOptions()).empty
    one_sided = build_choice_findings(
        _answers([("disambig", "neg", "stereotyped", "stereotyped")] * 4), TestOptions()
    )
    gap = one_sided.set_index("metric").loc["accuracy_gap_disambig"]
    assert math.isnan(gap["effect"]) and "needs correct answers of both kinds" in gap["note"]
    assert list(choice_table([load_builtin("gender")]).columns)[:2] == ["probe_set", "instance_id"]


# --------------------------------------------------------------------------- BBQ loader


@pytest.mark.parametrize(
    ("file", "stereotyped_text"),
    [
        ("Age.jsonl", "The grandfather"),
        ("Gender_identity.jsonl", "Sharon"),
        ("Race_ethnicity.jsonl", "Latoya Washington"),
        ("SES.jsonl", "The cashier"),
        ("Nationality.jsonl", "The Irish tourist"),
        ("Disability_status.jsonl", "The wheelchair user"),
    ],
)
def test_bbq_files_load_with_the_stereotyped_answer_found(file: str, stereotyped_text: str) -> None:
    path = DATA / file
    probe_set = load_probe_set(path)
    assert probe_set.kind == "multiple_choice" and probe_set.name == path.stem
    assert probe_set.tasks == ("question-answering",) and "Parrish" in probe_set.card
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    first = probe_set.instances[0]
    assert first.instance_id == f"{raw[0]['category']}-{raw[0]['example_id']}"
    assert first.attribute == raw[0]["category"].lower()
    assert len(probe_set.instances) == len(raw)
    variants = {v.variant: v for v in first.variants}
    stereotyped = variants["stereotyped"]
    assert stereotyped.text[stereotyped.focus[0].start : stereotyped.focus[0].end] == stereotyped_text
    for instance, row in zip(probe_set.instances, raw, strict=True):
        choice = instance.choice
        assert choice is not None and choice.source_id == str(row["example_id"])
        texts = {v.variant: v.text[v.focus[0].start : v.focus[0].end] for v in instance.variants}
        assert texts[choice.correct] == row[f"ans{row['label']}"]
        unknown_key = next(k for k, (_, tag) in row["answer_info"].items() if tag == "unknown")
        assert texts[choice.unknown] == row[unknown_key]
        assert choice.context_condition == row["context_condition"]
        assert (
            instance.variants[0].text
            == f"{row['question']}\n{row['context']} Answers: {row['ans0']}; {row['ans1']}; {row['ans2']}."
        )


def test_gender_tags_man_and_woman_read_as_m_and_f() -> None:
    instance = load_probe_set(DATA / "Gender_identity.jsonl").instances[2]  # stereotyped_groups ["M"]
    variant = next(v for v in instance.variants if v.variant == "stereotyped")
    assert variant.text[variant.focus[0].start : variant.focus[0].end] == "The man"


def test_every_problem_of_a_bbq_file_is_reported_with_its_line() -> None:
    path = DATA / "bad.jsonl"
    with pytest.raises(ProbeFileError) as raised:
        load_probe_set(path)
    problems = raised.value.problems
    assert [p.line for p in problems] == [1, 2, 3, 4, 5, 6, 8]
    assert all(p.file == str(path) for p in problems)
    messages = [p.message for p in problems]
    assert "missing field(s) label" in messages[0]
    assert "context_condition must be ambig or disambig" in messages[1]
    assert "exactly one answer must be the unknown one" in messages[2]
    assert "match neither" in messages[3]
    assert "in an ambiguous context" in messages[4]
    assert "not valid JSON" in messages[5]
    assert "repeat line 7" in messages[6]
    assert validate_file(path) == problems
    intersectional = validate_file(DATA / "Race_x_gender.jsonl")
    assert len(intersectional) == 1 and "intersectional" in intersectional[0].message


def test_validate_command_prints_file_and_line(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("probes", "validate", DATA / "bad.jsonl")
    assert result.exit_code == 2
    assert (
        f"{DATA / 'bad.jsonl'}:4: cannot tell which answer names the stereotyped group"
        in result.stderr + result.stdout
    )


def test_a_yaml_file_names_a_bbq_file(tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_text((DATA / "Age.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "age.yaml").write_text(
        "name: my-age\nkind: multiple_choice\ntasks: [question-answering]\ncard: |\n  # my-age\n  mine\n"
        "bbq_file: items.jsonl\n",
        encoding="utf-8",
    )
    probe_set = load_probe_set(tmp_path / "age.yaml")
    assert (
        probe_set.name == "my-age" and probe_set.card.startswith("# my-age") and len(probe_set.instances) == 6
    )
    (tmp_path / "broken.yaml").write_text(
        "kind: multiple_choice\nbbq_file: missing.jsonl\nextra: 1\n", encoding="utf-8"
    )
    problems = validate_file(tmp_path / "broken.yaml")
    assert [p.line for p in problems] == [2, 3]
    (tmp_path / "bad-items.yaml").write_text("kind: multiple_choice\nbbq_file: bad.jsonl\n", encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text((DATA / "bad.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    problems = validate_file(tmp_path / "bad-items.yaml")
    assert len(problems) == 7 and all(p.file == str(tmp_path / "bad.jsonl") for p in problems)


def test_other_jsonl_layouts_are_not_read_as_bbq(tmp_path: Path) -> None:
    rows = tmp_path / "variants.jsonl"
    rows.write_text(
        '{"instance_id": "i1", "variant": "a", "attribute": "age", "text": "An old man."}\n'
        '{"instance_id": "i1", "variant": "b", "attribute": "age", "text": "A young man."}\n',
        encoding="utf-8",
    )
    assert load_probe_set(rows).kind == "counterfactual"
    with pytest.raises(ProbeFileError, match="do not apply to BBQ-layout files"):
        load_probe_set(DATA / "Age.jsonl", defaults={"attribute": "age"})


def test_qa_model_refuses_a_counterfactual_set(
    control_run: tuple[Path, Path], run_cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    model, _ = control_run
    result = run_cli("run", "--model", model, "--probes", "gender", "--out", tmp_path)
    assert result.exit_code == 2 and "not question-answering" in result.stderr


def test_a_roberta_style_model_reads_its_own_pair_format(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """Byte-level BPE reads a space as a token: the separator goes in unspaced (q</s></s>c), which
    encodes exactly as the pair does, and RoBERTa gets no segment ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForQuestionAnswering

    texts = [i.variants[0].text for i in load_builtin("bbq-mini").instances]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    backend.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=specials))
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>", model_max_length=128,
    )  # fmt: skip
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=200, pad_token_id=1, type_vocab_size=1,
    )  # fmt: skip
    model_dir = tmp_path / "roberta-qa"
    RobertaForQuestionAnswering(config).eval().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    result = run_cli(
        "run", "--model", model_dir, "--out", tmp_path / "runs", "--name", "r",
        "--max-instances", "9", "--no-attributions", "--no-attention",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    examples = pd.read_parquet(tmp_path / "runs" / "r" / "examples.parquet")
    scores = pd.read_parquet(tmp_path / "runs" / "r" / "predictions.parquet")
    scores = scores.pivot(index="example_id", columns="output", values="score")
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    loaded = AutoTokenizer.from_pretrained(model_dir)
    for _, example in examples.iterrows():
        question, passage = example["text"].split("</s></s>")
        assert "?" in question and not question.endswith(" ") and not passage.startswith(" ")
        pair = loaded(question, passage, return_offsets_mapping=True, return_tensors="pt")
        offsets = pair.pop("offset_mapping")[0].tolist()
        ((start, end),) = json.loads(example["focus"])
        start, end = start - len(question) - len("</s></s>"), end - len(question) - len("</s></s>")
        span = [
            i for i, ((s, e), part) in enumerate(zip(offsets, pair.sequence_ids(), strict=True))
            if part == 1 and e > s and s < end and start < e
        ]  # fmt: skip
        with torch.no_grad():
            output = model(**pair)
        expected = (
            torch.log_softmax(output.start_logits[0].double(), -1)[span[0]]
            + torch.log_softmax(output.end_logits[0].double(), -1)[span[-1]]
        )
        assert scores.loc[example["example_id"], "logprob:answer"] == pytest.approx(float(expected), abs=1e-4)


def test_the_documented_bbq_row_loads(tmp_path: Path) -> None:
    docs = (Path(__file__).parent.parent / "docs" / "probes.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```jsonl bbq-example\n(.*?)```", docs, flags=re.S)
    (tmp_path / "Age.jsonl").write_text(example, encoding="utf-8")
    (instance,) = load_probe_set(tmp_path / "Age.jsonl").instances
    assert instance.instance_id == "Age-0" and instance.choice is not None
    assert instance.choice.correct == "unknown" and instance.non_stereotyped == "non_stereotyped"
    stereotyped = next(v for v in instance.variants if v.variant == "stereotyped")
    assert stereotyped.text[stereotyped.focus[0].start : stereotyped.focus[0].end] == "The grandfather"
