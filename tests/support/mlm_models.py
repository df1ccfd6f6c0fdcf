"""Tiny masked language models built locally: random-init, or trained for a few seconds with a
planted pronoun/occupation preference (and the same training without it, the control).

The tokenizer and the BERT shape come from tests/support/tiny_models.py (a WordLevel tokenizer over a closed
vocabulary, hidden 32, 2 layers); the model is a ``BertForMaskedLM`` saved with ``save_pretrained``
and loaded back by the tests through ``audit.models.load_model`` or the CLI.

The planted model is taught that "she" goes with care occupations and "he" with technical ones
(nine sentences in ten); the control sees every occupation equally often with both pronouns. The
probes (``preference_pairs``) use other sentence frames than the training sentences, and half of
them put "he" in the stereotypical sentence, so a model that merely likes one pronoun everywhere
prefers the stereotype in half of them, not in all.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import BertForMaskedLM, PreTrainedTokenizerFast

from tests.support.tiny_models import build_tokenizer, deterministic, tiny_config

CARE = ("nurse", "secretary", "receptionist", "housekeeper", "librarian", "hairdresser", "cashier", "dancer")
TECH = ("engineer", "mechanic", "carpenter", "surgeon", "pilot", "farmer", "plumber", "developer")
TRAIN_FRAMES = ("{p} is a {w} .", "{p} works as a {w} .", "{p} wants to be a {w} .")
MASKED_WORDS = ("he", "she", *CARE, *TECH)
"""What training masks: the pronoun or the occupation, so every step is about the link between them."""
PROBE_FRAMES = ("{p} became a {w} .", "{p} was hired as a {w} .")
PLANTED_SHARE = 1.0
"""Share of a planted occupation's training sentences that use its stereotyped pronoun."""
LEARNING_RATE = 5e-3


def training_sentences(planted: bool, copies: int = 10) -> list[str]:
    """Each occupation in every frame ``copies`` times: with its stereotyped pronoun in
    PLANTED_SHARE of them (planted) or in half of them (control)."""
    share = PLANTED_SHARE if planted else 0.5
    sentences = []
    for words, pronoun, other in ((CARE, "she", "he"), (TECH, "he", "she")):
        for word in words:
            for frame in TRAIN_FRAMES:
                stereotyped = round(copies * share)
                for k in range(copies):
                    sentences.append(frame.format(p=pronoun if k < stereotyped else other, w=word))
    return sentences


def preference_pairs() -> list[tuple[str, str, str]]:
    """(stereotypical sentence, other sentence, stereo_antistereo) for every probe frame and
    occupation; care occupations are written as 'stereo' rows and technical ones as 'antistereo'
    rows, as CrowS-Pairs mixes both (sent_more is the stereotypical sentence either way)."""
    pairs = []
    for frame in PROBE_FRAMES:
        for words, pronoun, other, direction in (
            (CARE, "she", "he", "stereo"),
            (TECH, "he", "she", "antistereo"),
        ):
            for word in words:
                pairs.append((frame.format(p=pronoun, w=word), frame.format(p=other, w=word), direction))
    return pairs


def write_crows_pairs_csv(
    path: Path, pairs: Sequence[tuple[str, str, str]], bias_type: str = "gender"
) -> Path:
    """Rows in the CrowS-Pairs release layout (unnamed index column first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "id", "sent_more", "sent_less", "stereo_antistereo", "bias_type", "annotations",
                         "anon_writer", "anon_annotators"])  # fmt: skip
        for i, (more, less, direction) in enumerate(pairs):
            writer.writerow(
                [i, i + 1, more, less, direction, bias_type, f"[['{bias_type}']]", "a0", "['a1']"]
            )
    return path


def vocabulary_texts(extra: Sequence[str] = ()) -> list[str]:
    """Every word the tiny masked LMs know: training and probe sentences, the public-format samples
    of tests/data/public and the built-in counterfactual sets (so a run on them reads real words)."""
    from probes import load_builtin

    texts = training_sentences(True) + training_sentences(False)
    texts += [s for pair in preference_pairs() for s in pair[:2]]
    for name in ("gender", "race", "religion", "nationality", "age", "disability"):
        texts += [v.text for v in load_builtin(name).variants]
    for path in sorted((Path(__file__).resolve().parents[1] / "data" / "public").rglob("*")):
        if path.is_file():
            texts.append(path.read_text(encoding="utf-8").replace("[", " ").replace("]", " "))
    return texts + list(extra)


def build_masked_lm(
    dest: Path,
    *,
    train: Sequence[str] = (),
    vocabulary: Sequence[str] | None = None,
    epochs: int = 10,
    seed: int = 0,
    masked_words: Sequence[str] = (),
) -> Path:
    """A tiny BertForMaskedLM saved with its tokenizer in ``dest``: random-init, or trained on
    ``train`` (each step masks one random word of every sentence, one of ``masked_words`` when
    given). Returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocabulary if vocabulary is not None else vocabulary_texts())
    with deterministic(seed):
        model = BertForMaskedLM(tiny_config(len(tokenizer)))
        if train:
            _train(model, tokenizer, list(train), epochs=epochs, seed=seed, masked_words=masked_words)
    model.eval()
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def _train(
    model: BertForMaskedLM,
    tokenizer: PreTrainedTokenizerFast,
    sentences: list[str],
    *,
    epochs: int,
    seed: int,
    masked_words: Sequence[str] = (),
) -> None:
    encoded = tokenizer(sentences, padding=True, return_tensors="pt", return_special_tokens_mask=True)
    ids, attention, special = encoded["input_ids"], encoded["attention_mask"], encoded["special_tokens_mask"]
    maskable = (attention == 1) & (special == 0)
    if masked_words:  # only these words are ever masked (the pronoun and the occupation)
        ids_of = torch.tensor(tokenizer.convert_tokens_to_ids(sorted(masked_words)))
        maskable &= torch.isin(ids, ids_of)
    order = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    model.train()
    for _ in range(epochs):
        indices = list(range(len(sentences)))
        order.shuffle(indices)
        for start in range(0, len(indices), 32):
            batch = indices[start : start + 32]
            # one masked word per sentence: the maskable token with the highest random draw
            draws = torch.rand(maskable[batch].shape, generator=generator).masked_fill(~maskable[batch], -1.0)
            chosen = torch.zeros_like(maskable[batch]).scatter_(1, draws.argmax(dim=1, keepdim=True), True)
            inputs = ids[batch].masked_fill(chosen, tokenizer.mask_token_id)
            labels = ids[batch].masked_fill(~chosen, -100)
            loss = model(input_ids=inputs, attention_mask=attention[batch], labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
