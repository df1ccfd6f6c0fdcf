"""Segment attributions where the answer is known: closed forms on a bag-of-embeddings model, direct
ablation on a nonlinear model over sliding windows, and a tiny Llama on a 3k-token document."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from torch import nn
from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

from audit.attribution import TokenizedText, segment_attribution_rows, sentence_segments
from audit.errors import UserError
from audit.tables import TABLES

PAD, CLS, SEP = 0, 1, 2
CPU = torch.device("cpu")

FILLER = [
    "The river ran past the old mill.",
    "Dr. Smith kept bees behind the school.",
    "Rain fell on the market all morning!",
    "Who painted the blue door?",
    "J. Brown sold apples, pears and plums.",
    "The bus was late again.",
    "Snow covered the hills by noon.",
    "A cat slept on the warm wall.",
]
KEY = "The verdict was glowing praise."


def document(n_filler: int, key_after: int | None) -> tuple[str, tuple[int, int] | None]:
    """Filler sentences joined by spaces, the key sentence inserted after ``key_after`` of them."""
    sentences = [FILLER[i % len(FILLER)] for i in range(n_filler)]
    if key_after is not None:
        sentences.insert(key_after, KEY)
    text = " ".join(sentences)
    if key_after is None:
        return text, None
    start = text.index(KEY)
    return text, (start, start + len(KEY))


class WordVocabulary:
    """Whitespace-separated words -> ids (3 onwards; 0-2 are [PAD], [CLS], [SEP])."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        spans = [m.span() for m in re.finditer(r"\S+", text)]
        ids = [self.ids.setdefault(text[a:b], len(self.ids) + 3) for a, b in spans]
        return ids, spans


def windows_of(
    ids: Sequence[int], spans: Sequence[tuple[int, int]], size: int, stride: int
) -> list[TokenizedText]:
    """Sliding windows of ``size`` content tokens every ``stride`` tokens, each as [CLS] ... [SEP]."""
    starts = list(range(0, max(len(ids) - size, 0) + 1, stride))
    if starts[-1] + size < len(ids):
        starts.append(len(ids) - size)
    return [
        TokenizedText(
            input_ids=[CLS, *ids[s : s + size], SEP],
            offsets=[(0, 0), *spans[s : s + size], (0, 0)],
            special=[True] + [False] * len(ids[s : s + size]) + [True],
        )
        for s in starts
    ]


