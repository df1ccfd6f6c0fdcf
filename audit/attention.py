"""Streaming attention statistics: each layer's attention is computed in query chunks, reduced, dropped.

Per example, layer and head (all means are over the example's real query tokens):

- ``entropy``: entropy (nats) of the query's attention row over the keys;
- ``focus_mass``: attention mass on focus tokens (NaN when the example has no focus token); for a
  long-document example the focus is the key (or swapped) sentence, so this is its key-sentence mass;
- ``special_mass``: attention mass on special tokens ([CLS], [SEP], <s>, ...);
- ``sink_mass``: attention mass on the first :data:`SINK_TOKENS` real tokens (special ones included),
  where "attention sinks" gather mass on long inputs;
- ``mean_distance``: expected distance sum_j a_ij |i - j| in tokens.

How: an attention function registered with ``transformers.AttentionInterface`` (and a mask builder
under the same name with ``AttentionMaskInterface``) is switched on for one forward pass with
``model.set_attn_implementation``. Each layer calls it with its queries, keys, values and mask. For
a block of queries at a time it computes the probabilities, adds their statistics to the active
recording and multiplies them with the values, which gives the layer's output for that block; so
the statistics describe exactly the attention the model used, and the output equals the SDPA output
(float32: within 1e-5 relative). Memory: at most ``_MAX_CHUNK_ELEMENTS`` probabilities (batch x
heads x queries x keys) exist at once, so a layer's extra memory grows with chunk x length, never
with length^2 or with the number of layers. Masks are bounded too: the mask builder hands the layers
no mask at all where none is needed (one unpadded sequence, no sliding window: causality comes from
``is_causal``), and otherwise a :class:`MaskRows` recipe whose rows are built per query block,
instead of the (batch, 1, n, n) mask SDPA would need (1 GiB as bool at 32k tokens, 4 GiB once
torch's CPU kernel turns it into a float mask). Local (sliding-window) layers, padding and
grouped-query attention (key/value heads shared by several query heads, without repeating them)
are handled. Only self-attention over the input is recorded: cross-attention and cached passes go
to transformers' SDPA unchanged. Models with learned attention sinks are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, causal_mask_function, sdpa_mask

from audit.attribution.batches import (
    EncodedExample,
    check_example,
    focus_token_mask,
)
from audit.batching import pad_right, run_with_backoff, token_budget_batches
from audit.errors import UserError
from audit.tables import TABLES

STATISTICS: tuple[str, ...] = ("entropy", "focus_mass", "special_mass", "sink_mass", "mean_distance")
"""The last axis of every statistics array, in this order."""

SINK_TOKENS = 4
"""``sink_mass`` is the attention mass on this many first real tokens of the input. Four, as in
StreamingLLM (Xiao et al., 2023), whose models keep most of their "sink" attention on the first four
tokens; it covers a [CLS]/<s> token plus the first few words, whichever the model uses as its sink."""

IMPLEMENTATION_NAME = "probelens_attention_statistics"

_MAX_CHUNK_ELEMENTS = 1 << 24
"""At most this many attention probabilities (batch x heads x queries x keys) exist at once: 64 MiB
as float32; a layer's extra memory is a small multiple of it (scores/probabilities and one
temporary) whatever the input length."""

_MASS_COLUMNS = ("focus_mass", "special_mass", "sink_mass")
"""Statistics that are a probability-weighted sum of a per-key 0/1 weight: one matmul per chunk."""


@dataclass(frozen=True)
class MaskRows:
    """A (batch, 1, queries, keys) boolean attention mask kept as its recipe; rows are built on demand.

    The layers receive this instead of the full mask, and the attention function asks for the rows
    of one query block at a time (:meth:`rows`), so no (n x n) mask ever exists. True = attend.
    """

    batch_size: int
    q_length: int
    kv_length: int
    q_offset: int
    kv_offset: int
    mask_function: Callable[..., Any]
    padding_mask: torch.Tensor | None
    use_vmap: bool
    device: torch.device

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch_size, 1, self.q_length, self.kv_length)

    @property
    def ndim(self) -> int:
        return 4

    @property
    def dtype(self) -> torch.dtype:
        return torch.bool

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """The mask for queries ``start:stop``: (batch, 1, stop - start, keys) bool."""
        mask = sdpa_mask(
            batch_size=self.batch_size,
            q_length=stop - start,
            kv_length=self.kv_length,
            q_offset=self.q_offset + start,
            kv_offset=self.kv_offset,
            mask_function=self.mask_function,
            attention_mask=self.padding_mask,
            allow_is_causal_skip=False,
            allow_is_bidirectional_skip=False,
            use_vmap=self.use_vmap,
            device=self.device,
        )
        assert mask is not None  # no skip allowed above
        return mask

    def materialize(self) -> torch.Tensor:
        """The whole mask, for calls that are passed through to SDPA (cross-attention, cached passes)."""
        return self.rows(0, self.q_length)

    def __getitem__(self, index: Any) -> torch.Tensor:
        # A model that slices its mask before the attention call still gets the right (but full) mask.
        return self.materialize()[index]


def bounded_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    mask_function: Callable[..., Any] = causal_mask_function,
    attention_mask: torch.Tensor | None = None,
    local_size: int | None = None,
    allow_is_causal_skip: bool = True,
    allow_is_bidirectional_skip: bool = False,
    use_vmap: bool = False,
    device: torch.device | str = "cpu",
    **_: Any,
) -> MaskRows | None:
    """The mask builder registered for our implementation (``sdpa_mask``'s signature).

    None where transformers' SDPA path would also skip the mask (the plain causal or bidirectional
    pattern, nothing padded, no window shorter than the input); otherwise a :class:`MaskRows`.
    """
    padded = attention_mask is not None and not bool(
        attention_mask[:, kv_offset : kv_offset + kv_length].all()
    )
    plain = (
        (allow_is_causal_skip or allow_is_bidirectional_skip)
        and not padded
        and (local_size is None or kv_length < local_size)
        and q_length == kv_length
        and q_offset == 0
        and kv_offset == 0
    )
    if plain:
        return None
    return MaskRows(
        batch_size=batch_size,
        q_length=q_length,
        kv_length=kv_length,
        q_offset=q_offset,
        kv_offset=kv_offset,
        mask_function=mask_function,
        padding_mask=attention_mask,
        use_vmap=use_vmap,
        device=torch.device(device),
    )


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
        sink = real & (real.long().cumsum(dim=1) <= SINK_TOKENS)
        # (batch, keys, 3): the 0/1 key weights of the mass statistics, in the order of _MASS_COLUMNS
        self.key_weights = torch.stack(
            [focus_mask.bool() & real, special_mask.bool() & real, sink], dim=-1
        ).float()
        self.query_chunk = query_chunk
        self.n_tokens = attention_mask.shape[1]
        self._sums: dict[int, torch.Tensor] = {}
        self._self_attention_calls = 0

    def attend(
        self,
        module: nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | MaskRows | None,
        dropout: float,
        scaling: float | None,
        is_causal: bool | None,
        extra: dict[str, Any],
    ) -> torch.Tensor | None:
        """One layer's output, (batch, queries, heads, value dim), with its statistics recorded.

        None when the call is not self-attention over this input (cross-attention, a cached pass):
        the caller then runs it unchanged.
        """
        if query.shape[2] != self.n_tokens or key.shape[2] != self.n_tokens:
            return None
        if extra.get("s_aux") is not None or extra.get("sinks") is not None:
            raise UserError("attention statistics do not support models with attention sinks yet")
        if dropout > 0:
            raise ValueError("attention statistics need the model in eval mode (attention dropout is on)")
        layer = getattr(module, "layer_idx", None)
        if not isinstance(layer, int):
            layer = self._self_attention_calls
        self._self_attention_calls += 1
        if layer in self._sums:
            raise ValueError(
                f"attention layer {layer} reported twice; record exactly one forward pass per recording"
            )
        # As transformers' SDPA path decides it, so a missing mask means the same thing here.
        causal = is_causal if is_causal is not None else bool(getattr(module, "is_causal", True))
        with torch.no_grad():
            output, sums = chunked_attention(
                query,
                key,
                value,
                mask=attention_mask,
                causal=causal,
                scaling=scaling,
                position_bias=extra.get("position_bias"),
                softcap=extra.get("softcap"),
                key_weights=self.key_weights,
                real=self.real,
                query_chunk=self.query_chunk,
            )
        self._sums[layer] = sums
        return output

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
        no_focus = (self.key_weights[..., 0].sum(dim=1) == 0).cpu().numpy()
        result[no_focus, :, :, STATISTICS.index("focus_mass")] = np.nan
        return result


def _per_head(part: torch.Tensor, kv_heads: int, group: int) -> torch.Tensor:
    """A (batch, 1 or heads, queries, keys) mask or bias viewed to broadcast over (b, kv, group, q, k)."""
    if part.shape[1] == 1:
        return part[:, :, None]
    return part.reshape(part.shape[0], kv_heads, group, *part.shape[2:])


def _visible_keys(allowed: torch.Tensor) -> tuple[int, int]:
    """The smallest key range [lo, hi) holding every key some query of the block may see."""
    keys = allowed.reshape(-1, allowed.shape[-1]).any(dim=0).nonzero()
    if keys.numel() == 0:
        return 0, allowed.shape[-1]
    return int(keys[0]), int(keys[-1]) + 1


def chunked_attention(  # noqa: C901 (a measured kernel: one loop over query blocks, see KERNELS in tests/test_architecture.py)
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    mask: torch.Tensor | MaskRows | None,
    causal: bool,
    scaling: float | None,
    key_weights: torch.Tensor,
    real: torch.Tensor,
    position_bias: torch.Tensor | None = None,
    softcap: float | None = None,
    query_chunk: int = 256,
    max_chunk_elements: int = _MAX_CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention output and per-head statistic sums, computed one block of queries at a time.

    ``query`` is (batch, heads, n, d); ``key``/``value`` are (batch, kv_heads, n, d) with heads a
    multiple of kv_heads (each key/value head serves ``heads // kv_heads`` consecutive query heads,
    as ``repeat_kv`` lays them out). ``mask``: None (then ``causal`` decides), a boolean or additive
    float tensor broadcastable to (batch, heads, n, n), or :class:`MaskRows`. ``key_weights`` is
    (batch, n, 3): the focus / special / sink 0/1 weights; ``real`` (batch, n) marks the queries
    that count. Returns the output as transformers' attention functions do, (batch, n, heads,
    value dim) in the value dtype, and (batch, heads, len(STATISTICS)) float64 sums over real queries.

    Each block only looks at the keys some of its queries may see (up to the block's end under a
    causal mask, the window under a sliding-window mask), so masked-out keys cost nothing.
    """
    batch, heads, n_queries, head_dim = query.shape
    kv_heads, n_keys = key.shape[1], key.shape[2]
    if heads % kv_heads:
        raise ValueError(f"{heads} query heads cannot share {kv_heads} key/value heads")
    group = heads // kv_heads
    device = query.device
    scale = scaling if scaling is not None else head_dim**-0.5
    # Computed in float32 whatever the model's dtype (as SDPA kernels accumulate); no copy for float32.
    keys = key.float()
    keys_t = keys.transpose(-1, -2)  # (batch, kv, d, keys)
    value_dim = value.shape[-1]
    # Scores that are only q.k (masking aside) let the entropy come from a matmul instead of a log
    # per probability: H_i = lse_i - sum_j p_ij s_ij, and sum_j p_ij s_ij = q_i . (sum_j p_ij k_j).
    # So keys ride along with the values in the one output matmul.
    plain_scores = (
        position_bias is None
        and softcap is None
        and (mask is None or isinstance(mask, MaskRows) or mask.dtype == torch.bool)
    )
    values = torch.cat([value.float(), keys], dim=-1) if plain_scores else value.float()
    weights = key_weights.to(device=device, dtype=torch.float32)
    counted_queries = real.to(device)
    key_positions = torch.arange(n_keys, device=device)
    output = torch.empty(batch, n_queries, heads, value.shape[-1], dtype=value.dtype, device=device)
    sums = torch.zeros(batch, heads, len(STATISTICS), dtype=torch.float64, device=device)
    chunk = max(1, min(query_chunk, max_chunk_elements // max(1, batch * heads * n_keys)))
    for start in range(0, n_queries, chunk):
        stop = min(start + chunk, n_queries)
        size = stop - start
        allowed: torch.Tensor | None = None  # (batch or 1, 1 or heads, size, keys) bool
        additive: torch.Tensor | None = None
        if isinstance(mask, MaskRows):
            allowed = mask.rows(start, stop).to(device)
        elif mask is not None:
            part = mask[..., start:stop, :].to(device)
            if part.dtype == torch.bool:
                allowed = part
            else:
                additive = part.float()
        lo, hi = (0, stop) if mask is None and causal else (0, n_keys)
        if allowed is not None:
            lo, hi = _visible_keys(allowed)
            allowed = allowed[..., lo:hi]
        if additive is not None:
            additive = additive[..., lo:hi]
        width = hi - lo
        # Query heads of one key/value head side by side: (batch, kv, group * size, d), one plain bmm.
        block = query[:, :, start:stop].reshape(batch, kv_heads, group * size, head_dim).float() * scale
        scores = torch.matmul(block, keys_t[..., lo:hi])
        grid = scores.view(batch, kv_heads, group, size, width)
        if softcap is not None:
            grid.div_(softcap).tanh_().mul_(softcap)
        if position_bias is not None:
            grid.add_(_per_head(position_bias[..., start:stop, lo:hi].to(device).float(), kv_heads, group))
        if allowed is not None:
            grid.masked_fill_(~_per_head(allowed, kv_heads, group), float("-inf"))
        if additive is not None:
            grid.add_(_per_head(additive, kv_heads, group))
        if mask is None and causal:  # keys before the block are visible to all of it: mask the diagonal only
            future = key_positions[None, start:hi] > torch.arange(start, stop, device=device)[:, None]
            grid[..., start - lo :].masked_fill_(future, float("-inf"))
        if plain_scores:
            top_score = scores.amax(dim=-1)  # (batch, kv, group * size)
        probs = torch.softmax(scores, dim=-1)
        del scores, grid
        if mask is not None:
            # A query that may see no key at all (e.g. a left-padding query) gives NaN: zero output, not counted.
            probs.nan_to_num_(nan=0.0)
        both = torch.matmul(probs, values[:, :, lo:hi])  # (batch, kv, group * size, value dim [+ d])
        out = both[..., :value_dim]
        output[:, start:stop] = out.view(batch, heads, size, -1).transpose(1, 2)
        # One matmul gives the three masses and the distance to keys left and right of the block:
        # sum_j p_ij |i - j| = L_i + (i - start) P_i + R_i + (stop - i) Q_i + D_i, where L, P are the
        # distance to `start` and mass of keys before the block, R, Q those after it (from `stop`)
        # and D the keys inside it; every term is positive, so float32 loses nothing to cancellation.
        positions = key_positions[lo:hi]
        before = (positions < start).float()
        after = (positions >= stop).float()
        columns = torch.stack(
            [(start - positions) * before, before, (positions - stop) * after, after], dim=-1
        )
        key_columns = torch.cat(
            [weights[:, lo:hi], columns.float().expand(weights.shape[0], -1, -1)], dim=-1
        )  # (batch, width, 7)
        sided = torch.matmul(probs, key_columns[:, None])  # (batch, kv, group * size, 7)
        sided = sided.view(batch, heads, size, -1)
        offsets = torch.arange(size, device=device, dtype=torch.float32)[:, None]  # i - start
        distance = (
            sided[..., 3:4] + offsets * sided[..., 4:5] + sided[..., 5:6] + (size - offsets) * sided[..., 6:7]
        )
        inside_lo, inside_hi = max(start, lo), min(stop, hi)
        if inside_lo < inside_hi:
            inside = probs.view(batch, kv_heads, group, size, width)[..., inside_lo - lo : inside_hi - lo]
            gaps = (
                torch.arange(start, stop, device=device)[:, None]
                - positions[None, inside_lo - lo : inside_hi - lo]
            ).abs()
            distance = distance + (inside * gaps.float()).sum(-1).view(batch, heads, size, 1)
        if plain_scores:
            # lse_i = max_j s_ij - log max_j p_ij (the same j maximizes both); exact up to rounding.
            log_partition = top_score - probs.amax(dim=-1).log()
            expected_score = (block * both[..., value_dim:]).sum(-1)  # block holds the scaled queries
            entropy = (log_partition - expected_score).view(batch, heads, size, 1)
        else:
            entropy = torch.special.entr(probs).sum(-1).view(batch, heads, size, 1)
        del probs
        rows = torch.cat([entropy, sided[..., : len(_MASS_COLUMNS)], distance], dim=-1).double()
        counted = counted_queries[:, None, start:stop, None]  # rows in the order of STATISTICS
        sums += torch.where(counted, rows, torch.zeros_like(rows)).sum(dim=2)
    return output, sums


assert ("entropy", *_MASS_COLUMNS, "mean_distance") == STATISTICS  # the column order chunked_attention writes


_ACTIVE: ContextVar[AttentionRecording | None] = ContextVar("probelens_attention_recording", default=None)


def _attention_with_statistics(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | MaskRows | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    recording = _ACTIVE.get()
    if recording is not None:
        output = recording.attend(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, kwargs
        )
        if output is not None:
            return output, None
    if isinstance(attention_mask, MaskRows):
        attention_mask = attention_mask.materialize()
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
    AttentionMaskInterface.register(IMPLEMENTATION_NAME, bounded_mask)


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
    """Statistics of one padded batch: (batch, layers, heads, len(STATISTICS)), last axis as in STATISTICS."""
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
    """Per example (in order), its (layers, heads, len(STATISTICS)) statistics; examples run in length-sorted batches.

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
    """Rows of the ``attention`` table from per-example (layers, heads, len(STATISTICS)) arrays of one model."""
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
