"""Inputs longer than the model's maximum, as sliding windows, and how window results combine.

Strategy "truncate" (the default) cuts a text to the model's maximum length and flags it
(``examples.truncated``). Strategy "window" never drops text: the text's content tokens are cut
into windows of ``max_length`` tokens (each with the model's own special tokens around it),
starting every ``stride`` tokens (default: half a window), the last one moved back so that it
ends at the text's end and is full. Each window is one
model input; a text's score is the mean or the max of its windows' scores.

Everything computed per window combines back into one value per text here:

- scores: mean or max over the windows, per output;
- token attributions: attribution methods are linear in the function they explain, so the
  attribution of a token for the mean of window scores is the sum of its attributions in the
  windows that contain it divided by the number of windows; for the max, the attributions of the
  window that gives the max;
- attention statistics: means over a window's query tokens, so the text's value is the mean over
  windows weighted by their token counts (focus mass: over the windows that hold focus tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from audit.batching import Encoded, encode_texts
from audit.errors import UserError

Strategy = Literal["truncate", "window"]
Aggregate = Literal["mean", "max"]


@dataclass(frozen=True)
class LongInputPolicy:
    """What happens to inputs longer than the model's maximum; recorded in the manifest."""

    strategy: Strategy = "truncate"
    stride: int | None = None
    """Window strategy: tokens between window starts (default: half a window)."""
    aggregate: Aggregate = "mean"

    def describe(self, max_length: int) -> dict[str, Any]:
        described: dict[str, Any] = {"strategy": self.strategy, "max_length": max_length}
        if self.strategy == "window":
            described.update(stride=self.stride, aggregate=self.aggregate)
        return described


@dataclass(frozen=True)
class EncodedText:
    """One text as the model sees it: one input (possibly truncated) or several windows."""

    windows: tuple[Encoded, ...]
    n_tokens: int
    """Tokens of the whole text with special tokens (what one input would need)."""
    truncated: bool

    @property
    def first(self) -> Encoded:
        return self.windows[0]


def seen_until(encoded: EncodedText) -> int:
    """The character where what reached the model ends."""
    return max(end for window in encoded.windows for _, end in window.offsets)


def encode_long(
    tokenizer: Any, texts: Sequence[str], max_length: int, policy: LongInputPolicy
) -> list[EncodedText]:
    """Every text as model inputs under the policy (one input per text when it fits)."""
    if policy.strategy == "truncate":
        encoded = encode_texts(tokenizer, texts, max_length)
        full = (
            tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
            if texts
            else []
        )
        return [EncodedText((e,), len(ids), e.truncated) for e, ids in zip(encoded, full, strict=True)]
    return [window_text(tokenizer, text, max_length, policy.stride) for text in texts]


