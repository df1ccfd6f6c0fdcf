"""Word-level occlusion of a pair's difference: for each word of two variants, how much of
f(a) - f(b) goes away when that word is replaced by a neutral token in both. Forward passes only,
batched, no gradients: it works for every model the audit scores, plain modules included.

Words are runs of letters and digits, or single punctuation marks, found in each text by their
characters; the two texts' words are aligned (difflib), the shared ones pairwise, and every word
that differs (the swapped words, wherever they are) forms one unit. A shared word's value is

    (f(a) - f(b)) - (f(a without the word) - f(b without the word))

where "without" replaces each of the word's tokens by the neutral token (the token count stays, so
heads that look up per-variant positions by ``variant_index`` still apply). The swapped unit is
scored the same way, measured like every other unit: its words are neutralised in a and in b, and
its value is the part of the delta that goes away. It is close to the whole delta when the swapped
words have the same number of tokens and the head reads only the input (the two occluded inputs
are then the same); it is not when the swapped words have different token counts (the occluded
texts still differ in length) or the head scores each variant's own tokens or spans by
``variant_index`` (masked-LM focus, QA answers, seq2seq targets). A word that no token reached
(truncation), or a side of the swapped unit without words, is left as it was: f(a) or f(b).

The neutral token (``neutral_token``), per model family:
- a mask token where the tokenizer has one (BERT-style encoders: classifiers, embedders, masked
  LMs, QA and token classifiers): pre-training taught the encoder to read it as "some word stands
  here", so the sentence keeps its shape and loses the word's content;
- else the unknown token (plain modules that declare ``unk_id``, T5, Llama-family tokenizers):
  the model's reading of a word it does not know (the test LSTM was trained with word dropout to
  exactly that token);
- else the attribution baseline token (pad, else end-of-sequence: GPT-2-style tokenizers), the
  same token integrated gradients' baseline uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

import numpy as np
import torch

from audit.attribution.base import ScoreFunction
from audit.attribution.batches import EncodedExample
from audit.attribution.driver import baseline_token_of
from audit.batching import pad_right, run_with_backoff, token_budget_batches

WORD = re.compile(r"\w+|[^\w\s]")
Span = tuple[int, int]


@dataclass(frozen=True)
class WordUnit:
    """One occluded unit: a word both variants share, or all the words that differ (``swapped``)."""

    text: str
    """The word; for the swapped unit "a's words → b's words" (∅ for a side without words)."""
    spans_a: tuple[Span, ...]
    spans_b: tuple[Span, ...]
    swapped: bool


def words(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def word_units(text_a: str, text_b: str) -> list[WordUnit]:
    """The units of a pair in reading order: shared words aligned between a and b, and the words
    that differ as one unit where the first of them stands."""
    in_a, in_b = words(text_a), words(text_b)
    matcher = SequenceMatcher(None, [w for w, _, _ in in_a], [w for w, _, _ in in_b], autojunk=False)
    units: list[WordUnit] = []
    swapped_a: list[tuple[str, int, int]] = []
    swapped_b: list[tuple[str, int, int]] = []
    swapped_at: int | None = None
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if tag == "equal":
            for word_a, word_b in zip(in_a[a_start:a_end], in_b[b_start:b_end], strict=True):
                units.append(WordUnit(word_a[0], ((word_a[1], word_a[2]),), ((word_b[1], word_b[2]),), False))
            continue
        swapped_at = len(units) if swapped_at is None else swapped_at
        swapped_a += in_a[a_start:a_end]
        swapped_b += in_b[b_start:b_end]
    if swapped_at is not None:
        text = (
            f"{' '.join(w for w, _, _ in swapped_a) or '∅'} → {' '.join(w for w, _, _ in swapped_b) or '∅'}"
        )
        swapped = WordUnit(
            text, tuple((s, e) for _, s, e in swapped_a), tuple((s, e) for _, s, e in swapped_b), True
        )
        units.insert(swapped_at, swapped)
    return units


def neutral_token(tokenizer: Any) -> tuple[int, str]:
    """The token that stands in for an occluded word, and which kind it is ("mask", "unknown",
    "baseline"): see the module docstring for why."""
    for name, kind in (("mask_token_id", "mask"), ("unk_token_id", "unknown")):
        token_id = getattr(tokenizer, name, None)
        if isinstance(token_id, int) and token_id >= 0:
            return token_id, kind
    return baseline_token_of(tokenizer), "baseline"


def occluded(example: EncodedExample, spans: Sequence[Span], neutral: int) -> list[int] | None:
    """The example's ids with every (non-special) token overlapping ``spans`` replaced by
    ``neutral``; None when no token overlaps (the word never reached the model)."""
    ids = list(example.input_ids)
    hit = False
    for position, ((start, end), special) in enumerate(zip(example.offsets, example.special, strict=True)):
        if special or end <= start:
            continue
        if any(start < s_end and s_start < end for s_start, s_end in spans):
            ids[position] = neutral
            hit = True
    return ids if hit else None


@dataclass(frozen=True)
class OcclusionPair:
    """Two variants, their scores on the explained column (the scored f(a), f(b)) and their units."""

    a: EncodedExample
    b: EncodedExample
    variant_a: int
    variant_b: int
    output_index: int
    score_a: float
    score_b: float
    units: Sequence[WordUnit]


def occlusion_values(
    forward: ScoreFunction,
    pairs: Sequence[OcclusionPair],
    *,
    neutral_id: int,
    pad_id: int,
    device: torch.device,
    batch_tokens: int = 4096,
    on_done: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Per pair, one value per unit (see the module docstring); every occluded input is scored
    once (a variant shared by several pairs with the same word occluded is one input)."""
    inputs: dict[tuple[int, int, tuple[int, ...]], int] = {}  # (variant, column, ids) -> row

    def request(variant: int, column: int, ids: list[int] | None) -> int | None:
        if ids is None:
            return None
        return inputs.setdefault((variant, column, tuple(ids)), len(inputs))

    plan: list[list[tuple[int | None, int | None]]] = []
    for pair in pairs:
        plan.append(
            [
                (
                    request(pair.variant_a, pair.output_index, occluded(pair.a, unit.spans_a, neutral_id)),
                    request(pair.variant_b, pair.output_index, occluded(pair.b, unit.spans_b, neutral_id)),
                )
                for unit in pair.units
            ]
        )
    keys = list(inputs)
    scores = np.zeros(len(keys), dtype=np.float64)

    @torch.no_grad()
    def step(batch: list[int]) -> np.ndarray:
        chosen = [keys[i] for i in batch]
        ids = pad_right([list(key[2]) for key in chosen], pad_id, device)
        mask = pad_right([[1] * len(key[2]) for key in chosen], 0, device)
        variants = torch.tensor([key[0] for key in chosen], dtype=torch.long, device=device)
        columns = torch.tensor([key[1] for key in chosen], dtype=torch.long, device=device)
        out = forward(ids, mask, variants)
        return out.gather(1, columns[:, None]).squeeze(1).detach().double().cpu().numpy()

    for batch in token_budget_batches([len(key[2]) for key in keys], batch_tokens):
        for done, scored in run_with_backoff(batch, step):
            scores[done] = scored
            if on_done is not None:
                on_done(len(done))
    results = []
    for pair, requests in zip(pairs, plan, strict=True):
        delta = pair.score_a - pair.score_b
        values: list[float] = []
        for row_a, row_b in requests:
            occluded_a = pair.score_a if row_a is None else scores[row_a]
            occluded_b = pair.score_b if row_b is None else scores[row_b]
            values.append(float(delta - (occluded_a - occluded_b)))
        results.append(np.asarray(values, dtype=np.float64))
    return results
