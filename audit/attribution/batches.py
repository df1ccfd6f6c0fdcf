"""Encoded examples and how they are grouped, padded and run: shared by attributions and attention.

An encoded example is anything with ``input_ids``, ``offsets`` and ``special`` (one entry per real
token, special tokens included), e.g. ``audit.batching.Encoded`` or :class:`TokenizedText`.
Special tokens carry (0, 0) offsets, as fast tokenizers return them; they never count as focus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


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