def window_text(tokenizer: Any, text: str, max_length: int, stride: int | None) -> EncodedText:
    """Sliding windows over one text; each keeps the text's leading and trailing special tokens."""
    full = tokenizer(
        text,
        add_special_tokens=True,
        truncation=False,
        verbose=False,  # windows are the point: no "longer than the maximum" warning
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    ids = list(full["input_ids"])
    offsets = [(int(s), int(e)) for s, e in full["offset_mapping"]]
    special = [bool(m) for m in full["special_tokens_mask"]]
    lead = 0
    while lead < len(ids) and special[lead]:
        lead += 1
    trail = len(ids)
    while trail > lead and special[trail - 1]:
        trail -= 1
    capacity = max_length - lead - (len(ids) - trail)
    if capacity < 1:
        raise UserError(f"a window of {max_length} tokens has no room left beside the special tokens")
    step = stride if stride is not None else default_stride(capacity)
    if step < 1:
        raise UserError(f"--window-stride must be at least 1 token, not {step}")
    if step > capacity:
        raise UserError(
            f"--window-stride {step} is longer than a window's {capacity} content tokens, so text between "
            f"windows would be skipped; use a stride of at most {capacity}"
        )
    n_content = trail - lead
    if n_content <= capacity:
        whole = Encoded(ids, offsets, special, len(ids), False)
        return EncodedText((whole,), len(ids), False)
    windows = []
    start = 0
    while True:
        stop = min(start + capacity, n_content)
        keep = [*range(lead), *range(lead + start, lead + stop), *range(trail, len(ids))]
        windows.append(
            Encoded(
                [ids[i] for i in keep],
                [offsets[i] for i in keep],
                [special[i] for i in keep],
                len(keep),
                False,
            )
        )
        if stop == n_content:
            break
        # the last window ends at the text's end and is full, never a few tokens that would weigh
        # as much as a whole window in the mean (or win the max)
        start = min(start + step, n_content - capacity)
    return EncodedText(tuple(windows), len(ids), False)


def default_stride(capacity: int) -> int:
    """Half a window's content tokens."""
    return max(1, capacity // 2)


def combine_scores(window_scores: list[np.ndarray], aggregate: Aggregate) -> np.ndarray:
    """Per text, its (windows, outputs) scores -> (texts, outputs)."""
    reduce = np.mean if aggregate == "mean" else np.max
    return np.stack([reduce(scores, axis=0) for scores in window_scores])


def combine_token_attributions(
    frame: pd.DataFrame,
    windows: Sequence[Encoded],
    owners: Sequence[int],
    example_ids: Sequence[str],
    aggregate: Aggregate,
    window_scores: Sequence[np.ndarray] | None = None,
    output_index: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Token rows of windows -> token rows of their texts.

    ``frame`` holds rows whose ``example_id`` is the position of a window in ``windows`` (as a
    string); ``owners[k]`` is the text (index into ``example_ids``) window k belongs to. Mean: a
    token's attribution is the sum over the windows holding it divided by the text's number of
    windows; special tokens add up by their place (the k-th leading or k-th trailing special
    token of a window). Max: the rows of the window whose score (column ``output_index[text]``)
    is the largest. A text's convergence delta is the mean of its windows' deltas (null for
    gradient methods); its steps and completeness error are its windows' largest, and it converged
    when all its windows did.
    """
    if frame.empty:
        return frame
    columns = list(frame.columns)
    frame = frame.copy()
    window = frame["example_id"].astype(int).to_numpy()
    owner = np.asarray(owners)[window]
    frame["text"] = owner
    frame["example_id"] = np.asarray(example_ids, dtype=object)[owner]
    n_windows = np.bincount(np.asarray(owners), minlength=len(example_ids))
    if aggregate == "max":
        if window_scores is None or output_index is None:
            raise ValueError("max aggregation needs the window scores and the explained output")
        first = {text: k for k, text in reversed(list(enumerate(owners)))}
        best = {
            text: first[text] + int(np.argmax(scores[:, output_index[text]]))
            for text, scores in enumerate(window_scores)
        }
        chosen = frame[window == frame["text"].map(best).to_numpy()]
        return chosen[columns].reset_index(drop=True)
    # where each row sits: a real token by its characters; a special token by its place in the window
    place = []
    for k, index in zip(window, frame["token_index"], strict=True):
        special = windows[int(k)].special
        if not special[index]:
            place.append("text")
        elif not any(special[i] is False for i in range(index)):
            place.append(f"lead{index}")
        else:
            place.append(f"trail{len(special) - index}")
    frame["place"] = place
    keys = ["example_id", "text", "method", "output", "place", "char_start", "char_end", "token", "is_focus"]
    frame["window_number"] = window
    per_window = frame.drop_duplicates(["text", "method", "output", "window_number"])
    delta = (
        per_window.assign(convergence_delta=pd.to_numeric(per_window["convergence_delta"], errors="coerce"))
        .groupby(["text", "method", "output"])["convergence_delta"]
        .mean()
    )
    combined = frame.groupby(keys, sort=False, dropna=False)["attribution"].sum().reset_index()
    combined["attribution"] = combined["attribution"] / n_windows[combined["text"].to_numpy()]
    combined["convergence_delta"] = [
        delta.get((t, m, o), np.nan)
        for t, m, o in zip(combined["text"], combined["method"], combined["output"], strict=True)
    ]
    # integrated gradients' completeness: the text's is its worst window's (most steps, largest error)
    keys3 = ["text", "method", "output"]
    for column, reduce in (("n_steps", "max"), ("completeness_error", "max"), ("converged", "min")):
        if column in columns:
            per_text = per_window.groupby(keys3)[column].agg(reduce)
            values = [
                per_text.get((t, m, o), pd.NA)
                for t, m, o in zip(combined["text"], combined["method"], combined["output"], strict=True)
            ]
            combined[column] = pd.Series(values, index=combined.index, dtype=frame[column].dtype)
    order = np.where(
        combined["place"].str.startswith("lead"),
        -1.0,
        np.where(combined["place"].str.startswith("trail"), np.inf, combined["char_start"].astype(float)),
    )
    combined = combined.assign(order=order).sort_values(["text", "method", "output", "order"], kind="stable")
    combined["token_index"] = combined.groupby(["text", "method", "output"]).cumcount()
    return combined[columns].reset_index(drop=True)


def combine_attention(
    frame: pd.DataFrame, windows: Sequence[Encoded], owners: Sequence[int], example_ids: Sequence[str]
) -> pd.DataFrame:
    """Attention rows of windows -> rows of their texts: means weighted by each window's tokens
    (NaN values, e.g. focus mass of a window without focus tokens, are left out).

    ``frame`` holds rows whose ``example_id`` is the position of a window in ``windows`` (as a
    string); ``owners[k]`` is the text (index into ``example_ids``) window k belongs to.
    """
    if frame.empty:
        return frame
    frame = frame.copy()
    window = frame["example_id"].astype(int).to_numpy()
    frame["example_id"] = np.asarray(example_ids, dtype=object)[np.asarray(owners)[window]]
    weight = np.array([w.n_tokens for w in windows], dtype=float)[window]
    frame["weight"] = np.where(frame["value"].notna(), weight, 0.0)
    frame["weighted"] = frame["value"].fillna(0.0) * frame["weight"]
    grouped = frame.groupby(["example_id", "layer", "head", "stat"], sort=False)[["weighted", "weight"]].sum()
    grouped["value"] = (grouped["weighted"] / grouped["weight"]).where(grouped["weight"] > 0)
    result = grouped.reset_index()
    return result[["example_id", "layer", "head", "stat", "value"]].astype(
        {"example_id": "string", "stat": "string", "layer": "int64", "head": "int64", "value": "float64"}
    )
