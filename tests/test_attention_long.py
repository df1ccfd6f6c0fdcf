"""Attention statistics on long inputs (1-2k tokens): equal to eager maps, bounded memory, planted values.

Tiny random models of the four attention shapes the long-document probes meet: BERT (bidirectional,
absolute positions), ModernBERT (rotary, global layers alternating with sliding-window layers),
Llama (rotary, grouped-query attention) and Qwen2 (grouped-query attention, causal sliding-window
layers). The eager reference keeps every full attention map, so it is the ground truth here.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    ModernBertConfig,
    ModernBertForSequenceClassification,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from audit.attention import (
    SINK_TOKENS,
    STATISTICS,
    MaskRows,
    bounded_mask,
    recording_attention_statistics,
)

VOCAB = 120
ENTROPY, FOCUS, SPECIAL, SINK, DISTANCE = (STATISTICS.index(name) for name in STATISTICS)


def bert() -> Any:
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=2048,
        initializer_range=0.2,
    )
    return BertForSequenceClassification(config)


def modernbert() -> Any:
    config = ModernBertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=2048,
        local_attention=64,  # sliding window: |i - j| <= 32
        layer_types=["full_attention", "sliding_attention", "full_attention"],
        initializer_range=0.2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
    )
    return ModernBertForSequenceClassification(config)


def llama() -> Any:
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=4096,
        initializer_range=0.2,
    )
    return LlamaForCausalLM(config)


def qwen2() -> Any:
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=4096,
        use_sliding_window=True,
        sliding_window=48,  # layers 1 and 2: causal window of 48 keys
        max_window_layers=1,
        initializer_range=0.2,
    )
    return Qwen2ForCausalLM(config)


def build(factory: Callable[[], Any]) -> Any:
    torch.manual_seed(5)
    return factory().eval()


def long_batch(lengths: list[int], *, encoder: bool, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Right-padded random ids; focus = a 40-token 'key sentence' at 60% of each input; special =
    [CLS] ... [SEP] for encoders, <s> for decoders."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask, focus, special = (torch.zeros_like(ids) for _ in range(3))
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(3, VOCAB, (n,), generator=generator)
        mask[row, :n] = 1
        key_start = int(0.6 * n)
        focus[row, key_start : key_start + 40] = 1
        ids[row, 0] = 1
        special[row, 0] = 1
        if encoder:
            ids[row, n - 1] = 2
            special[row, n - 1] = 1
    return ids, mask, focus, special


def eager_reference(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, focus: torch.Tensor, special: torch.Tensor
) -> tuple[np.ndarray, torch.Tensor]:
    """The statistics from full eager attention maps (right padding), in float64, and the eager logits."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, output_attentions=True, use_cache=False)
    finally:
        model.set_attn_implementation(previous)
    layers, heads = len(out.attentions), out.attentions[0].shape[1]
    result = np.zeros((ids.shape[0], layers, heads, len(STATISTICS)))
    for row, n in enumerate(mask.sum(dim=1).tolist()):
        positions = torch.arange(n, dtype=torch.float64)
        distance = (positions[:, None] - positions[None, :]).abs()
        sink = torch.zeros(n, dtype=torch.float64)
        sink[:SINK_TOKENS] = 1
        weights = torch.stack([focus[row, :n].double(), special[row, :n].double(), sink], dim=-1)
        for layer, maps in enumerate(out.attentions):
            probs = maps[row, :, :n, :n].double()  # (heads, queries, keys) of the real tokens
            result[row, layer, :, ENTROPY] = torch.special.entr(probs).sum(-1).mean(-1).numpy()
            result[row, layer, :, FOCUS : SINK + 1] = (probs @ weights).mean(1).numpy()
            result[row, layer, :, DISTANCE] = (probs * distance).sum(-1).mean(-1).numpy()
    return result, out.logits


