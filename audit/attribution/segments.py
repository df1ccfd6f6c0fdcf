"""Segment-level attributions for long inputs: one number per sentence (or run of sentences).

Token rows are unreadable for a 32k-token document, and integrated gradients (steps x backward
passes) does not fit in memory there. So long documents are explained per segment:

- :func:`sentence_segments` cuts a text into at most ``max_segments`` character spans: sentences,
  each key (or swapped) sentence exactly as its own segment, neighbouring sentences merged into
  runs of about equal length.
- :func:`segment_attribution_rows` explains the score of each example per segment, combining the
  example's windows (one for a normal or truncated input, several under the sliding-window
  strategy) the way the scorer combines them (mean or max), and returns rows of the
  ``segment_attributions`` table.

Methods:

- ``"segment_ablation"``: Captum ``FeatureAblation`` with one feature per segment. A segment's
  tokens are replaced by the pad token while the attention mask stays 1 (the positions stay, the
  content goes); special tokens are never replaced. Forward passes only, under ``no_grad``:
  memory of one forward pass, so it runs wherever the scorer runs.
- ``"gradient_x_input"``: gradient x embedding, summed over each segment's tokens. Needs one
  backward pass per window (activation memory of a training step): use it for inputs that fit.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from captum.attr import FeatureAblation
from torch import nn

from audit.attribution.base import ScoreFunction
from audit.attribution.batches import EncodedExample, check_example
from audit.attribution.driver import attribute_examples
from audit.batching import pad_right, run_with_backoff, token_budget_batches
from audit.errors import UserError
from audit.tables import TABLES

SEGMENT_METHODS = ("segment_ablation", "gradient_x_input")
"""The methods :func:`segment_attribution_rows` knows, in the order they are documented."""

AGGREGATIONS = ("mean", "max")
"""How an example's window scores become its score (the runner's sliding-window aggregation)."""

_ABBREVIATIONS = frozenset(
    ["mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "cf", "fig"]
    + ["al", "approx", "dept", "est", "inc", "ltd", "co", "corp", "jan", "feb", "mar", "apr", "jun", "jul"]
    + ["aug", "sep", "sept", "oct", "nov", "dec"]
)
"""Words whose trailing period does not end a sentence (lowercase, without the final period)."""

_SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+|[\u3002\uff01\uff1f]+\s*")
"""Sentence-ending punctuation (with closing quotes/brackets) and the whitespace after it; CJK
full stops need no whitespace."""

_WORD_BEFORE = re.compile(r"(\S+)$")


def _is_abbreviation(text: str, punctuation_start: int) -> bool:
    """True when the period at ``punctuation_start`` closes an abbreviation or an initial ("J.")."""
    if text[punctuation_start] != ".":
        return False
    match = _WORD_BEFORE.search(text, 0, punctuation_start)
    if match is None:
        return False
    word = match.group(1).lstrip("\"'(\u201c\u2018[")
    if len(word) == 1 and word.isalpha() and word.isupper():
        return True  # an initial: "J. Smith"
    return word.lower() in _ABBREVIATIONS


def _sentence_starts(text: str, start: int, end: int) -> list[int]:
    """Character positions strictly inside (start, end) where a new sentence begins."""
    starts = []
    for match in _SENTENCE_END.finditer(text, start, end):
        boundary = match.end()
        if start < boundary < end and not _is_abbreviation(text, match.start()):
            starts.append(boundary)
    return starts


def _allocate(weights: Sequence[int], caps: Sequence[int], total: int) -> list[int]:
    """Split ``total`` pieces over regions: at least 1 and at most ``caps[i]`` each, in proportion
    to ``weights`` (D'Hondt: each further piece goes to the region with the most weight per piece)."""
    counts = [1] * len(weights)
    remaining = total - len(weights)
    while remaining > 0:
        open_regions = [i for i in range(len(weights)) if counts[i] < caps[i]]
        if not open_regions:
            break
        best = max(open_regions, key=lambda i: (weights[i] / (counts[i] + 1), -i))
        counts[best] += 1
        remaining -= 1
    return counts


def _even_cuts(boundaries: Sequence[int], start: int, end: int, pieces: int) -> list[int]:
    """Choose ``pieces - 1`` of the sentence ``boundaries`` so the pieces have about equal length."""
    if pieces - 1 >= len(boundaries):
        return list(boundaries)
    cuts: list[int] = []
    lowest = 0
    for j in range(1, pieces):
        target = start + j * (end - start) / pieces
        highest = len(boundaries) - (pieces - 1 - j)  # leave one boundary for every cut still to come
        best = min(range(lowest, highest), key=lambda k: abs(boundaries[k] - target))
        cuts.append(boundaries[best])
        lowest = best + 1
    return cuts


def sentence_segments(
    text: str, key_spans: Sequence[tuple[int, int]], max_segments: int = 32
) -> list[tuple[int, int]]:
    """Cut ``text`` into at most ``max_segments`` contiguous character spans covering all of it.

    Sentences end at ., ! or ? (and closing quotes/brackets) followed by whitespace, which stays
    with the sentence it follows; a period after a known abbreviation ("Dr.", "e.g.") or an
    initial ("J.") ends none. Every key span is one segment of exactly its characters. The text
    between key spans is shared out among the remaining segments in proportion to its length and
    its sentences merged into runs of about equal length, never across a key span.

    Raises ValueError when a key span lies outside the text, is empty, overlaps another, or when
    ``max_segments`` cannot hold the key spans and one segment for each stretch of text between them.
    """
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, got {max_segments}")
    keys = sorted({(int(s), int(e)) for s, e in key_spans})
    for start, end in keys:
        if not 0 <= start < end <= len(text):
            raise ValueError(
                f"key span ({start}, {end}) is not a non-empty span of the {len(text)}-character text"
            )
    for (_, previous_end), (start, _) in zip(keys[:-1], keys[1:], strict=True):
        if start < previous_end:
            raise ValueError(f"key spans overlap at character {start}; give each key sentence its own span")
    if not text:
        return []
    regions: list[tuple[int, int]] = []  # the stretches of text between key spans
    cursor = 0
    for start, end in keys:
        if start > cursor:
            regions.append((cursor, start))
        cursor = end
    if cursor < len(text):
        regions.append((cursor, len(text)))
    needed = len(keys) + len(regions)
    if needed > max_segments:
        raise ValueError(
            f"max_segments={max_segments} cannot hold {len(keys)} key span(s) and the {len(regions)} "
            f"stretch(es) of text around them; allow at least {needed} segments"
        )
    boundaries = [_sentence_starts(text, start, end) for start, end in regions]
    pieces = _allocate(
        [end - start for start, end in regions],
        [len(b) + 1 for b in boundaries],
        max_segments - len(keys),
    )
    cut_points = {position for span in keys for position in span}
    for (start, end), region_boundaries, n_pieces in zip(regions, boundaries, pieces, strict=True):
        cut_points.update(_even_cuts(region_boundaries, start, end, n_pieces))
    edges = sorted(cut_points | {0, len(text)})
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


@dataclass(frozen=True)
class _Window:
    """One model input of one example: its tokens and, per token, its segment (-1: none)."""

    example: int
    encoded: EncodedExample
    segment_of_token: list[int]


def _token_segments(encoded: EncodedExample, text: str, segment_starts: Sequence[int]) -> list[int]:
    """Per token, the segment holding its first non-space character; -1 for special or empty tokens.

    Tokenizers that fold the preceding space into a word ("▁The", "ĠThe") give offsets that start
    on the space; the word, not the space, decides where the token belongs.
    """
    segments = []
    for (start, end), special in zip(encoded.offsets, encoded.special, strict=True):
        if special or end <= start:
            segments.append(-1)
            continue
        anchor = start
        while anchor < end - 1 and text[anchor].isspace():
            anchor += 1
        segments.append(bisect.bisect_right(segment_starts, anchor) - 1)
    return segments


def _tokens_that_reached_the_model(windows: Sequence[_Window], n_segments: int) -> list[int]:
    """Per segment, its tokens over all windows, each counted once (windows overlap by design).

    A token is known by (offsets, id); a token repeated with the same offsets (a character split
    into byte tokens) counts as often as the window that holds it most often holds it.
    """
    seen: list[Counter[tuple[int, int, int]]] = [Counter() for _ in range(n_segments)]
    for window in windows:
        in_window: list[Counter[tuple[int, int, int]]] = [Counter() for _ in range(n_segments)]
        for (start, end), token_id, segment in zip(
            window.encoded.offsets, window.encoded.input_ids, window.segment_of_token, strict=True
        ):
            if segment >= 0:
                in_window[segment][(int(start), int(end), int(token_id))] += 1
        for segment in range(n_segments):
            seen[segment] |= in_window[segment]  # Counter union keeps the larger count
    return [sum(counter.values()) for counter in seen]


def _ablation_per_window(
    forward: ScoreFunction,
    windows: Sequence[_Window],
    output_index: Sequence[int],
    n_segments: Sequence[int],
    *,
    pad_id: int,
    device: torch.device,
    batch_tokens: int,
    need_scores: bool,
    on_done: Callable[[int], None] | None,
) -> tuple[list[np.ndarray], list[float]]:
    """Per window: f(x_w) - f(x_w without segment s) for every segment s of its example (0 for
    segments outside the window), and f(x_w) when ``need_scores``.

    Windows are run in length-sorted batches of at most ``batch_tokens`` padded tokens; Captum
    evaluates ``perturbations_per_eval`` ablated copies of a batch per forward pass, as many as fit
    the same budget. Special tokens and padding take the id of a segment of the row, with a
    baseline equal to themselves, so ablating never changes them and costs no extra pass.
    """

    def explained(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return forward(input_ids, attention_mask).float()

    ablation = FeatureAblation(explained)
    deltas: list[np.ndarray] = [np.zeros(0)] * len(windows)
    scores: list[float] = [float("nan")] * len(windows)
    lengths = [len(w.encoded.input_ids) for w in windows]

    for outer in token_budget_batches(lengths, batch_tokens):
        width = max(lengths[i] for i in outer)
        per_eval = max(1, batch_tokens // (len(outer) * width))

        def run(batch: list[int], per_eval: int = per_eval) -> list[tuple[np.ndarray, float]]:
            chosen = [windows[i] for i in batch]
            ids = pad_right([w.encoded.input_ids for w in chosen], pad_id, device)
            mask = pad_right([[1] * len(w.encoded.input_ids) for w in chosen], 0, device)
            width = ids.shape[1]
            features = []
            for window in chosen:
                real = [s for s in window.segment_of_token if s >= 0]
                filler = real[0] if real else 0  # special tokens and padding: a segment of the row
                segment_ids = [s if s >= 0 else filler for s in window.segment_of_token]
                features.append(segment_ids + [filler] * (width - len(segment_ids)))
            feature_mask = torch.tensor(features, dtype=torch.long, device=device)
            content = pad_right([[int(s >= 0) for s in w.segment_of_token] for w in chosen], 0, device).bool()
            baseline = torch.where(content, torch.full_like(ids, pad_id), ids)
            targets = [output_index[w.example] for w in chosen]
            with torch.no_grad():
                attributions = ablation.attribute(
                    ids,
                    baselines=baseline,
                    target=targets,
                    additional_forward_args=(mask,),
                    feature_mask=feature_mask,
                    perturbations_per_eval=per_eval,
                )
                if need_scores:
                    window_scores = explained(ids, mask).gather(
                        1, torch.tensor(targets, device=device)[:, None]
                    )[:, 0]
            values = attributions.detach().float().cpu().numpy()
            out = []
            for row, window in enumerate(chosen):
                per_segment = np.zeros(n_segments[window.example], dtype=np.float64)
                for position, segment in enumerate(window.segment_of_token):
                    if segment >= 0:
                        per_segment[segment] = values[row, position]  # equal on all of its tokens
                score = float(window_scores[row]) if need_scores else float("nan")
                out.append((per_segment, score))
            return out

        for done, results in run_with_backoff(outer, run):
            for index, (per_segment, score) in zip(done, results, strict=True):
                deltas[index] = per_segment
                scores[index] = score
            if on_done is not None:
                on_done(len(done))
    return deltas, scores


def _gradient_per_window(
    forward: ScoreFunction,
    embedding_layer: nn.Module,
    windows: Sequence[_Window],
    output_index: Sequence[int],
    n_segments: Sequence[int],
    *,
    pad_id: int,
    device: torch.device,
    batch_tokens: int,
    on_done: Callable[[int], None] | None,
) -> tuple[list[np.ndarray], list[float]]:
    """Per window: gradient x input summed over each segment's tokens, and f(x_w)."""
    results = attribute_examples(
        forward,
        embedding_layer,
        [w.encoded for w in windows],
        [output_index[w.example] for w in windows],
        "gradient_x_input",
        baseline_token_id=pad_id,
        batch_tokens=batch_tokens,
        device=device,
        on_done=on_done,
    )
    sums = []
    for window, result in zip(windows, results, strict=True):
        per_segment = np.zeros(n_segments[window.example], dtype=np.float64)
        for value, segment in zip(result.attributions, window.segment_of_token, strict=True):
            if segment >= 0:
                per_segment[segment] += float(value)
        sums.append(per_segment)
    return sums, [r.score for r in results]


def _combine_ablation(deltas: Sequence[np.ndarray], scores: Sequence[float], aggregate: str) -> np.ndarray:
    """Score change per segment for the example whose windows gave these per-window deltas.

    mean: mean_w f(x_w) - mean_w f(x_w without s) = sum_w delta_w / W.
    max: max_w f(x_w) - max_w f(x_w without s), with f(x_w without s) = f(x_w) - delta_w (a window
    that does not hold s is unchanged by removing it).
    """
    stacked = np.stack(deltas)
    if aggregate == "mean":
        return stacked.mean(axis=0)
    window_scores = np.asarray(scores, dtype=np.float64)[:, None]
    return window_scores.max() - (window_scores - stacked).max(axis=0)


def _combine_gradients(sums: Sequence[np.ndarray], scores: Sequence[float], aggregate: str) -> np.ndarray:
    """mean: the windows' segment sums / W (the gradient of the mean); max: the argmax window's sums
    (the gradient of the max, which flows through the highest-scoring window only)."""
    stacked = np.stack(sums)
    if aggregate == "mean":
        return stacked.mean(axis=0)
    return stacked[int(np.argmax(np.asarray(scores)))]


def _segment_frame(columns: dict[str, list[Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "example_id": pd.Series(columns["example_id"], dtype="string"),
            "method": pd.Series(columns["method"], dtype="string"),
            "output": pd.Series(columns["output"], dtype="string"),
            "segment_index": pd.Series(columns["segment_index"], dtype="int64"),
            "char_start": pd.Series(columns["char_start"], dtype="int64"),
            "char_end": pd.Series(columns["char_end"], dtype="int64"),
            "n_tokens": pd.Series(columns["n_tokens"], dtype="int64"),
            "attribution": pd.Series(columns["attribution"], dtype="float64"),
            "is_key": pd.Series(columns["is_key"], dtype="bool"),
        }
    )


def segment_attribution_rows(
    *,
    forward: ScoreFunction,
    windows: Sequence[Sequence[EncodedExample]],
    example_ids: Sequence[str],
    texts: Sequence[str],
    key_spans: Sequence[Sequence[tuple[int, int]]],
    output_indices: Sequence[int],
    output_names: Sequence[str],
    methods: Sequence[str] = ("segment_ablation",),
    aggregate: str = "mean",
    pad_id: int,
    device: torch.device,
    embedding_layer: nn.Module | None = None,
    max_segments: int = 32,
    batch_tokens: int = 8192,
    on_done: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Explain each example's score per segment: rows of the ``segment_attributions`` table.

    Example i is ``texts[i]``, scored by the model as ``windows[i]`` (one encoded input, or the
    sliding windows; their offsets index into ``texts[i]``, special tokens have (0, 0) offsets
    and belong to no segment) whose scores are combined by ``aggregate`` ("mean" or "max"), as
    the scorer combines them. Column ``output_indices[i]`` of ``forward(input_ids,
    attention_mask) -> (batch, n_outputs)`` is explained, named ``output_names[output_indices[i]]``
    in the rows. Segments come from :func:`sentence_segments` over ``key_spans[i]``.

    ``attribution`` is the score change the segment accounts for (positive: the segment raises
    the output); windows are combined exactly, see :func:`_combine_ablation`. ``n_tokens`` counts
    the segment's tokens that reached the model, each once; a segment truncated away entirely
    keeps its row with n_tokens 0 and attribution 0. ``is_key``: the segment is a key span.

    Methods: "segment_ablation" (forward passes only: pad-token baseline with the attention mask
    kept; on decoder classifiers that pool the last non-pad token, removing the final segment
    reads the prediction from the text before it) and "gradient_x_input" (needs
    ``embedding_layer`` and backward memory for the longest window; use it for inputs that fit).
    Windows run in length-sorted batches of at most ``batch_tokens`` padded tokens; ``on_done(n)``
    is called with the number of windows finished after each batch, for every method in turn.
    """
    _check_arguments(
        methods, aggregate, embedding_layer, batch_tokens, windows, example_ids, texts, key_spans,
        output_indices, output_names,
    )  # fmt: skip
    n = len(windows)
    segments = [
        sentence_segments(text, spans, max_segments) for text, spans in zip(texts, key_spans, strict=True)
    ]
    flat = _flat_windows(windows, example_ids, texts, segments)
    windows_of: list[list[int]] = [[] for _ in range(n)]
    for index, window in enumerate(flat):
        windows_of[window.example].append(index)
    n_segments = [len(s) for s in segments]
    reached = [
        _tokens_that_reached_the_model([flat[j] for j in windows_of[i]], n_segments[i]) for i in range(n)
    ]

    columns: dict[str, list[Any]] = {name: [] for name in TABLES["segment_attributions"]}
    for method in methods:
        per_window, scores, combine = _per_window_values(
            method,
            forward,
            embedding_layer,
            flat,
            output_indices,
            n_segments,
            pad_id=pad_id,
            device=device,
            batch_tokens=batch_tokens,
            aggregate=aggregate,
            on_done=on_done,
        )
        for i in range(n):
            if not n_segments[i]:
                continue
            mine = windows_of[i]
            values = combine([per_window[j] for j in mine], [scores[j] for j in mine], aggregate)
            keys = {(int(s), int(e)) for s, e in key_spans[i]}
            for index, (start, end) in enumerate(segments[i]):
                columns["example_id"].append(example_ids[i])
                columns["method"].append(method)
                columns["output"].append(output_names[output_indices[i]])
                columns["segment_index"].append(index)
                columns["char_start"].append(start)
                columns["char_end"].append(end)
                columns["n_tokens"].append(reached[i][index])
                columns["attribution"].append(float(values[index]))
                columns["is_key"].append((start, end) in keys)
    return _segment_frame(columns)


def _per_window_values(
    method: str,
    forward: ScoreFunction,
    embedding_layer: nn.Module | None,
    flat: list[_Window],
    output_indices: Sequence[int],
    n_segments: Sequence[int],
    *,
    pad_id: int,
    device: torch.device,
    batch_tokens: int,
    aggregate: str,
    on_done: Callable[[int], None] | None,
) -> tuple[list[np.ndarray], list[float], Callable[[Sequence[np.ndarray], Sequence[float], str], np.ndarray]]:
    """One method's segment values per window, the windows' scores, and how they combine per example."""
    if method == "segment_ablation":
        per_window, scores = _ablation_per_window(
            forward,
            flat,
            output_indices,
            n_segments,
            pad_id=pad_id,
            device=device,
            batch_tokens=batch_tokens,
            need_scores=aggregate == "max",
            on_done=on_done,
        )
        return per_window, scores, _combine_ablation
    assert embedding_layer is not None
    per_window, scores = _gradient_per_window(
        forward,
        embedding_layer,
        flat,
        output_indices,
        n_segments,
        pad_id=pad_id,
        device=device,
        batch_tokens=batch_tokens,
        on_done=on_done,
    )
    return per_window, scores, _combine_gradients


def _check_arguments(
    methods: Sequence[str],
    aggregate: str,
    embedding_layer: nn.Module | None,
    batch_tokens: int,
    windows: Sequence[Sequence[EncodedExample]],
    example_ids: Sequence[str],
    texts: Sequence[str],
    key_spans: Sequence[Sequence[tuple[int, int]]],
    output_indices: Sequence[int],
    output_names: Sequence[str],
) -> None:
    """Refuse arguments :func:`segment_attribution_rows` cannot explain, before any forward pass."""
    unknown = [m for m in methods if m not in SEGMENT_METHODS]
    if unknown:
        raise UserError(
            f"unknown segment attribution method(s) {unknown}; choose from {list(SEGMENT_METHODS)}"
        )
    if aggregate not in AGGREGATIONS:
        raise UserError(f"unknown window aggregation {aggregate!r}; choose one of {list(AGGREGATIONS)}")
    if "gradient_x_input" in methods and embedding_layer is None:
        raise ValueError("gradient_x_input needs the model's token embedding layer (embedding_layer=...)")
    if batch_tokens < 1:
        raise ValueError(f"batch_tokens must be at least 1, got {batch_tokens}")
    n = len(windows)
    if not (len(example_ids) == len(texts) == len(key_spans) == len(output_indices) == n):
        raise ValueError(
            "windows, example_ids, texts, key_spans and output_indices must have one entry per example "
            f"(got {n}, {len(example_ids)}, {len(texts)}, {len(key_spans)}, {len(output_indices)})"
        )
    for example_id, index in zip(example_ids, output_indices, strict=True):
        if not 0 <= index < len(output_names):
            raise ValueError(
                f"example {example_id!r}: output index {index} is not a column of the score head's "
                f"{len(output_names)} outputs {list(output_names)}"
            )


def _flat_windows(
    windows: Sequence[Sequence[EncodedExample]],
    example_ids: Sequence[str],
    texts: Sequence[str],
    segments: Sequence[Sequence[tuple[int, int]]],
) -> list[_Window]:
    """Every window of every example in one list, each with the segment of each of its tokens."""
    flat: list[_Window] = []
    for i, (example_windows, text, example_segments) in enumerate(zip(windows, texts, segments, strict=True)):
        if not example_windows:
            raise ValueError(
                f"example {example_ids[i]!r} has no windows; give at least its one encoded input"
            )
        starts = [start for start, _ in example_segments]
        for position, encoded in enumerate(example_windows):
            check_example(encoded, position)
            if any(end > len(text) for _, end in encoded.offsets):
                raise ValueError(f"example {example_ids[i]!r}: token offsets run past the end of its text")
            flat.append(_Window(i, encoded, _token_segments(encoded, text, starts)))
    return flat
