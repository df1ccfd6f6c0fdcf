"""Tiny long-input models and a long-document probe file, built locally for the long-document tests.

- ``train_key_reader``: a tiny BERT classifier with a hard 512-position limit, trained on filler
  documents of 8-500 words holding one key sentence (positive or negative) anywhere in them, so
  it reads a key sentence wherever it stands inside its window. Behind the limit it cannot see
  anything: under truncation a key sentence placed past token 512 must have exactly no effect.
- ``build_long_llama`` / ``build_long_modernbert``: random-init sequence classifiers with 4096
  positions (Llama-style: grouped-query attention, rotary; ModernBERT: global and sliding-window
  layers), saved with their tokenizer: the architectures a 32k-token audit runs on.
- ``write_long_probe_file``: a long-document probe set over the same closed vocabulary.

Key sentences and filler use words the tokenizer knows; the probe's key sentences are not the
training ones, so the test measures what generalised.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    ModernBertConfig,
    ModernBertForSequenceClassification,
)

from tests.support.tiny_models import CLASSIFIER_LABELS, build_tokenizer, deterministic

FILLER = (
    "the river runs past the old mill and the stone bridge",
    "trains leave the north station every hour on weekdays",
    "the library opens at nine and closes at six",
    "rain is expected in the valley later in the week",
    "the road to the harbour follows the line of the hills",
    "the museum keeps maps of the region from many years",
    "a ferry crosses the lake twice a day in summer",
    "the market square has a fountain and a clock tower",
    "wheat and barley grow in the fields to the east",
    "the tunnel under the hill is two miles long",
    "the park has paths for walking and for bicycles",
    "the town hall stands at the end of the main street",
    "snow covers the mountain passes for part of the year",
    "the bus to the airport stops outside the post office",
    "the canal was dug to carry coal to the coast",
    "the forest to the west is mostly pine and birch",
)
TRAIN_KEYS = {
    "positive": (
        "the film was wonderful and i loved it",
        "a brilliant and excellent show from start to end",
        "i loved the food and the staff were kind",
        "this was a great and wonderful day out",
    ),
    "negative": (
        "the film was awful and i hated it",
        "a terrible and boring show from start to end",
        "i hated the food and the staff were rude",
        "this was an awful and terrible day out",
    ),
}
PROBE_KEYS = {
    "positive": (
        "the concert was brilliant and the band were wonderful",
        "we loved the hotel and the rooms were excellent",
        "a great book that i loved reading",
        "the service was excellent and the staff were kind",
        "what a wonderful film and a great cast",
        "the staff were excellent and i loved the show",
        "a kind and brilliant host made it a great evening",
        "i loved this wonderful and excellent museum",
    ),
    "negative": (
        "the concert was awful and the band were terrible",
        "we hated the hotel and the rooms were boring",
        "a terrible book that i hated reading",
        "the service was awful and the staff were rude",
    ),
}
LIMIT = 512
"""Position limit of the key reader (tokens, special tokens included)."""


def _vocabulary() -> list[str]:
    keys = [k for group in (TRAIN_KEYS, PROBE_KEYS) for texts in group.values() for k in texts]
    return [*FILLER, *keys, "she he said ."]


def _document(rng: random.Random, key: str | None, n_words: int) -> str:
    words: list[str] = []
    sentences = []
    while len(words) < n_words:
        sentence = rng.choice(FILLER)
        sentences.append(sentence)
        words += sentence.split()
    if key is not None:
        sentences.insert(rng.randrange(len(sentences) + 1), key)
    return " . ".join(sentences) + " ."


def train_key_reader(dest: Path, *, seed: int = 0, steps: int = 400) -> Path:
    """A BertForSequenceClassification (negative/positive, 512 positions) that reads key sentences."""
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(_vocabulary(), model_max_length=LIMIT)
    rng = random.Random(seed)
    with deterministic(seed):
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=LIMIT,
            pad_token_id=0,
            num_labels=2,
            id2label=dict(enumerate(CLASSIFIER_LABELS)),
            label2id={label: i for i, label in enumerate(CLASSIFIER_LABELS)},
        )
        model = BertForSequenceClassification(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        for step in range(steps):
            n_words = 8 + (step * 37) % 440  # short and long documents alike
            kinds = [rng.randrange(3) for _ in range(16)]  # 0 negative key, 1 positive key, 2 no key
            texts = [
                _document(
                    rng,
                    rng.choice(TRAIN_KEYS[CLASSIFIER_LABELS[k]]) if k < 2 else None,
                    rng.randint(n_words // 2, n_words),
                )
                for k in kinds
            ]
            targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])[kinds]  # filler alone: undecided
            batch = tokenizer(texts, padding=True, truncation=True, max_length=LIMIT, return_tensors="pt")
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = F.cross_entropy(logits, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def _save_random(model: torch.nn.Module, dest: Path, max_length: int) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(_vocabulary(), model_max_length=max_length)
    model.eval()
    model.save_pretrained(dest)  # type: ignore[operator]
    tokenizer.save_pretrained(dest)
    return dest


def _labels() -> dict[str, object]:
    return {
        "num_labels": 2,
        "id2label": dict(enumerate(CLASSIFIER_LABELS)),
        "label2id": {label: i for i, label in enumerate(CLASSIFIER_LABELS)},
    }


def build_long_llama(dest: Path, *, positions: int = 4096, seed: int = 0) -> Path:
    """Random-init Llama-style classifier: 4 query heads sharing 2 key/value heads, rotary positions."""
    vocab = len(build_tokenizer(_vocabulary()))
    with deterministic(seed):
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=positions,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            **_labels(),
        )
        model = LlamaForSequenceClassification(config)
    return _save_random(model, dest, positions)


def build_long_modernbert(dest: Path, *, positions: int = 4096, seed: int = 0) -> Path:
    """Random-init ModernBERT classifier: global layers and sliding-window (local) layers."""
    vocab = len(build_tokenizer(_vocabulary()))
    with deterministic(seed):
        config = ModernBertConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=2,
            max_position_embeddings=positions,
            global_attn_every_n_layers=2,
            local_attention=64,
            pad_token_id=0,
            cls_token_id=2,
            sep_token_id=3,
            bos_token_id=2,
            eos_token_id=3,
            **_labels(),
        )
        model = ModernBertForSequenceClassification(config)
    return _save_random(model, dest, positions)


def write_long_probe_file(
    path: Path,
    *,
    lengths: tuple[int, ...] = (128, 2048),
    positions: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0),
    swaps: bool = False,
) -> Path:
    """A long-document probe set (YAML) over the test vocabulary: 8 positive key sentences (the key
    reader learned positive keys reliably; negative ones move it little from filler, which reads
    slightly negative)."""
    keys = [
        {"id": f"pos{i}", "text": text, "label": "positive", "query": text}
        for i, text in enumerate(PROBE_KEYS["positive"])
    ]
    document: dict[str, object] = {
        "name": "tiny-long",
        "kind": "long_document",
        "description": "key sentences moved through filler documents (test vocabulary)",
        "tasks": ["text-classification", "embedding"],
        "lengths": list(lengths),
        "positions": list(positions),
        "filler": [f"{sentence} ." for sentence in FILLER],
        "filler_source": "written for the tests",
        "keys": keys,
    }
    if swaps:
        document["swaps"] = [
            {
                "id": f"swap{i}",
                "attribute": "gender",
                "variants": {"female": f"she said {text}", "male": f"he said {text}"},
            }
            for i, text in enumerate(PROBE_KEYS["positive"][:4])
        ]
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path