def assert_streamed_equals_eager(
    model: Any, lengths: list[int], *, encoder: bool, query_chunk: int
) -> np.ndarray:
    ids, mask, focus, special = long_batch(lengths, encoder=encoder)
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        with recording_attention_statistics(
            model, mask, focus, special, query_chunk=query_chunk
        ) as recording:
            streamed = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    statistics = recording.statistics()
    reference, eager = eager_reference(model, ids, mask, focus, special)
    np.testing.assert_allclose(statistics, reference, rtol=1e-4, atol=1e-4)
    real = mask.bool()
    if streamed.ndim == 3:  # causal LM: one row of logits per position; padding positions are not outputs
        streamed, plain, eager = streamed[real], plain[real], eager[real]
    torch.testing.assert_close(streamed, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(streamed, eager, rtol=1e-4, atol=1e-4)
    # the maps are far from uniform, so agreement has teeth
    assert statistics[..., ENTROPY].std() > 1e-2 and np.ptp(statistics[..., SINK]) > 1e-3
    return statistics


@pytest.mark.parametrize(
    ("factory", "encoder"),
    [(bert, True), (modernbert, True), (llama, False), (qwen2, False)],
    ids=["bert", "modernbert", "llama-gqa", "qwen2-gqa-sliding"],
)
def test_long_padded_batch_matches_eager_maps(factory: Callable[[], Any], encoder: bool) -> None:
    model = build(factory)
    statistics = assert_streamed_equals_eager(model, [1280, 900], encoder=encoder, query_chunk=100)
    layer_types = getattr(model.config, "layer_types", None) or []
    if "sliding_attention" in layer_types:
        window = model.config.sliding_window
        local = [i for i, kind in enumerate(layer_types) if kind == "sliding_attention"]
        full = [i for i, kind in enumerate(layer_types) if kind == "full_attention"]
        # local layers never look past their window; global layers do, by far
        assert statistics[:, local, :, DISTANCE].max() <= window
        assert statistics[:, full, :, DISTANCE].min() > 4 * window


@pytest.mark.parametrize("factory", [modernbert, qwen2], ids=["modernbert", "qwen2-gqa-sliding"])
def test_one_unpadded_long_input_with_sliding_layers_matches_eager(factory: Callable[[], Any]) -> None:
    # No padding: global layers get no mask at all, sliding layers a MaskRows recipe.
    assert_streamed_equals_eager(build(factory), [1024], encoder=factory is modernbert, query_chunk=256)


def test_bounded_mask_builds_nothing_without_padding_or_window() -> None:
    n = 2048
    no_padding = torch.ones(2, n, dtype=torch.bool)
    padded = no_padding.clone()
    padded[1, 1500:] = False
    assert bounded_mask(2, n, n, attention_mask=no_padding, allow_is_causal_skip=True) is None
    assert bounded_mask(2, n, n, attention_mask=None, allow_is_bidirectional_skip=True) is None
    rows = bounded_mask(2, n, n, attention_mask=padded, allow_is_causal_skip=True)
    assert isinstance(rows, MaskRows) and rows.shape == (2, 1, n, n)
    block = rows.rows(1600, 1610)
    assert block.shape == (2, 1, 10, n)
    # causal and padded: query 1600 of the padded row sees keys 0..1499 only
    assert block[1, 0, 0].nonzero().max().item() == 1499 and block[0, 0, 0].nonzero().max().item() == 1600
    windowed = bounded_mask(1, n, n, attention_mask=None, local_size=64, allow_is_causal_skip=True)
    assert isinstance(windowed, MaskRows)


def largest_allocation(run: Callable[[], object]) -> int:
    """The largest single CPU allocation (bytes) made by one torch op while ``run`` runs."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        run()
    return max(event.cpu_memory_usage for event in profiler.events())


def test_no_length_squared_tensor_exists_during_the_recorded_pass() -> None:
    model = build(llama).model  # no language-model head: its logits are not attention's business
    ids, mask, focus, special = long_batch([768, 500], encoder=False)
    one_full_bool_mask = ids.shape[0] * ids.shape[1] ** 2  # (batch, 1, n, n) bool, in bytes

    def plain() -> None:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, use_cache=False)

    def recorded() -> None:
        with torch.no_grad(), recording_attention_statistics(model, mask, focus, special, query_chunk=16):
            model(input_ids=ids, attention_mask=mask, use_cache=False)

    # plain SDPA builds the (batch, 1, n, n) mask (and torch's CPU kernel a float copy of it) ...
    assert largest_allocation(plain) >= one_full_bool_mask
    # ... the recorded pass never holds anything that large: memory grows with chunk x length
    assert largest_allocation(recorded) < one_full_bool_mask / 2


def test_uniform_bidirectional_attention_gives_the_planted_masses() -> None:
    model = build(bert)
    for layer in model.bert.encoder.layer:  # all queries zero: every real key gets 1 / n_real
        torch.nn.init.zeros_(layer.attention.self.query.weight)
        torch.nn.init.zeros_(layer.attention.self.query.bias)
    lengths = [1500, 900]
    ids, mask, focus, special = long_batch(lengths, encoder=True)
    with torch.no_grad(), recording_attention_statistics(model, mask, focus, special) as recording:
        model(input_ids=ids, attention_mask=mask)
    statistics = recording.statistics()
    for row, n in enumerate(lengths):
        values = statistics[row]
        np.testing.assert_allclose(values[..., SINK], SINK_TOKENS / n, rtol=1e-5)
        np.testing.assert_allclose(values[..., FOCUS], 40 / n, rtol=1e-5)
        np.testing.assert_allclose(values[..., SPECIAL], 2 / n, rtol=1e-5)
        np.testing.assert_allclose(values[..., ENTROPY], math.log(n), rtol=1e-5)
        np.testing.assert_allclose(values[..., DISTANCE], (n * n - 1) / (3 * n), rtol=1e-5)


def test_uniform_causal_attention_with_left_padding_sinks_on_the_first_real_tokens() -> None:
    model = build(llama)
    for layer in model.model.layers:  # all queries zero: query i spreads evenly over keys first..i
        torch.nn.init.zeros_(layer.self_attn.q_proj.weight)
    n, pad = 1200, 150
    ids = torch.randint(3, VOCAB, (1, n), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, :pad] = 0
    focus = torch.zeros_like(ids)
    focus[0, 700:740] = 1
    special = torch.zeros_like(ids)
    special[0, pad] = 1
    with (
        torch.no_grad(),
        recording_attention_statistics(model, mask, focus, special, query_chunk=128) as recording,
    ):
        model(input_ids=ids, attention_mask=mask, use_cache=False)
    statistics = recording.statistics()[0]
    seen = np.arange(1, n - pad + 1, dtype=np.float64)  # keys visible to each real query
    focus_seen = np.clip(np.arange(pad, n) - 700 + 1, 0, 40)
    expected = {
        SINK: np.mean(np.minimum(SINK_TOKENS, seen) / seen),
        FOCUS: np.mean(focus_seen / seen),
        SPECIAL: np.mean(1 / seen),
        ENTROPY: np.mean(np.log(seen)),
        DISTANCE: np.mean((seen - 1) / 2),
    }
    for stat, value in expected.items():
        np.testing.assert_allclose(statistics[..., stat], value, rtol=1e-5, err_msg=STATISTICS[stat])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a shared small CPU, two spinning threads cost far more than they give."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
