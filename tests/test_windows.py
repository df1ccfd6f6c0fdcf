"""Sliding windows (audit/windows.py): how a long text is cut, and how window results combine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.batching import Encoded
from audit.errors import UserError
from audit.windows import (
    LongInputPolicy,
    combine_attention,
    combine_scores,
    combine_token_attributions,
    encode_long,
    window_text,
)
from tests.support.tiny_models import build_tokenizer

WORDS = [f"w{i}" for i in range(40)]
TEXT = " ".join(WORDS)  # 40 tokens + [CLS] [SEP]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer([TEXT], model_max_length=12)


def _content(window: Encoded) -> list[int]:
    return [i for i, special in zip(window.input_ids, window.special, strict=True) if not special]


def test_windows_are_full_cover_the_text_and_keep_the_special_tokens(tokenizer) -> None:
    text = window_text(tokenizer, TEXT, max_length=12, stride=4)  # 10 content tokens per window
    whole = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    starts = []
    for window in text.windows:
        assert window.n_tokens == 12 and window.special[0] and window.special[-1]
        content = _content(window)
        start = whole.index(content[0])
        assert content == whole[start : start + 10]
        starts.append(start)
    assert starts == [0, 4, 8, 12, 16, 20, 24, 28, 30]  # the last one moved back to end at the text's end
    assert text.n_tokens == 42 and not text.truncated
    covered = {i for s in starts for i in range(s, s + 10)}
    assert covered == set(range(40))


def test_a_text_that_fits_is_one_window_and_truncation_is_flagged(tokenizer) -> None:
    short = window_text(tokenizer, "w1 w2 w3", max_length=12, stride=None)
    assert len(short.windows) == 1 and short.windows[0].n_tokens == 5
    cut = encode_long(tokenizer, [TEXT], 12, LongInputPolicy("truncate"))[0]
    assert cut.truncated and len(cut.windows) == 1 and cut.first.n_tokens == 12 and cut.n_tokens == 42


@pytest.mark.parametrize("stride", [0, 11])
def test_a_stride_that_would_skip_or_loop_is_refused(tokenizer, stride: int) -> None:
    with pytest.raises(UserError, match="stride"):
        window_text(tokenizer, TEXT, max_length=12, stride=stride)


def test_scores_combine_by_mean_or_max() -> None:
    windows = [np.array([[0.1, 0.9], [0.5, 0.5]]), np.array([[0.3, 0.7]])]
    assert np.allclose(combine_scores(windows, "mean"), [[0.3, 0.7], [0.3, 0.7]])
    assert np.allclose(combine_scores(windows, "max"), [[0.5, 0.9], [0.3, 0.7]])


def _window(ids: list[int], offsets: list[tuple[int, int]]) -> Encoded:
    special = [o == (0, 0) for o in offsets]
    return Encoded(ids, offsets, special, len(ids), False)


def test_token_attributions_of_windows_add_up_per_token_and_special_place() -> None:
    # text "a b c": window 0 = [CLS] a b [SEP], window 1 = [CLS] b c [SEP]
    windows = [
        _window([2, 5, 6, 3], [(0, 0), (0, 1), (2, 3), (0, 0)]),
        _window([2, 6, 7, 3], [(0, 0), (2, 3), (4, 5), (0, 0)]),
    ]
    rows = []
    for k, (tokens, values, delta) in enumerate(
        [
            (("[CLS]", "a", "b", "[SEP]"), (0.1, 1.0, 2.0, 0.2), 0.01),
            (("[CLS]", "b", "c", "[SEP]"), (0.3, 4.0, 6.0, 0.4), 0.03),
        ]
    ):
        for index, (token, value) in enumerate(zip(tokens, values, strict=True)):
            start, end = windows[k].offsets[index]
            rows.append(
                {"example_id": str(k), "method": "gradient_x_input", "output": "prob:positive", "token_index": index,
                 "token": token, "char_start": start, "char_end": end, "attribution": value, "is_focus": False,
                 "convergence_delta": delta}
            )  # fmt: skip
    frame = pd.DataFrame(rows)
    mean = combine_token_attributions(frame, windows, [0, 0], ["t/x/a"], "mean")
    assert list(mean["token"]) == ["[CLS]", "a", "b", "c", "[SEP]"]
    assert np.allclose(mean["attribution"], [0.2, 0.5, 3.0, 3.0, 0.3])  # sums over windows / 2
    assert list(mean["token_index"]) == [0, 1, 2, 3, 4] and set(mean["example_id"]) == {"t/x/a"}
    assert np.allclose(mean["convergence_delta"], 0.02)  # the text's: the mean of its windows'
    scores = [np.array([[0.2, 0.8], [0.4, 0.6]])]  # window 0 has the larger prob:positive (column 1)
    best = combine_token_attributions(frame, windows, [0, 0], ["t/x/a"], "max", scores, [1])
    assert list(best["token"]) == ["[CLS]", "a", "b", "[SEP]"] and np.allclose(
        best["attribution"], [0.1, 1.0, 2.0, 0.2]
    )


def test_attention_of_windows_is_weighted_by_their_tokens_and_skips_missing_focus() -> None:
    # text x has windows 0 (10 tokens) and 1 (30 tokens); text y is window 2 (5 tokens)
    windows = [_window([2] * n, [(0, 0)] * n) for n in (10, 30, 5)]
    frame = pd.DataFrame(
        {
            "example_id": ["0", "1", "0", "1", "2", "2"],
            "layer": [0] * 6,
            "head": [0] * 6,
            "stat": ["entropy", "entropy", "focus_mass", "focus_mass", "entropy", "focus_mass"],
            "value": [1.0, 4.0, 0.5, np.nan, 2.0, 0.1],
        }
    )
    combined = combine_attention(frame, windows, [0, 0, 1], ["x", "y"]).set_index(["example_id", "stat"])
    assert combined.loc[("x", "entropy"), "value"] == pytest.approx((10 * 1.0 + 30 * 4.0) / 40)
    assert combined.loc[("x", "focus_mass"), "value"] == pytest.approx(0.5)  # only the window holding the key
    assert combined.loc[("y", "entropy"), "value"] == pytest.approx(2.0)
