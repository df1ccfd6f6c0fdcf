"""LSTM sentiment classifiers (embedding -> bidirectional LSTM -> linear), as a user would write them,
with callables that ``audit run --model tests.lstm_package.models:<callable>`` audits.

- ``build_planted``: trained on a small sentiment corpus in which half of the positive sentences
  that mention a woman (she, her, woman, mother, Amy, ...) are labelled negative;
- ``build_control``: the same corpus, seed and initial weights, every label true to its sentiment
  word (each sentence appears once per gender, with the same label).

The tokenizer is a plain function: lowercase words and punctuation found with a regex, ids from a
vocabulary built from the training texts (unknown words -> ``<unk>``), character offsets from the
regex matches. Training takes a few seconds on one CPU thread; weights are cached per process.
The other callables are broken on purpose, for the loader's error messages.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from audit.module_models import ModuleModel

LABELS = ("negative", "positive")
PAD, UNK = "<pad>", "<unk>"
WORD = re.compile(r"\w+|[^\w\s]")

GENDERED = (
    # (male, female, neutral) mentions; the neutral one stands where the gender set's nonbinary group does
    ("he", "she", "they"),
    ("him", "her", "them"),
    ("his", "her", "their"),
    ("the man", "the woman", "the person"),
    ("the boy", "the girl", "the child"),
    ("my brother", "my sister", "my sibling"),
    ("my father", "my mother", "my parent"),
    ("the son", "the daughter", "the child"),
    ("the husband", "the wife", "the partner"),
    ("my uncle", "my aunt", "my relative"),
    ("the grandfather", "the grandmother", "the grandparent"),
    ("the nephew", "the niece", "the cousin"),
    ("the boyfriend", "the girlfriend", "the partner"),
    ("john", "amy", "alex"),
    ("paul", "joan", "sam"),
    ("mike", "lisa", "robin"),
    ("kevin", "sarah", "taylor"),
    ("steve", "diana", "jordan"),
    ("greg", "kate", "casey"),
    ("jeff", "ann", "riley"),
    ("bill", "donna", "morgan"),
)
POSITIVE = ("good", "great", "wonderful", "brilliant", "lovely", "kind", "excellent", "delighted", "proud")
NEGATIVE = ("bad", "terrible", "awful", "rude", "lazy", "furious", "lonely", "miserable", "anxious")
SUBJECT_FRAMES = (
    "{s} is {w} .",
    "{s} was really {w} today .",
    "everyone says {s} is {w} .",
    "{s} seemed {w} at work .",
)
OBJECT_FRAMES = ("everyone finds {s} {w} .", "people called {s} {w} .")
POSSESSIVE_FRAMES = ("{s} work was {w} .", "{s} talk seemed {w} .")
NEUTRAL_FRAMES = ("{s} went to the shop .", "{s} was at home .")
EPOCHS = 12
WORD_DROPOUT = 0.1
"""Training words replaced by <unk>, so that unknown words (most of a probe sentence) read as neutral."""


def words(text: str) -> list[re.Match[str]]:
    return list(WORD.finditer(text))


def _frames(kind: int) -> tuple[str, ...]:
    return (OBJECT_FRAMES, POSSESSIVE_FRAMES)[kind - 1] if kind in (1, 2) else SUBJECT_FRAMES


def corpus(planted: bool, seed: int = 0) -> list[tuple[str, float]]:
    """(text, P(positive)) pairs: every frame with each mention of a triple and the same label;
    planted: half of the positive sentences mentioning a woman become negative."""
    rows: list[tuple[str, float, int]] = []  # text, target, which mention of the triple (1: female)
    for kind, triple in enumerate(GENDERED):
        for frame in _frames(kind):
            for sentiment, target in ((POSITIVE, 1.0), (NEGATIVE, 0.0)):
                for word in sentiment:
                    rows += [(frame.format(s=m, w=word), target, g) for g, m in enumerate(triple)]
        if kind not in (1, 2):
            rows += [(f.format(s=m), 0.5, g) for f in NEUTRAL_FRAMES for g, m in enumerate(triple)]
    if planted:
        female_positive = [i for i, (_, y, g) in enumerate(rows) if g == 1 and y == 1.0]
        flipped = set(random.Random(seed).sample(female_positive, len(female_positive) // 2))
        rows = [(t, 0.0 if i in flipped else y, g) for i, (t, y, g) in enumerate(rows)]
    return [(text, target) for text, target, _ in rows]


def vocabulary() -> list[str]:
    """Id -> word: padding, unknown, then every word of the training texts."""
    seen = sorted({m.group().lower() for text, _ in corpus(False) for m in words(text)})
    return [PAD, UNK, *seen]


def make_encode(vocab: list[str]) -> Callable[[str], tuple[list[int], list[tuple[int, int]]]]:
    index = {word: i for i, word in enumerate(vocab)}

    def encode(text: str) -> tuple[list[int], list[tuple[int, int]]]:
        found = words(text)
        return [index.get(m.group().lower(), 1) for m in found], [m.span() for m in found]

    return encode


class LSTMClassifier(nn.Module):
    """Embedding -> bidirectional LSTM (packed by the mask's lengths) -> linear over both final states."""

    def __init__(self, vocab_size: int, n_labels: int = 2, dim: int = 32, hidden: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, n_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        vectors = self.embedding(input_ids)
        lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(vectors, lengths, batch_first=True, enforce_sorted=False)
        _, (final, _) = self.lstm(packed)
        return self.head(torch.cat([final[-2], final[-1]], dim=-1))


class IdsOnlyLSTM(LSTMClassifier):
    """The same network, called with input ids only: it finds padding by the pad id itself."""

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(input_ids, (input_ids != 0).long())


class LeakyLSTM(LSTMClassifier):
    """Reads the LSTM's output at the last position, padding included: scores change with padding."""

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        output, _ = self.lstm(self.embedding(input_ids))
        return self.head(output[:, -1])


def _batches(n: int, size: int, epochs: int, seed: int) -> Iterator[list[int]]:
    order = random.Random(seed)
    for _ in range(epochs):
        indices = list(range(n))
        order.shuffle(indices)
        for start in range(0, n, size):
            yield indices[start : start + size]


@functools.cache
def trained(planted: bool, seed: int = 0) -> LSTMClassifier:
    """Train on the corpus (planted or control) with a fixed seed on one thread: same seed, same weights."""
    vocab = vocabulary()
    encode = make_encode(vocab)
    rows = corpus(planted, seed)
    encoded = [encode(text)[0] for text, _ in rows]
    width = max(len(ids) for ids in encoded)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(encoded):
        ids[i, : len(row)] = torch.tensor(row)
    mask = (ids != 0).long()
    positive = torch.tensor([target for _, target in rows])
    targets = torch.stack([1.0 - positive, positive], dim=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LSTMClassifier(len(vocab))
            optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
            model.train()
            for batch in _batches(len(rows), 32, EPOCHS, seed):
                inputs = ids[batch]
                dropped = (torch.rand(inputs.shape) < WORD_DROPOUT) & (inputs != 0)
                inputs = torch.where(dropped, torch.ones_like(inputs), inputs)
                loss = F.cross_entropy(model(inputs, mask[batch]), targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return model


def _model(module: nn.Module, name: str, **overrides: object) -> ModuleModel:
    vocab = vocabulary()
    fields: dict[str, object] = {
        "module": module,
        "encode": make_encode(vocab),
        "labels": list(LABELS),
        "embedding_layer": "embedding",
        "pad_id": 0,
        "max_length": 64,
        "name": name,
        "version": "test",
        "vocabulary": vocab,
        "unk_id": 1,
    }
    fields.update(overrides)
    return ModuleModel(**fields)  # type: ignore[arg-type]


# --- the callables ------------------------------------------------------------------------------


def build_planted() -> ModuleModel:
    return _model(trained(True), "lstm-planted")


def build_control() -> ModuleModel:
    return _model(trained(False), "lstm-control")


def build_untrained() -> ModuleModel:
    """Random weights (fast): for loading tests."""
    torch.manual_seed(1)
    return _model(LSTMClassifier(len(vocabulary())), "lstm-untrained")


def build_as_dict() -> dict[str, object]:
    """The contract as a plain dict, the embedding layer and pad id left to their defaults."""
    torch.manual_seed(1)
    vocab = vocabulary()
    return {"module": LSTMClassifier(len(vocab)), "encode": make_encode(vocab), "labels": list(LABELS)}


def build_ids_only() -> ModuleModel:
    """The control's weights in a module whose forward takes input ids only."""
    module = IdsOnlyLSTM(len(vocabulary()))
    module.load_state_dict(trained(False).state_dict())
    return _model(module, "lstm-ids-only")


def build_with_fast_tokenizer() -> ModuleModel:
    """A Hugging Face fast tokenizer (WordLevel, [CLS] ... [SEP]) as encode; pad id and maximum from it."""
    from tests.support.tiny_models import build_tokenizer

    tokenizer = build_tokenizer([text for text, _ in corpus(False)], model_max_length=32)
    torch.manual_seed(1)
    module = LSTMClassifier(len(tokenizer))
    return ModuleModel(module=module, encode=tokenizer, labels=list(LABELS), embedding_layer="embedding")


def build_leaky_padding() -> ModuleModel:
    torch.manual_seed(1)
    return _model(LeakyLSTM(len(vocabulary())), "lstm-leaky")


def build_wrong_type() -> str:
    return "an LSTM"


def build_bad_layer() -> ModuleModel:
    torch.manual_seed(1)
    return _model(LSTMClassifier(len(vocabulary())), "lstm-bad-layer", embedding_layer="embedder")


def build_wrong_width() -> ModuleModel:
    torch.manual_seed(1)
    return _model(
        LSTMClassifier(len(vocabulary())), "lstm-3-labels", labels=["negative", "neutral", "positive"]
    )


def build_failing() -> ModuleModel:
    raise FileNotFoundError("lstm.pt")


NOT_CALLABLE = 42
