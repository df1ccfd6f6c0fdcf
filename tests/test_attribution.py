"""Attributions where the answer is known (a linear model), and on a tiny BERT with a local tokenizer."""

from __future__ import annotations

import os
import re

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from audit.attribution import (
    TokenizedText,
    attribute_examples,
    attribution_rows,
    get_method,
    list_methods,
    register_method,
)
from audit.attribution.methods import GradientXInput
from audit.errors import UserError
from audit.tables import TABLES

WORDS = [
    "the",
    "nurse",
    "said",
    "he",
    "she",
    "was",
    "tired",
    ".",
    "is",
    "a",
    "doctor",
    "and",
    "they",
    "were",
    "kind",
    ",",
    "his",
    "her",
    "engineer",
    "very",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_word_tokenizer(folder: Path):
    """A BERT-style word-level tokenizer built with `tokenizers`, saved and loaded back from the folder."""
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def tokenize(tokenizer, texts: list[str]) -> list[TokenizedText]:
    encoded = tokenizer(texts, return_offsets_mapping=True, return_special_tokens_mask=True)
    return [
        TokenizedText(
            input_ids=list(encoded["input_ids"][i]),
            offsets=[(int(s), int(e)) for s, e in encoded["offset_mapping"][i]],
            special=[bool(m) for m in encoded["special_tokens_mask"][i]],
        )
        for i in range(len(texts))
    ]


class BagOfEmbeddings(nn.Module):
    """f(x) = W (sum of the real tokens' embeddings) + b: integrated gradients is exact for it."""

    def __init__(self, vocab_size: int = 20, dim: int = 6, n_outputs: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.linear = nn.Linear(dim, n_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.linear((self.embedding(input_ids) * attention_mask[..., None]).sum(dim=1))


PAD, CLS, SEP = 0, 1, 2


def linear_examples() -> tuple[list[TokenizedText], list[int]]:
    rows = [[CLS, 5, 7, 9, SEP], [CLS, 4, SEP], [CLS, 3, 11, 12, 13, 19, SEP], [CLS, 6, 6, 8, SEP]]
    examples = [
        TokenizedText(
            input_ids=row,
            offsets=[(0, 0)] * len(row),
            special=[t in (CLS, SEP) for t in row],
        )
        for row in rows
    ]
    return examples, [0, 2, 1, 2]


@pytest.fixture
def linear_model() -> BagOfEmbeddings:
    torch.manual_seed(0)
    return BagOfEmbeddings().eval()


def test_integrated_gradients_is_exact_on_a_linear_model(linear_model: BagOfEmbeddings) -> None:
    examples, outputs = linear_examples()
    sizes: list[int] = []
    results = attribute_examples(
        linear_model,
        linear_model.embedding,
        examples,
        outputs,
        "integrated_gradients",
        baseline_token_id=PAD,
        n_steps=16,
        internal_batch_size=8,
        batch_tokens=14,  # forces several length-sorted batches
        on_done=sizes.append,
    )
    assert len(sizes) > 1 and sum(sizes) == len(examples)
    embedding = linear_model.embedding.weight.detach().numpy().astype(np.float64)
    weight = linear_model.linear.weight.detach().numpy().astype(np.float64)
    for example, k, result in zip(examples, outputs, results, strict=True):
        ids = np.asarray(example.input_ids)
        assert np.array_equal(result.input_ids, ids)  # results come back in the examples' order
        special = np.asarray(example.special)
        baseline = np.where(special, ids, PAD)
        expected = (embedding[ids] - embedding[baseline]) @ weight[k]
        np.testing.assert_allclose(result.attributions, expected, atol=1e-4)
        assert np.all(result.attributions[special] == 0.0)
        # completeness: the attributions add up to f(x) - f(baseline)
        with torch.no_grad():
            f_x = linear_model(torch.tensor(ids)[None], torch.ones(1, len(ids), dtype=torch.long))[
                0, k
            ].item()
            f_b = linear_model(torch.tensor(baseline)[None], torch.ones(1, len(ids), dtype=torch.long))[
                0, k
            ].item()
        assert result.score == pytest.approx(f_x, abs=1e-5)
        assert result.baseline_score == pytest.approx(f_b, abs=1e-5)
        assert result.convergence_delta is not None and abs(result.convergence_delta) < 1e-4
        gap = result.attributions.sum() - (f_x - f_b)
        assert abs(gap) <= abs(result.convergence_delta) + 1e-5


def test_gradient_x_input_on_a_linear_model(linear_model: BagOfEmbeddings) -> None:
    examples, outputs = linear_examples()
    results = attribute_examples(
        linear_model, linear_model.embedding, examples, outputs, "gradient_x_input", baseline_token_id=PAD
    )
    embedding = linear_model.embedding.weight.detach().numpy().astype(np.float64)
    weight = linear_model.linear.weight.detach().numpy().astype(np.float64)
    for example, k, result in zip(examples, outputs, results, strict=True):
        expected = embedding[np.asarray(example.input_ids)] @ weight[k]
        np.testing.assert_allclose(result.attributions, expected, atol=1e-5)
        assert result.convergence_delta is None and result.baseline_score is None


def test_registry_names_the_valid_choices() -> None:
    assert {"integrated_gradients", "gradient_x_input"} <= set(list_methods())
    assert get_method("gradient_x_input") is GradientXInput
    with pytest.raises(UserError, match="gradient_x_input.*integrated_gradients"):
        get_method("saliency_typo")
    with pytest.raises(ValueError, match="already registered"):
        register_method("gradient_x_input")(type("Other", (GradientXInput,), {}))


def test_examples_must_match_their_outputs(linear_model: BagOfEmbeddings) -> None:
    examples, outputs = linear_examples()
    with pytest.raises(ValueError, match="4 examples but 3 output indices"):
        attribute_examples(
            linear_model,
            linear_model.embedding,
            examples,
            outputs[:3],
            "gradient_x_input",
            baseline_token_id=PAD,
        )
    broken = TokenizedText(input_ids=[CLS, 5, SEP], offsets=[(0, 0)], special=[True, False, True])
    with pytest.raises(ValueError, match="must match one to one"):
        attribute_examples(
            linear_model, linear_model.embedding, [broken], [0], "gradient_x_input", baseline_token_id=0
        )


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory):
    tokenizer = build_word_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label={0: "a", 1: "b"},
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.5,  # large weights: outputs that depend on the input, far from linear
    )
    model = BertForSequenceClassification(config).eval()
    return model, tokenizer


TEXTS = [
    "The nurse said he was tired.",
    "She is a doctor.",
    "They were very kind, his engineer and her nurse said.",
    "He is kind.",
]
FOCUS_WORDS = ["he", "She", "his", "He"]


def probability_forward(model: nn.Module):
    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(input_ids=input_ids, attention_mask=attention_mask).logits, dim=-1)

    return forward


