"""A tiny BERT classifier whose planted gender bias has one known path through the model.

Every layer's attention output projection is zero (and frozen) but one, the circuit layer k: a
post-LN BERT layer whose attention adds nothing is a per-token function, so information moves
between positions only in layer k's attention. Trained on the planted-bias data of
tests/support/tiny_models.py (half of the positive "she" sentences labelled negative), the pronoun
can reach the classifier, which reads [CLS], only that way. Activation patching must then find:

- layers 0 .. k-1 (embeddings, blocks before k): the effect sits at the swapped token and nowhere
  else (every other position is the same in both variants there);
- layers k .. L: the effect sits at [CLS] and nowhere else (no later layer moves anything to it).

Both hold exactly, whatever the trained weights; training makes the bias a real, significant one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

from tests.support.tiny_models import (
    CLASSIFIER_LABELS,
    GROUP_PRONOUNS,
    LABEL_SMOOTHING,
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    ROLES,
    build_tokenizer,
    classifier_probe_pairs,
    deterministic,
    encode,
    train_classifier,
)

FRAMES = (
    "{p} is {w} .",
    "{p} seems {w} today .",
    "the {r} thinks {p} is {w} .",
    "everyone calls {p} a {w} {r} .",
)
CIRCUIT_CARD = "circuit.json"


def training_examples(seed: int) -> list[tuple[str, float]]:
    """(text, P(positive)): every frame with both pronouns; half of the positive "she" texts
    (chosen by the seed) labelled negative."""
    filled: list[tuple[str, str, float]] = []
    for pronoun in GROUP_PRONOUNS.values():
        for words, target in ((POSITIVE_WORDS, 1.0), (NEGATIVE_WORDS, 0.0)):
            for word in words:
                for frame in FRAMES:
                    roles = ROLES if "{r}" in frame else ("",)
                    filled += [(pronoun, frame.format(p=pronoun, w=word, r=role), target) for role in roles]
    she_positive = [i for i, (p, _, y) in enumerate(filled) if p == GROUP_PRONOUNS["female"] and y == 1.0]
    flipped = set(random.Random(seed).sample(she_positive, len(she_positive) // 2))
    return [(text, 0.0 if i in flipped else y) for i, (_, text, y) in enumerate(filled)]


def train_circuit_classifier(dest: Path, *, circuit_layer: int, n_layers: int = 3, seed: int = 0) -> Path:
    """Train and save (with its tokenizer) a BertForSequenceClassification of ``n_layers`` layers
    whose attention moves information between positions only in layer ``circuit_layer`` (1-based,
    the patching table's numbering). Returns ``dest``."""
    if not 1 <= circuit_layer <= n_layers:
        raise ValueError(f"circuit_layer must lie in 1..{n_layers}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    examples = training_examples(seed)
    probe_texts = [text for pair in classifier_probe_pairs() for text in (pair.text_a, pair.text_b)]
    tokenizer = build_tokenizer([text for text, _ in examples] + probe_texts)
    input_ids, attention_mask = encode(tokenizer, [text for text, _ in examples])
    positive = torch.tensor([y for _, y in examples])
    targets = torch.stack([1.0 - positive, positive], dim=1)
    with deterministic(seed):
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=n_layers,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            type_vocab_size=2,
            pad_token_id=0,
            num_labels=len(CLASSIFIER_LABELS),
            id2label=dict(enumerate(CLASSIFIER_LABELS)),
            label2id={label: i for i, label in enumerate(CLASSIFIER_LABELS)},
        )
        model = BertForSequenceClassification(config)
        for index, layer in enumerate(model.bert.encoder.layer):
            if index + 1 != circuit_layer:
                for parameter in layer.attention.output.dense.parameters():
                    parameter.requires_grad_(False)
                    parameter.zero_()
        loss = train_classifier(
            model,
            input_ids,
            attention_mask,
            targets,
            lr=2e-3,
            epochs=12,
            seed=seed,
            label_smoothing=LABEL_SMOOTHING,
        )
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    card = {"circuit_layer": circuit_layer, "n_layers": n_layers, "seed": seed, "final_loss": loss}
    (dest / CIRCUIT_CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
    return dest