class BagOfEmbeddings(nn.Module):
    """f(x) = W (sum over attended tokens of their embeddings) + b: every ablation has a closed form."""

    def __init__(self, vocab_size: int = 128, dim: int = 6, n_outputs: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.linear = nn.Linear(dim, n_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.linear((self.embedding(input_ids) * attention_mask[..., None]).sum(dim=1))


class PositionalMLP(nn.Module):
    """A nonlinear score that depends on where tokens stand: softmax(MLP(mean of embedding + position))."""

    def __init__(self, vocab_size: int = 128, dim: int = 8, max_positions: int = 64) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.position = nn.Embedding(max_positions, dim)
        self.hidden = nn.Linear(dim, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        states = self.embedding(input_ids) + self.position(positions)[None]
        mask = attention_mask[..., None].float()
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1)
        return torch.softmax(self.out(torch.tanh(self.hidden(pooled) * 3)), dim=-1)


def scalar(model: nn.Module, encoded: TokenizedText, output: int, replace: set[int] | None = None) -> float:
    """f of one window, with the tokens at the positions in ``replace`` turned into [PAD]."""
    ids = [PAD if replace and i in replace else t for i, t in enumerate(encoded.input_ids)]
    with torch.no_grad():
        scores = model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
    return float(scores[0, output])


def positions_in(encoded: TokenizedText, span: tuple[int, int]) -> set[int]:
    return {
        i
        for i, ((a, b), special) in enumerate(zip(encoded.offsets, encoded.special, strict=True))
        if not special and span[0] <= a and b <= span[1]
    }


def spans_of(frame: pd.DataFrame) -> list[tuple[int, int]]:
    return list(
        zip(frame["char_start"].astype(int).tolist(), frame["char_end"].astype(int).tolist(), strict=True)
    )


# --- sentence_segments ---------------------------------------------------------------------------


def assert_covers(text: str, segments: list[tuple[int, int]]) -> None:
    assert segments[0][0] == 0 and segments[-1][1] == len(text)
    for (_, end), (start, _) in zip(segments[:-1], segments[1:], strict=True):
        assert end == start
    assert all(b > a for a, b in segments)


def test_sentences_split_at_their_ends_but_not_after_abbreviations() -> None:
    text = "Dr. Smith arrived. Was J. Brown there? Yes! He said 'no.' Then e.g. tea was served."
    segments = sentence_segments(text, [])
    assert_covers(text, segments)
    assert [text[a:b].strip() for a, b in segments] == [
        "Dr. Smith arrived.",
        "Was J. Brown there?",
        "Yes!",
        "He said 'no.'",
        "Then e.g. tea was served.",
    ]
    # the whitespace after a sentence stays with it: segments start on the next sentence's first letter
    assert [text[a] for a, _ in segments] == ["D", "W", "Y", "H", "T"]


@pytest.mark.parametrize("key_after", [0, 37, 80])
def test_keys_stay_exact_and_max_segments_holds(key_after: int) -> None:
    text, key = document(80, key_after)
    assert key is not None
    segments = sentence_segments(text, [key], max_segments=9)
    assert_covers(text, segments)
    assert len(segments) == 9
    assert key in segments  # the key sentence is one segment, exactly its characters
    # the other segments are runs of whole sentences of about equal length (never across the key)
    others = [(a, b) for a, b in segments if (a, b) != key]
    for a, b in others:
        assert not (a < key[1] and key[0] < b)
    before = [b - a for a, b in others if b <= key[0]]
    after = [b - a for a, b in others if a >= key[1]]
    for lengths in (before, after):
        if len(lengths) > 1:
            assert max(lengths) < 2 * min(lengths)


def test_two_keys_and_a_text_with_no_sentence_end() -> None:
    text = "one long run of words without an end " * 5 + "KEY ONE" + " middle" + "KEY TWO"
    first = (text.index("KEY ONE"), text.index("KEY ONE") + 7)
    second = (text.index("KEY TWO"), len(text))
    segments = sentence_segments(text, [second, first], max_segments=32)
    assert segments == [(0, first[0]), first, (first[1], second[0]), second]
    assert sentence_segments("", []) == []
    assert sentence_segments("Only one.", [(0, 9)]) == [(0, 9)]


def test_impossible_segmentations_say_what_to_change() -> None:
    text, key = document(4, 2)
    assert key is not None
    with pytest.raises(ValueError, match="allow at least 3 segments"):
        sentence_segments(text, [key], max_segments=2)
    with pytest.raises(ValueError, match="overlap"):
        sentence_segments(text, [key, (key[0] + 1, key[1] + 3)])
    with pytest.raises(ValueError, match="not a non-empty span"):
        sentence_segments(text, [(len(text) - 2, len(text) + 5)])


# --- segment ablation and gradient x input on models with known answers --------------------------


@pytest.fixture
def planted_bag() -> tuple[BagOfEmbeddings, WordVocabulary]:
    """A bag of embeddings in which the key sentence's words push output 1 up and all else is small."""
    torch.manual_seed(0)
    vocabulary = WordVocabulary()
    model = BagOfEmbeddings()
    vocabulary.encode(" ".join(FILLER))
    first_new_id = len(vocabulary.ids) + 3
    key_only = [t for t in vocabulary.encode(KEY)[0] if t >= first_new_id]  # verdict, glowing, praise.
    assert len(key_only) == 3
    with torch.no_grad():
        model.embedding.weight.mul_(0.1)
        model.embedding.weight[PAD] = 0.0
        model.linear.weight.copy_(torch.tensor([[1.0, -1.0, 0, 0, 0, 0], [0, 0, 1.0, 0, 0, 0]]))
        for token in key_only:
            model.embedding.weight[token, 2] = 2.0
    return model.eval(), vocabulary


def test_ablation_is_exact_on_a_bag_of_embeddings_and_finds_the_planted_key(planted_bag) -> None:
    model, vocabulary = planted_bag
    text, key = document(12, 5)
    assert key is not None
    ids, spans = vocabulary.encode(text)
    window = windows_of(ids, spans, size=len(ids), stride=1)[0]
    frame = segment_attribution_rows(
        forward=model,
        windows=[[window]],
        example_ids=["set/key-128/p040"],
        texts=[text],
        key_spans=[[key]],
        output_indices=[1],
        output_names=["prob:negative", "prob:positive"],
        pad_id=PAD,
        device=CPU,
        max_segments=6,
        batch_tokens=4 * len(window.input_ids),  # several ablations per forward pass
    )
    assert list(frame.columns) == TABLES["segment_attributions"]
    assert len(frame) == 6 and (frame["method"] == "segment_ablation").all()
    assert (frame["output"] == "prob:positive").all()
    embedding = model.embedding.weight.detach().double()
    weight = model.linear.weight.detach().double()[1]
    for row in frame.itertuples():
        # f(x) - f(x with the segment's words turned to [PAD]) = sum of (e(w) - e(pad)) . W
        words = [t for t, (a, b) in zip(ids, spans, strict=True) if row.char_start <= a and b <= row.char_end]
        expected = float(((embedding[words] - embedding[PAD]) @ weight).sum())
        assert row.attribution == pytest.approx(expected, abs=1e-5)
        assert row.n_tokens == len(words)
    key_row = frame.iloc[int(frame["attribution"].to_numpy().argmax())]
    assert bool(key_row["is_key"]) and (key_row["char_start"], key_row["char_end"]) == key
    assert frame["is_key"].sum() == 1
    assert key_row["attribution"] > 5 * frame.loc[~frame["is_key"], "attribution"].abs().max()


def test_gradient_x_input_sums_tokens_per_segment(planted_bag) -> None:
    model, vocabulary = planted_bag
    text, key = document(10, 3)
    assert key is not None
    ids, spans = vocabulary.encode(text)
    windows = windows_of(ids, spans, size=20, stride=12)
    assert len(windows) > 2
    embedding = model.embedding.weight.detach().double()
    weight = model.linear.weight.detach().double()[1]
    for aggregate in ("mean", "max"):
        frame = segment_attribution_rows(
            forward=model,
            windows=[windows],
            example_ids=["e"],
            texts=[text],
            key_spans=[[key]],
            output_indices=[1],
            output_names=["a", "b"],
            methods=["gradient_x_input"],
            aggregate=aggregate,
            pad_id=PAD,
            device=CPU,
            embedding_layer=model.embedding,
            max_segments=5,
            batch_tokens=30,
        )
        per_window = []
        for w in windows:
            sums = []
            for span in spans_of(frame):
                inside = positions_in(w, span)
                tokens = [w.input_ids[i] for i in sorted(inside)]
                sums.append(float((embedding[tokens] @ weight).sum()) if tokens else 0.0)
            per_window.append(sums)
        if aggregate == "mean":
            expected = np.mean(per_window, axis=0)
        else:
            best = int(np.argmax([scalar(model, w, 1) for w in windows]))
            expected = np.asarray(per_window[best])
        np.testing.assert_allclose(frame["attribution"].to_numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("aggregate", ["mean", "max"])
def test_windows_combine_like_the_scorer_combines_them(aggregate: str) -> None:
    """mean/max of window scores, ablated segment by segment, equals the attributions exactly."""
    torch.manual_seed(3)
    model = PositionalMLP().eval()
    vocabulary = WordVocabulary()
    texts, keys, windows = [], [], []
    for n_filler, key_after, size, stride in [(9, 4, 16, 8), (5, 0, 12, 5), (3, 3, 40, 40)]:
        text, key = document(n_filler, key_after)
        assert key is not None
        ids, spans = vocabulary.encode(text)
        texts.append(text)
        keys.append([key])
        windows.append(windows_of(ids, spans, size=size, stride=stride))
    assert [len(w) for w in windows][:2] > [1, 1]
    common: dict[str, Any] = dict(
        forward=model,
        windows=windows,
        example_ids=["a", "b", "c"],
        texts=texts,
        key_spans=keys,
        output_indices=[2, 0, 1],
        output_names=["x", "y", "z"],
        aggregate=aggregate,
        pad_id=PAD,
        device=CPU,
        max_segments=7,
    )
    done: list[int] = []
    frame = segment_attribution_rows(**common, batch_tokens=25, on_done=done.append)  # one window a pass
    wide = segment_attribution_rows(**common, batch_tokens=100_000)  # everything in one batch
    assert len(done) > 3 and sum(done) == sum(len(w) for w in windows)
    np.testing.assert_allclose(frame["attribution"], wide["attribution"], atol=1e-6)
    reduce = np.mean if aggregate == "mean" else np.max
    for example, (example_id, output) in enumerate([("a", 2), ("b", 0), ("c", 1)]):
        rows = frame[frame["example_id"] == example_id]
        assert (rows["output"] == ["x", "y", "z"][output]).all()
        assert list(rows["segment_index"]) == list(range(len(rows)))
        full = reduce([scalar(model, w, output) for w in windows[example]])
        for span, attribution in zip(spans_of(rows), rows["attribution"], strict=True):
            ablated = reduce([scalar(model, w, output, positions_in(w, span)) for w in windows[example]])
            assert attribution == pytest.approx(full - ablated, abs=1e-5)
        # overlapping windows: every word counted once
        assert rows["n_tokens"].sum() == len(texts[example].split())
    assert frame["attribution"].abs().max() > 1e-3  # the model does respond to the segments


def test_truncated_segments_are_kept_with_zero_tokens_and_zero_attribution(planted_bag) -> None:
    model, vocabulary = planted_bag
    text, key = document(12, 10)
    assert key is not None
    ids, spans = vocabulary.encode(text)
    cut = windows_of(ids, spans, size=30, stride=30)[0]  # strategy "truncate": the first window only
    last_reached = cut.offsets[-2][1]
    assert last_reached < key[0]
    frame = segment_attribution_rows(
        forward=model,
        windows=[[cut]],
        example_ids=["e"],
        texts=[text],
        key_spans=[[key]],
        output_indices=[1],
        output_names=["a", "b"],
        methods=["segment_ablation", "gradient_x_input"],
        aggregate="max",
        pad_id=PAD,
        device=CPU,
        embedding_layer=model.embedding,
        max_segments=8,
    )
    assert len(frame) == 16  # every segment of the text, for both methods
    gone = frame[frame["char_start"] >= last_reached]
    assert len(gone) >= 4 and gone["is_key"].sum() == 2
    assert (gone["n_tokens"] == 0).all() and (gone["attribution"] == 0.0).all()
    reached = frame[frame["char_start"] < last_reached]
    assert reached.groupby("method")["n_tokens"].sum().tolist() == [30, 30]
    assert (reached["attribution"] != 0.0).all()


def test_a_token_that_carries_the_space_before_it_belongs_to_the_word() -> None:
    """SentencePiece/BPE offsets often start on the space before a word ("▁The")."""
    text = "Rain fell. The verdict was good. Snow fell."
    key = (text.index("The"), text.index("good.") + 5)
    words = [m.span() for m in re.finditer(r"\S+", text)]
    with_space = [(a - 1, b) if a > 0 else (a, b) for a, b in words]
    encoded = TokenizedText(
        input_ids=[CLS, *range(3, 3 + len(words))],
        offsets=[(0, 0), *with_space],
        special=[True] + [False] * len(words),
    )
    torch.manual_seed(0)
    frame = segment_attribution_rows(
        forward=BagOfEmbeddings(),
        windows=[[encoded]],
        example_ids=["e"],
        texts=[text],
        key_spans=[[key]],
        output_indices=[0],
        output_names=["a", "b"],
        pad_id=PAD,
        device=CPU,
    )
    assert frame["n_tokens"].tolist() == [2, 4, 2]
    assert frame["is_key"].tolist() == [False, True, False]


def test_bad_arguments_name_the_fix(planted_bag) -> None:
    model, vocabulary = planted_bag
    text, key = document(3, 1)
    assert key is not None
    ids, spans = vocabulary.encode(text)
    window = windows_of(ids, spans, size=len(ids), stride=1)[0]
    common: dict[str, Any] = dict(
        forward=model,
        windows=[[window]],
        example_ids=["e"],
        texts=[text],
        key_spans=[[key]],
        output_names=["a", "b"],
        pad_id=PAD,
        device=CPU,
    )
    with pytest.raises(UserError, match="choose from.*segment_ablation"):
        segment_attribution_rows(**common, output_indices=[0], methods=["integrated_gradients"])
    with pytest.raises(UserError, match="'mean', 'max'"):
        segment_attribution_rows(**common, output_indices=[0], aggregate="median")
    with pytest.raises(ValueError, match="embedding_layer"):
        segment_attribution_rows(**common, output_indices=[0], methods=["gradient_x_input"])
    with pytest.raises(ValueError, match="output index 2 is not a column"):
        segment_attribution_rows(**common, output_indices=[2])
    with pytest.raises(ValueError, match="offsets run past the end"):
        segment_attribution_rows(**{**common, "texts": [text[:10]], "key_spans": [[]]}, output_indices=[0])


# --- a tiny Llama on a long input -----------------------------------------------------------------


def word_tokenizer(folder: Path, words: Sequence[str]) -> PreTrainedTokenizerFast:
    """A Llama-like word-level tokenizer (<s> prepended, no end token) with real offsets."""
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(set(words)))}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(folder)
    return PreTrainedTokenizerFast.from_pretrained(folder)


def test_tiny_llama_explains_a_3k_token_document_with_forward_passes_only(tmp_path: Path) -> None:
    text, key = document(420, 210)
    assert key is not None
    tokenizer = word_tokenizer(tmp_path, text.split())
    encoded = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    window = TokenizedText(
        input_ids=list(encoded["input_ids"]),
        offsets=[(int(a), int(b)) for a, b in encoded["offset_mapping"]],
        special=[bool(m) for m in encoded["special_tokens_mask"]],
    )
    n_tokens = len(window.input_ids)
    assert 2500 < n_tokens < 4000
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention, rotary positions
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForSequenceClassification(config).eval()
    calls: list[tuple[bool, int]] = []

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        calls.append((torch.is_grad_enabled(), input_ids.numel()))
        return torch.softmax(model(input_ids=input_ids, attention_mask=attention_mask).logits.float(), -1)

    batch_tokens = 2 * n_tokens + 10  # two ablated copies per forward pass
    frame = segment_attribution_rows(
        forward=forward,
        windows=[[window]],
        example_ids=["long/key-4096/p050"],
        texts=[text],
        key_spans=[[key]],
        output_indices=[1],
        output_names=["prob:a", "prob:b"],
        pad_id=tokenizer.pad_token_id,
        device=CPU,
        max_segments=7,
        batch_tokens=batch_tokens,
    )
    assert len(frame) == 7 and frame["is_key"].sum() == 1
    assert frame["n_tokens"].sum() == n_tokens - 1  # every word, not <s>
    assert np.isfinite(frame["attribution"]).all() and frame["attribution"].abs().max() > 0
    # forward passes only, none larger than the budget: 1 + ceil(7 segments / 2) passes
    assert calls and not any(grad for grad, _ in calls)
    assert max(size for _, size in calls) <= batch_tokens and len(calls) == 5
    # the key row is the score change from turning the key sentence's tokens into <pad>
    key_row = frame[frame["is_key"]].iloc[0]
    inside = positions_in(window, key)
    ids = torch.tensor([window.input_ids])
    ablated = torch.tensor(
        [[tokenizer.pad_token_id if i in inside else t for i, t in enumerate(window.input_ids)]]
    )
    mask = torch.ones_like(ids)
    with torch.no_grad():
        change = forward(ids, mask)[0, 1] - forward(ablated, mask)[0, 1]
    assert key_row["attribution"] == pytest.approx(float(change), abs=1e-5)
    frame.to_parquet(tmp_path / "segment_attributions.parquet")
    back = pd.read_parquet(tmp_path / "segment_attributions.parquet")
    assert list(back.columns) == TABLES["segment_attributions"] and len(back) == 7