def test_integrated_gradients_on_tiny_bert_is_batched_and_complete(tiny_bert) -> None:
    model, tokenizer = tiny_bert
    examples = tokenize(tokenizer, TEXTS)
    outputs = [0, 1, 1, 0]
    kwargs = dict(baseline_token_id=tokenizer.pad_token_id, n_steps=64, internal_batch_size=128)
    forward = probability_forward(model)
    embeddings = model.get_input_embeddings()
    batched = attribute_examples(forward, embeddings, examples, outputs, "integrated_gradients", **kwargs)
    one_by_one = attribute_examples(
        forward, embeddings, examples, outputs, "integrated_gradients", batch_tokens=1, **kwargs
    )
    coarse = attribute_examples(
        forward, embeddings, examples, outputs, "integrated_gradients", **{**kwargs, "n_steps": 4}
    )
    # the delta measures a real integration error: large with 4 steps, small with 64
    assert max(abs(r.convergence_delta or 0.0) for r in coarse) > 1e-2
    for together, alone in zip(batched, one_by_one, strict=True):
        # padding in a shared batch does not change an example's attributions
        np.testing.assert_allclose(together.attributions, alone.attributions, atol=1e-5)
        assert together.convergence_delta is not None and abs(together.convergence_delta) < 1e-3
        assert together.baseline_score is not None
        gap = together.attributions.sum() - (together.score - together.baseline_score)
        assert abs(gap - together.convergence_delta) < 1e-5
        assert abs(together.score - together.baseline_score) > 10 * abs(together.convergence_delta)


