"""Tokenize once, then run the model over length-sorted batches under a token budget.

Texts are sorted by length so each batch pads little; a batch holds as many texts as fit in
``max_tokens`` (batch size x longest sequence). On an out-of-memory error the batch is split in
half and retried, down to single texts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Encoded:
    """One text after tokenization (truncated to the model's maximum length)."""

    input_ids: list[int]
    offsets: list[tuple[int, int]]  # (0, 0) for special tokens
    special: list[bool]
    n_tokens: int
    truncated: bool


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[Encoded]:
    """Tokenize every text with offsets; flag the ones cut to ``max_length``."""
    if not texts:
        return []
    full = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    cut = tokenizer(
        list(texts),
        add_special_tokens=True,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    encoded = []
    for i in range(len(texts)):
        ids = list(cut["input_ids"][i])
        encoded.append(
            Encoded(
                input_ids=ids,
                offsets=[(int(s), int(e)) for s, e in cut["offset_mapping"][i]],
                special=[bool(m) for m in cut["special_tokens_mask"][i]],
                n_tokens=len(ids),
                truncated=len(full[i]) > len(ids),
            )
        )
    return encoded


def token_budget_batches(
    lengths: Sequence[int], max_tokens: int, max_batch_size: int = 256
) -> list[list[int]]:
    """Indices grouped into batches, longest first, each within ``max_tokens`` padded tokens."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        candidate_longest = max(longest, lengths[index])
        if current and (
            (len(current) + 1) * candidate_longest > max_tokens or len(current) >= max_batch_size
        ):
            batches.append(current)
            current, candidate_longest = [], lengths[index]
        current.append(index)
        longest = candidate_longest
    if current:
        batches.append(current)
    return batches


def pad_right(
    rows: Sequence[Sequence[int]], pad_value: int, device: torch.device, dtype: torch.dtype = torch.long
) -> torch.Tensor:
    """Right-pad integer rows to the longest one: a (len(rows), width) tensor on ``device``."""
    width = max(len(row) for row in rows)
    padded = torch.full((len(rows), width), pad_value, dtype=dtype)
    for i, row in enumerate(rows):
        padded[i, : len(row)] = torch.as_tensor(list(row), dtype=dtype)
    return padded.to(device)


def collate(items: Sequence[Encoded], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a batch to its longest member: (input_ids, attention_mask)."""
    ids = pad_right([item.input_ids for item in items], pad_id, device)
    mask = pad_right([[1] * item.n_tokens for item in items], 0, device)
    return ids, mask


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def run_with_backoff(batch: list[int], step: Callable[[list[int]], T]) -> Iterator[tuple[list[int], T]]:
    """Run ``step`` on the batch; on out-of-memory, free the cache and run each half instead."""
    try:
        result = step(batch)
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if not is_out_of_memory(error) or len(batch) == 1:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        middle = len(batch) // 2
        yield from run_with_backoff(batch[:middle], step)
        yield from run_with_backoff(batch[middle:], step)
        return
    yield batch, result


def run_in_length_batches(
    lengths: Sequence[int],
    batch_tokens: int,
    step: Callable[[list[int]], list[T]],
    *,
    max_batch_size: int = 256,
    on_done: Callable[[int], None] | None = None,
) -> list[T]:
    """``step`` over token-budget batches of the items (``token_budget_batches``), each batch split in
    half on out-of-memory (``run_with_backoff``); ``step(batch)`` returns one result per index of the
    batch. The results come back in the items' order; ``on_done(n)`` after each batch that ran."""
    results: dict[int, T] = {}
    for batch in token_budget_batches(lengths, batch_tokens, max_batch_size=max_batch_size):
        for done, values in run_with_backoff(batch, step):
            results.update(zip(done, values, strict=True))
            if on_done is not None:
                on_done(len(done))
    return [results[index] for index in range(len(lengths))]
