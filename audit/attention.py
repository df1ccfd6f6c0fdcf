"""Streaming attention statistics: each layer's attention map is reduced as it is made, then dropped.

Per example, layer and head (all means are over the example's real query tokens):

- ``entropy``: entropy (nats) of the query's attention row over the keys;
- ``focus_mass``: attention mass on focus tokens (NaN when the example has no focus token);
- ``special_mass``: attention mass on special tokens ([CLS], [SEP], <s>, ...);
- ``mean_distance``: expected distance sum_j a_ij |i - j| in tokens.

How: an attention function registered with ``transformers.AttentionInterface`` (and the SDPA
mask builder under the same name, else padding would go unmasked) is switched on for one forward
pass with ``model.set_attn_implementation``. Each layer calls it with its queries, keys and mask;
it computes the probabilities in query chunks, adds the statistics to the active recording, and
returns transformers' own SDPA output, so the model's outputs do not change. Only
self-attention over the input is recorded (cross-attention calls are passed through). Models
with grouped-query attention (key/value heads repeated) are handled; attention sinks are not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from audit.attribution.batches import (
    EncodedExample,
    check_example,
    focus_token_mask,
)
from audit.batching import pad_right, run_with_backoff, token_budget_batches
from audit.errors import UserError
from audit.tables import TABLES

STATISTICS: tuple[str, ...] = ("entropy", "focus_mass", "special_mass", "mean_distance")
"""The last axis of every statistics array, in this order."""

IMPLEMENTATION_NAME = "probelens_attention_statistics"

_MAX_CHUNK_ELEMENTS = 1 << 25
"""At most this many attention probabilities (batch x heads x queries x keys) exist at once."""


class AttentionRecording:
    """Statistics gathered during one forward pass over a padded batch."""

    def __init__(
        self,
        attention_mask: torch.Tensor,
        focus_mask: torch.Tensor,
        special_mask: torch.Tensor,
        query_chunk: int = 256,
    ) -> None:
        if attention_mask.ndim != 2:
            raise ValueError(
                f"attention_mask must be (batch, tokens), got shape {tuple(attention_mask.shape)}"
            )
        if focus_mask.shape != attention_mask.shape or special_mask.shape != attention_mask.shape:
            raise ValueError(
                f"focus_mask {tuple(focus_mask.shape)} and special_mask {tuple(special_mask.shape)} must have "
                f"the attention mask's shape {tuple(attention_mask.shape)}"
            )
        if query_chunk < 1:
            raise ValueError(f"query_chunk must be at least 1, got {query_chunk}")
        real = attention_mask.bool()
        self.real = real
        self.focus = (focus_mask.bool() & real).float()
        self.special = (special_mask.bool() & real).float()
        self.query_chunk = query_chunk
        self.n_tokens = attention_mask.shape[1]
        self._sums: dict[int, torch.Tensor] = {}
        self._self_attention_calls = 0

    def observe(
        self,
        module: nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None,
        is_causal: bool | None,
        extra: dict[str, Any],
    ) -> None:
        """Add one layer's statistics (called from the attention function)."""
        if query.shape[2] != self.n_tokens or key.shape[2] != self.n_tokens:
            return  # cross-attention or a cached pass: not self-attention over this input
        if extra.get("s_aux") is not None or extra.get("sinks") is not None:
            raise UserError("attention statistics do not support models with attention sinks yet")
        layer = getattr(module, "layer_idx", None)
        if not isinstance(layer, int):
            layer = self._self_attention_calls
        self._self_attention_calls += 1
        if layer in self._sums:
            raise ValueError(
                f"attention layer {layer} reported twice; record exactly one forward pass per recording"
            )
        causal = is_causal if is_causal is not None else bool(getattr(module, "is_causal", False))
        with torch.no_grad():
            self._sums[layer] = self._layer_sums(
                query, key, attention_mask, scaling, causal, extra.get("position_bias"), extra.get("softcap")
            )

    def _layer_sums(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        mask: torch.Tensor | None,
        scaling: float | None,
        causal: bool,
        position_bias: torch.Tensor | None,
        softcap: float | None,
    ) -> torch.Tensor:
        batch, heads, n_queries, head_dim = query.shape
        if key.shape[1] != heads:
            if heads % key.shape[1]:
                raise ValueError(f"{heads} query heads cannot share {key.shape[1]} key heads")
            key = repeat_kv(key, heads // key.shape[1])
        keys = key.float().transpose(-1, -2)
        scale = scaling if scaling is not None else head_dim**-0.5
        n_keys = keys.shape[-1]
        device = query.device
        key_positions = torch.arange(n_keys, device=device)
        focus = self.focus.to(device)[:, None, None, :]
        special = self.special.to(device)[:, None, None, :]
        real = self.real.to(device)
        sums = torch.zeros(batch, heads, len(STATISTICS), dtype=torch.float64, device=device)
        chunk = max(1, min(self.query_chunk, _MAX_CHUNK_ELEMENTS // max(1, batch * heads * n_keys)))
        for start in range(0, n_queries, chunk):
            stop = min(start + chunk, n_queries)
            scores = torch.matmul(query[:, :, start:stop].float(), keys) * scale
            if softcap is not None:
                scores = softcap * torch.tanh(scores / softcap)
            if position_bias is not None:
                scores = scores + position_bias[..., start:stop, :].float()
            if mask is not None:
                part = mask[..., start:stop, :]
                if part.dtype == torch.bool:
                    scores = scores.masked_fill(~part, float("-inf"))
                else:
                    scores = scores + part.float()
            elif causal:
                query_positions = torch.arange(start, stop, device=device)
                scores = scores.masked_fill(key_positions[None, :] > query_positions[:, None], float("-inf"))
            # Rows with no visible key (padding queries under a causal mask) give NaN; they are not counted.
            probs = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
            distance = (
                (torch.arange(start, stop, device=device)[:, None] - key_positions[None, :]).abs().float()
            )
            rows = torch.stack(
                [
                    torch.special.entr(probs).sum(-1),
                    (probs * focus).sum(-1),
                    (probs * special).sum(-1),
                    (probs * distance).sum(-1),
                ],
                dim=-1,
            )  # (batch, heads, queries, statistics)
            counted = real[:, None, start:stop, None]
            sums += torch.where(counted, rows, torch.zeros_like(rows)).sum(dim=2).double()
        return sums

    def statistics(self) -> np.ndarray:
        """(batch, layers, heads, statistics) as float64, statistics in the order of STATISTICS."""
        if not self._sums:
            raise ValueError(
                "no attention layer reported to the recording; the model does not route its attention "
                "through transformers' AttentionInterface"
            )
        layers = sorted(self._sums)
        if layers != list(range(len(layers))):
            raise ValueError(f"attention layers {layers} are not numbered 0..{len(layers) - 1}")
        heads = {self._sums[layer].shape[1] for layer in layers}
        if len(heads) != 1:
            raise ValueError(f"layers have different numbers of heads {sorted(heads)}")
        sums = torch.stack(
            [self._sums[layer].cpu() for layer in layers], dim=1
        )  # (batch, layers, heads, stats)
        n_real = self.real.sum(dim=1).cpu().double().clamp(min=1)[:, None, None, None]
        result = (sums / n_real).numpy()
        no_focus = (self.focus.sum(dim=1) == 0).cpu().numpy()
        result[no_focus, :, :, STATISTICS.index("focus_mass")] = np.nan
        return result


_ACTIVE: ContextVar[AttentionRecording | None] = ContextVar("probelens_attention_recording", default=None)


def _attention_with_statistics(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    recording = _ACTIVE.get()
    if recording is not None:
        recording.observe(module, query, key, attention_mask, scaling, is_causal, kwargs)
    return sdpa_attention_forward(
        module,
        query,
        key,
        value,
        attention_mask,
        dropout=dropout,
        scaling=scaling,
        is_causal=is_causal,
        **kwargs,
    )


def _register_implementation() -> None:
    AttentionInterface.register(IMPLEMENTATION_NAME, _attention_with_statistics)
    AttentionMaskInterface.register(IMPLEMENTATION_NAME, sdpa_mask)


@contextmanager
def recording_attention_statistics(
    model: nn.Module,
    attention_mask: torch.Tensor,
    focus_mask: torch.Tensor,
    special_mask: torch.Tensor,
    *,
    query_chunk: int = 256,
) -> Iterator[AttentionRecording]:
    """Inside the block, ONE forward pass of ``model`` on this batch is recorded; outputs are unchanged.

    The model's previous attention implementation is restored on exit. Masks are (batch, tokens).
    """
    config = getattr(model, "config", None)
    switch: Callable[[str], None] | None = getattr(model, "set_attn_implementation", None)
    if config is None or switch is None:
        raise UserError(
            f"attention statistics need a transformers model (PreTrainedModel); got {type(model).__name__}"
        )
    recording = AttentionRecording(attention_mask, focus_mask, special_mask, query_chunk=query_chunk)
    _register_implementation()
    previous = config._attn_implementation
    switch(IMPLEMENTATION_NAME)
    token = _ACTIVE.set(recording)
    try:
        if config._attn_implementation != IMPLEMENTATION_NAME:
            raise UserError(
                f"{type(model).__name__} cannot switch its attention implementation, so attention statistics "
                "cannot be streamed from it"
            )
        yield recording
    finally:
        _ACTIVE.reset(token)
        switch(previous)


def _forward_kwargs(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    return {"use_cache": False} if getattr(config, "use_cache", False) else {}


def attention_statistics(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    focus_mask: torch.Tensor,
    special_mask: torch.Tensor,
    *,
    query_chunk: int = 256,
) -> np.ndarray:
    """Statistics of one padded batch: (batch, layers, heads, 4), last axis as in STATISTICS."""
    with (
        torch.no_grad(),
        recording_attention_statistics(
            model, attention_mask, focus_mask, special_mask, query_chunk=query_chunk
        ) as recording,
    ):
        model(input_ids=input_ids, attention_mask=attention_mask, **_forward_kwargs(model))
    return recording.statistics()


def attention_statistics_for_examples(
    model: nn.Module,
    examples: Sequence[EncodedExample],
    focus: Sequence[Sequence[tuple[int, int]]],
    *,
    pad_id: int | None = None,
    device: torch.device | None = None,
    batch_tokens: int = 8192,
    max_batch_size: int = 64,
    query_chunk: int = 256,
    on_done: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Per example (in order), its (layers, heads, 4) statistics; examples run in length-sorted batches.

    ``focus[i]`` holds example i's focus character spans. Batches hold at most ``batch_tokens``
    padded tokens; a batch that runs out of memory is split in half.
    """
    if len(focus) != len(examples):
        raise ValueError(f"{len(examples)} examples but {len(focus)} focus span lists")
    for position, example in enumerate(examples):
        check_example(example, position)
    if device is None:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    pad = pad_id if pad_id is not None else 0

    def run(batch: list[int]) -> np.ndarray:
        chosen = [examples[i] for i in batch]
        ids = pad_right([e.input_ids for e in chosen], pad, device)
        mask = pad_right([[1] * len(e.input_ids) for e in chosen], 0, device)
        focus_mask = pad_right([focus_token_mask(examples[i], focus[i]) for i in batch], 0, device)
        special_mask = pad_right([[int(s) for s in e.special] for e in chosen], 0, device)
        return attention_statistics(model, ids, mask, focus_mask, special_mask, query_chunk=query_chunk)

    results: list[np.ndarray | None] = [None] * len(examples)
    lengths = [len(e.input_ids) for e in examples]
    for batch in token_budget_batches(lengths, batch_tokens, max_batch_size=max_batch_size):
        for done, statistics in run_with_backoff(batch, run):
            for row, index in enumerate(done):
                results[index] = statistics[row]
            if on_done is not None:
                on_done(len(done))
    return [r for r in results if r is not None]


def attention_frame(statistics: Sequence[np.ndarray], example_ids: Sequence[str]) -> pd.DataFrame:
    """Rows of the ``attention`` table from per-example (layers, heads, 4) arrays of one model."""
    if len(statistics) != len(example_ids):
        raise ValueError(f"{len(statistics)} statistics arrays but {len(example_ids)} example ids")
    shapes = {values.shape for values in statistics}
    if len(shapes) > 1:
        raise ValueError(f"statistics arrays have different shapes {sorted(shapes)}; expected one model's")
    if statistics and statistics[0].shape[-1] != len(STATISTICS):
        raise ValueError(f"expected {len(STATISTICS)} statistics per head, got {statistics[0].shape[-1]}")
    values = np.stack(statistics) if statistics else np.zeros((0, 0, 0, len(STATISTICS)))
    n_examples, layers, heads, n_stats = values.shape
    example, layer, head, stat = np.meshgrid(
        np.arange(n_examples), np.arange(layers), np.arange(heads), np.arange(n_stats), indexing="ij"
    )
    return pd.DataFrame(
        {
            "example_id": pd.Series(np.asarray(example_ids, dtype=object)[example.ravel()], dtype="string"),
            "layer": pd.Series(layer.ravel(), dtype="int64"),
            "head": pd.Series(head.ravel(), dtype="int64"),
            "stat": pd.Series(np.asarray(STATISTICS, dtype=object)[stat.ravel()], dtype="string"),
            "value": pd.Series(values.ravel(), dtype="float64"),
        }
    )[TABLES["attention"]]


def attention_rows(
    *,
    model: nn.Module,
    examples: Sequence[EncodedExample],
    example_ids: Sequence[str],
    focus: Sequence[Sequence[tuple[int, int]]],
    pad_id: int | None = None,
    device: torch.device | None = None,
    batch_tokens: int = 8192,
    query_chunk: int = 256,
    on_done: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """The ``attention`` table for these examples (one row per example x layer x head x statistic)."""
    statistics = attention_statistics_for_examples(
        model,
        examples,
        focus,
        pad_id=pad_id,
        device=device,
        batch_tokens=batch_tokens,
        query_chunk=query_chunk,
        on_done=on_done,
    )
    return attention_frame(statistics, example_ids)