def test_attribution_rows_point_at_the_right_text(tiny_bert, tmp_path: Path) -> None:
    model, tokenizer = tiny_bert
    examples = tokenize(tokenizer, TEXTS)
    focus = []
    for text, word in zip(TEXTS, FOCUS_WORDS, strict=True):
        match = re.search(rf"\b{word}\b", text)
        assert match is not None
        focus.append([match.span()])
    frame = attribution_rows(
        forward=probability_forward(model),
        embedding_layer=model.get_input_embeddings(),
        examples=examples,
        example_ids=[f"set/{i}/v" for i in range(len(TEXTS))],
        texts=TEXTS,
        focus=focus,
        outputs=["prob:a", "prob:b", "prob:b", "prob:a"],
        output_names=["prob:a", "prob:b"],
        methods=["integrated_gradients", "gradient_x_input"],
        tokenizer=tokenizer,
        n_steps=8,
    )
    assert list(frame.columns) == TABLES["attributions"]
    n_tokens = sum(len(e.input_ids) for e in examples)
    assert len(frame) == 2 * n_tokens
    real = frame[frame["char_start"].notna()]
    special = frame[frame["char_start"].isna()]
    assert set(special["token"]) == {"[CLS]", "[SEP]"} and special["char_end"].isna().all()
    for example_id, token, start, end in zip(
        real["example_id"], real["token"], real["char_start"], real["char_end"], strict=True
    ):
        text = TEXTS[int(str(example_id).split("/")[1])]
        assert text[int(start) : int(end)].lower() == token
    focus_rows = frame[frame["is_focus"]]
    assert sorted(focus_rows["token"].unique()) == ["he", "his", "she"]
    assert len(focus_rows) == 2 * len(TEXTS)  # one focus token per example and method
    ig = frame[frame["method"] == "integrated_gradients"]
    gxi = frame[frame["method"] == "gradient_x_input"]
    assert ig["convergence_delta"].notna().all() and gxi["convergence_delta"].isna().all()
    assert (frame.groupby("example_id")["output"].nunique() == 1).all()
    assert isinstance(frame["attribution"].iloc[0], float) and np.isfinite(frame["attribution"]).all()
    # the table survives a parquet round trip with its nulls
    frame.to_parquet(tmp_path / "attributions.parquet")
    back = pd.read_parquet(tmp_path / "attributions.parquet")
    assert back["char_start"].isna().sum() == len(special) and back["convergence_delta"].isna().sum() == len(
        gxi
    )


def test_attribution_rows_reject_an_unknown_output(tiny_bert) -> None:
    model, tokenizer = tiny_bert
    with pytest.raises(ValueError, match="not among the score head's outputs"):
        attribution_rows(
            forward=probability_forward(model),
            embedding_layer=model.get_input_embeddings(),
            examples=tokenize(tokenizer, TEXTS[:1]),
            example_ids=["set/0/v"],
            texts=TEXTS[:1],
            focus=[[]],
            outputs=["prob:c"],
            output_names=["prob:a", "prob:b"],
            methods=["gradient_x_input"],
            tokenizer=tokenizer,
        )


# --- completeness as a guarantee (audit/attribution/integrated.py) ------------------------------


class Wiggly(nn.Module):
    """f = sin(k * s) + s with s = the sum of the real tokens' embeddings' first coordinates, k
    chosen per row by its variant index: k = 0 is linear (32 steps are exact), a large k needs many
    more steps (the integrand dF/dalpha oscillates k times along the path)."""

    def __init__(self, frequencies: list[float]) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.embedding = nn.Embedding(20, 4)
        self.frequencies = torch.tensor(frequencies)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, variant_index: torch.Tensor
    ) -> torch.Tensor:
        s = (self.embedding(input_ids)[..., 0] * attention_mask).sum(dim=1)
        return (torch.sin(self.frequencies[variant_index] * s) + s)[:, None]


