"""Encoded examples and how they are grouped, padded and run: shared by attributions and attention.

An encoded example is anything with ``input_ids``, ``offsets`` and ``special`` (one entry per real
token, special tokens included), e.g. ``audit.batching.Encoded`` or :class:`TokenizedText`.
Special tokens carry (0, 0) offsets, as fast tokenizers return them; they never count as focus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch

T = TypeVar("T")


class EncodedExample(Protocol):
    """One tokenized text: ids, character offsets and special-token flags, one entry per token."""

    @property
    def input_ids(self) -> Sequence[int]: ...

    @property
    def offsets(self) -> Sequence[tuple[int, int]]: ...

    @property
    def special(self) -> Sequence[bool]: ...


@dataclass(frozen=True)
class TokenizedText:
    """A plain :class:`EncodedExample` (for callers that tokenize themselves)."""

    input_ids: Sequence[int]
    offsets: Sequence[tuple[int, int]]
    special: Sequence[bool]


def check_example(example: EncodedExample, position: int) -> None:
    n = len(example.input_ids)
    if n == 0:
        raise ValueError(f"example {position} has no tokens")
    if len(example.offsets) != n or len(example.special) != n:
        raise ValueError(
            f"example {position} has {n} token ids but {len(example.offsets)} offsets and "
            f"{len(example.special)} special flags; they must match one to one"
        )


def focus_token_mask(example: EncodedExample, focus_spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Per token: True when its character span overlaps a focus span (special tokens never do)."""
    mask = []
    for (start, end), special in zip(example.offsets, example.special, strict=True):
        mask.append(
            not special
            and end > start
            and any(start < f_end and f_start < end for f_start, f_end in focus_spans)
        )
    return mask


def length_batches(lengths: Sequence[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Indices grouped longest first, each batch within ``max_tokens`` padded tokens and ``max_rows`` rows.

    A single example longer than ``max_tokens`` still gets a batch of its own.
    """
    if max_tokens < 1 or max_rows < 1:
        raise ValueError(f"max_tokens and max_rows must be at least 1 (got {max_tokens}, {max_rows})")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Longest first, so the first member of a batch sets its padded width.
        width = lengths[current[0]] if current else lengths[index]
        if current and ((len(current) + 1) * width > max_tokens or len(current) >= max_rows):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def pad_right(
    rows: Sequence[Sequence[int]], pad_value: int, device: torch.device, dtype: torch.dtype = torch.long
) -> torch.Tensor:
    """Right-pad integer rows to the longest one: a (len(rows), width) tensor."""
    width = max(len(row) for row in rows)
    out = torch.full((len(rows), width), pad_value, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(list(row), dtype=dtype)
    return out.to(device)


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def run_halving_on_oom(batch: list[int], step: Callable[[list[int]], T]) -> Iterator[tuple[list[int], T]]:
    """Run ``step`` on the batch; on out-of-memory, free the cache and run each half instead."""
    try:
        result = step(batch)
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if not is_out_of_memory(error) or len(batch) == 1:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        middle = len(batch) // 2
        yield from run_halving_on_oom(batch[:middle], step)
        yield from run_halving_on_oom(batch[middle:], step)
        return
    yield batch, result