def wiggly_examples() -> list[TokenizedText]:
    rows = [[CLS, 5, 7, 9, SEP], [CLS, 5, 7, 9, SEP], [CLS, 4, 3, SEP]]
    return [TokenizedText(row, [(0, 0)] * len(row), [t in (CLS, SEP) for t in row]) for row in rows]


@pytest.mark.parametrize("rule", ["trapezoid", "gausslegendre"])
def test_steps_grow_only_where_completeness_needs_them(rule: str) -> None:
    model = Wiggly([0.0, 120.0, 200.0]).eval()
    results = attribute_examples(
        model, model.embedding, wiggly_examples(), [0, 0, 0], "integrated_gradients",
        baseline_token_id=PAD, n_steps=32, max_steps=4096, tolerance=0.01, rule=rule,
        variant_indices=[0, 1, 2],
    )  # fmt: skip
    linear, wiggly, wigglier = results
    assert linear.n_steps == 32 and linear.converged and linear.completeness_error is not None
    assert linear.completeness_error < 1e-5
    for result in (wiggly, wigglier):
        assert result.converged and result.n_steps is not None and result.n_steps > 32
        assert result.completeness_error is not None and result.completeness_error <= 0.01
        assert result.convergence_delta is not None and result.baseline_score is not None
        difference = result.score - result.baseline_score
        assert abs(result.attributions.sum() - difference) <= 0.01 * abs(difference)
        assert result.convergence_delta == pytest.approx(result.attributions.sum() - difference, abs=1e-9)


def test_an_example_that_misses_the_tolerance_at_the_cap_is_flagged() -> None:
    model = Wiggly([0.0, 300.0, 0.0]).eval()
    results = attribute_examples(
        model, model.embedding, wiggly_examples(), [0, 0, 0], "integrated_gradients",
        baseline_token_id=PAD, n_steps=8, max_steps=16, tolerance=1e-3, variant_indices=[0, 1, 2],
    )  # fmt: skip
    assert [r.converged for r in results] == [True, False, True]
    assert results[1].n_steps == 16 and (results[1].completeness_error or 0) > 1e-3
    frame = attribution_frame_of(results)
    flags = frame.groupby("example_id")["converged"].first()
    assert flags.tolist() == [True, False, True] and str(frame["converged"].dtype) == "boolean"
    assert str(frame["n_steps"].dtype) == "Int64" and str(frame["completeness_error"].dtype) == "Float64"
    from audit.stages.explain import unconverged_attributions

    examples = pd.DataFrame({"example_id": ["s/i/0", "s/i/1", "s/i/2"], "probe_set": ["s"] * 3})
    notes = unconverged_attributions(frame, examples, 1e-3)
    assert len(notes) == 1 and notes[0].startswith("integrated gradients did not converge for 1 of 3")
    assert "at up to 16 steps" in notes[0]
    above = 1.01 * float(results[1].completeness_error or 0)
    assert unconverged_attributions(frame, examples, above) == []  # the tolerance given decides


def attribution_frame_of(results: list) -> pd.DataFrame:
    from audit.attribution import attribution_frame

    class Words:
        def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
            return [str(i) for i in ids]

    examples = wiggly_examples()
    return attribution_frame(
        results, examples, example_ids=[f"s/i/{k}" for k in range(3)], outputs=["f"] * 3,
        focus=[[]] * 3, tokenizer=Words(),
    )  # fmt: skip


def test_gradient_methods_have_no_completeness_columns(linear_model: BagOfEmbeddings) -> None:
    examples, outputs = linear_examples()
    results = attribute_examples(
        linear_model, linear_model.embedding, examples, outputs, "gradient_x_input", baseline_token_id=PAD
    )
    assert all(r.n_steps is None and r.completeness_error is None and r.converged is None for r in results)


def test_a_given_baseline_is_integrated_from(linear_model: BagOfEmbeddings) -> None:
    """The public API for pair explanations: from variant b's ids to variant a's, the attributions
    sum to f(a) - f(b), and on a linear model each token gets exactly W (e_a - e_b)."""
    from audit.attribution.integrated import IntegrationSettings, integrated_gradients

    a = torch.tensor([[CLS, 5, 7, 9, SEP], [CLS, 4, 6, 6, SEP]])
    b = torch.tensor([[CLS, 5, 8, 9, SEP], [CLS, 3, 6, 6, SEP]])
    mask = torch.ones_like(a)
    column = torch.tensor([1, 2])
    result = integrated_gradients(
        linear_model, linear_model.embedding, a, b, mask, column, None, IntegrationSettings(n_steps=4)
    )
    with torch.no_grad():
        expected_delta = (linear_model(a, mask) - linear_model(b, mask)).gather(1, column[:, None])[:, 0]
    np.testing.assert_allclose(result.attributions.sum(axis=1), expected_delta.numpy(), rtol=1e-5)
    assert result.converged.all() and (result.n_steps == 4).all()
    embedding = linear_model.embedding.weight.detach().double().numpy()
    weight = linear_model.linear.weight.detach().double().numpy()
    for row in range(2):
        per_token = (embedding[a[row].numpy()] - embedding[b[row].numpy()]) @ weight[int(column[row])]
        np.testing.assert_allclose(result.attributions[row], per_token, atol=1e-5)
    with pytest.raises(ValueError, match="must have the input ids' shape"):
        integrated_gradients(linear_model, linear_model.embedding, a, b[:, :3], mask, column)


def test_completeness_of_a_zero_difference_is_measured_against_the_floor() -> None:
    from audit.attribution.integrated import COMPLETENESS_FLOOR, completeness_error

    errors = completeness_error(np.array([1e-6, 1e-6, 0.5]), np.array([0.0, 1e-9, 10.0]))
    np.testing.assert_allclose(errors, [1e-6 / COMPLETENESS_FLOOR, 1e-6 / COMPLETENESS_FLOOR, 0.05])


def test_focus_attribution_pairs_say_whether_both_integrals_converged() -> None:
    """converged: both variants' IG met the tolerance (False when either missed), null for
    gradient_x_input; and an example attributed on two outputs is checked on each of them."""
    from audit.stages.explain import focus_attribution_pairs, unconverged_attributions

    rows = []
    for instance, flags in (("i", (True, True)), ("j", (True, False))):
        for variant, flag in zip(("he", "she"), flags, strict=True):
            for method, converged in (("integrated_gradients", flag), ("gradient_x_input", None)):
                for is_focus in (True, False):
                    rows.append((f"s/{instance}/{variant}", method, "prob:pos", 0.5, is_focus, converged))
    tokens = pd.DataFrame(
        rows, columns=["example_id", "method", "output", "attribution", "is_focus", "converged"]
    )
    examples = pd.DataFrame(
        {
            "example_id": [f"s/{i}/{v}" for i in "ij" for v in ("he", "she")],
            "instance_id": [i for i in "ij" for _ in range(2)],
            "variant": ["he", "she"] * 2,
            "focus": "[[0, 2]]",
            "probe_set": "s",
        }
    )
    effects = pd.DataFrame({"probe_set": "s", "instance_id": ["i", "j"], "group_a": "he", "group_b": "she"})
    pairs = focus_attribution_pairs(tokens, examples, effects, "s")
    assert list(pairs.columns) == TABLES["attribution_pairs"]
    flags = pairs.set_index(["instance_id", "method"])["converged"]
    assert flags[("i", "integrated_gradients")] == True  # noqa: E712
    assert flags[("j", "integrated_gradients")] == False  # noqa: E712
    assert flags.loc[(slice(None), "gradient_x_input")].isna().all()

    # one example attributed on two outputs: the missed integral on the second is not hidden by the first
    two = pd.DataFrame(
        {
            "example_id": ["s/i/he"] * 4,
            "method": "integrated_gradients",
            "output": ["prob:pos", "prob:pos", "prob:neg", "prob:neg"],
            "attribution": [0.5, 0.5, 0.5, 0.5],
            "convergence_delta": [0.0, 0.0, 0.5, 0.5],
            "completeness_error": [0.0, 0.0, 0.5, 0.5],
            "n_steps": [32, 32, 256, 256],
        }
    )
    notes = unconverged_attributions(two, examples, 0.05)
    assert len(notes) == 1 and notes[0].startswith("integrated gradients did not converge for 1 of 2")
    assert "at up to 256 steps" in notes[0]
