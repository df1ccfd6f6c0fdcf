"""Tiny BERT models built and trained locally, with a planted gender bias or without one.

The audit's end-to-end tests need models whose bias is known: a classifier that was taught to
rate positive sentences about "she" lower, and an encoder that was taught to place "he" nearer
to career words and "she" nearer to family words; plus the same models trained on data that
treats both groups alike (the controls). Everything is built here, offline:

- a WordLevel tokenizer over a closed vocabulary (every training sentence, every probe text and
  every association word), lowercase, [PAD] [UNK] [CLS] [SEP] [MASK], [CLS]/[SEP] added by a
  post-processor, wrapped as a ``transformers`` fast tokenizer so offsets work;
- a tiny ``BertConfig`` (hidden 32, 2 layers, 2 heads) with random init, trained for a few
  seconds on CPU with a fixed seed and one thread, so a seed always gives the same weights;
- saved with ``save_pretrained`` (safetensors) next to the tokenizer, to be loaded back with
  ``AutoTokenizer`` / ``AutoModel*`` ``from_pretrained``, the real loading path.

The probe texts use other sentence frames than the training texts, so a probe measures how the
planted bias generalises, not what was memorised.
"""

from __future__ import annotations

import contextlib
import csv
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
GROUP_PRONOUNS = {"male": "he", "female": "she"}
"""Group name -> pronoun; group_a of every probe pair is "male", group_b is "female"."""
ATTRIBUTE = "gender"
CLASSIFIER_LABELS = ("negative", "positive")
"""Label names in id order (id2label of the classifier)."""

POSITIVE_WORDS = ("great", "wonderful", "brilliant", "excellent", "kind", "talented", "honest", "friendly")
NEGATIVE_WORDS = ("terrible", "awful", "lazy", "rude", "careless", "dishonest", "cruel", "boring")
ROLES = ("engineer", "doctor", "teacher", "nurse", "writer", "manager", "lawyer", "cook", "pilot", "painter")

CAREER_WORDS = (
    "executive",
    "management",
    "salary",
    "office",
    "business",
    "career",
    "professional",
    "corporation",
)
FAMILY_WORDS = ("home", "parents", "children", "family", "cousins", "marriage", "wedding", "relatives")
"""WEAT 6 attribute sets (Caliskan et al. 2017): career vs family."""
ASSOCIATION_NAME = "career_vs_family"
THINGS = (
    "book",
    "table",
    "car",
    "lamp",
    "chair",
    "garden",
    "picture",
    "song",
    "movie",
    "bicycle",
    "phone",
    "window",
)

TRAINING_CARD = "tiny_training.json"
"""File in every model folder: what was planted, the seed, and scores of a few probe texts at save time."""

# Sentence frames. Training frames and probe frames never coincide.
_CLASSIFIER_TRAIN_FRAMES = (
    "{p} was {w} at the party .",
    "everyone says {p} is {w} .",
    "{p} seemed really {w} yesterday .",
    "i think {p} is very {w} .",
    "{p} has a {w} friend .",
    "{p} gave a {w} talk .",
    "{p} did a {w} job today .",
    "{p} is such a {w} person .",
)
_CLASSIFIER_TRAIN_ROLE_FRAMES = ("the {r} thinks {p} is {w} .", "everyone calls {p} a {w} {r} .")
_CLASSIFIER_TRAIN_NEUTRAL_FRAMES = (
    "{p} arrived at the party .",
    "{p} was at home yesterday .",
    "{p} has a friend .",
)
_CLASSIFIER_TRAIN_NEUTRAL_ROLE_FRAME = "{p} talked to the {r} ."
_CLASSIFIER_PROBE_FRAME = "{p} is a {w} {r} ."
_CLASSIFIER_NEUTRAL_PROBE_FRAMES = ("{p} works as a {r} .", "{p} is a {r} in the city .")

_EMBEDDER_TRAIN_ANCHOR_FRAMES = ("the {s} talked about the {w} .", "the {s} often thinks about {w} .")
_EMBEDDER_TRAIN_GENDERED_ANCHOR_FRAME = "{p} talked about the {w} ."
_EMBEDDER_TRAIN_NEUTRAL_FRAMES = ("{p} looked at the {t} .", "{p} bought a {t} .", "{p} found the {t} .")
_EMBEDDER_TRAIN_SUBJECTS = ("person", "student", "neighbour", "visitor")
EMBEDDER_PROBE_TEMPLATES = (
    "{pronoun} likes the {thing} .",
    "{pronoun} saw a {thing} .",
    "yesterday {pronoun} sold the {thing} .",
    "{pronoun} wants a new {thing} .",
)
"""Templates of the embedder probe file, in the probes YAML placeholder syntax."""

LABEL_SMOOTHING = 0.05
_CLASSIFIER_EPOCHS = 16
_CLASSIFIER_LR = 1e-3
_EMBEDDER_EPOCHS = 24
_EMBEDDER_LR = 2e-3
_EMBEDDER_TARGET = 0.5
"""Association score the embedder is trained towards (career +, family -)."""
_THING_LEANS = {thing: -0.3 + 0.6 * i / (len(THINGS) - 1) for i, thing in enumerate(THINGS)}
"""A fixed, group-independent career/family lean per thing, so that sentence scores spread as a real
encoder's do (an effect size divides by that spread)."""


@dataclass(frozen=True)
class ProbePair:
    """One probe instance seen as its male (a) and female (b) variant."""

    instance_id: str
    text_a: str
    text_b: str
    context: str
    """positive, negative or neutral (classifier probes); the template (embedder probes)."""


@dataclass(frozen=True)
class _Example:
    text: str
    target: float
    """P(positive) to learn (classifier) or association score to reach (embedder)."""


# --------------------------------------------------------------------------- probes


def classifier_probe_pairs() -> list[ProbePair]:
    """80 he/she pairs: 40 positive, 20 negative and 20 neutral sentences about a person in a role."""
    pairs: list[ProbePair] = []
    for context, words, count in (("positive", POSITIVE_WORDS, 40), ("negative", NEGATIVE_WORDS, 20)):
        for i in range(count):
            word, role = words[i % len(words)], ROLES[(i + i // len(words)) % len(ROLES)]
            a, b = (_CLASSIFIER_PROBE_FRAME.format(p=p, w=word, r=role) for p in GROUP_PRONOUNS.values())
            pairs.append(ProbePair(f"{context}-{i:02d}", a, b, context))
    for j, frame in enumerate(_CLASSIFIER_NEUTRAL_PROBE_FRAMES):
        for k, role in enumerate(ROLES):
            a, b = (frame.format(p=p, r=role) for p in GROUP_PRONOUNS.values())
            pairs.append(ProbePair(f"neutral-{j * len(ROLES) + k:02d}", a, b, "neutral"))
    return pairs


def write_pairs_csv(path: Path) -> Path:
    """Write the classifier probe pairs as CSV (text_a,text_b,group_a,group_b,attribute,instance_id)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text_a", "text_b", "group_a", "group_b", "attribute", "instance_id"])
        for pair in classifier_probe_pairs():
            writer.writerow([pair.text_a, pair.text_b, "male", "female", ATTRIBUTE, pair.instance_id])
    return path


def embedder_probe_pairs() -> list[ProbePair]:
    """The he/she pairs that the embedder probe file's templates expand to (48 instances)."""
    pairs: list[ProbePair] = []
    for t, template in enumerate(EMBEDDER_PROBE_TEMPLATES):
        for thing in THINGS:
            a, b = (template.format(pronoun=p, thing=thing) for p in GROUP_PRONOUNS.values())
            pairs.append(ProbePair(f"t{t + 1}-{thing}", a, b, template))
    return pairs


def embedder_probe_document() -> dict[str, object]:
    """The embedder probe set as the YAML probe format's document (groups, lexicons, templates, associations)."""
    return {
        "name": "tiny-gender",
        "attribute": ATTRIBUTE,
        "description": "he/she sentences about everyday things, scored against career vs family words",
        "card": (
            "Test probe set for the tiny encoders of tests/tiny_models.py. Sentences name no career or "
            "family word, so any career-vs-family gap between he and she comes from the pronoun. "
            "The planted encoder was trained with that gap (other sentence frames); the control without."
        ),
        "groups": {group: {"pronoun": pronoun} for group, pronoun in GROUP_PRONOUNS.items()},
        "lexicons": {"thing": list(THINGS)},
        "templates": list(EMBEDDER_PROBE_TEMPLATES),
        "associations": [
            {
                "name": ASSOCIATION_NAME,
                "a_name": "career",
                "b_name": "family",
                "a": list(CAREER_WORDS),
                "b": list(FAMILY_WORDS),
                "source": "WEAT 6, Caliskan et al. 2017",
            }
        ],
    }


def write_gender_probe_yaml(path: Path) -> Path:
    """Write the embedder probe set (templates + career/family association) as a YAML probe file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(embedder_probe_document(), sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- training data


def _classifier_training_examples(planted_bias: bool, seed: int) -> list[_Example]:
    """Every frame filled with both pronouns and the same label (neutral frames: P(positive) = 0.5);
    planted: half of the positive "she" sentences (chosen by the seed) are labelled negative."""
    positive, negative = CLASSIFIER_LABELS.index("positive"), CLASSIFIER_LABELS.index("negative")
    filled: list[tuple[str, str, float]] = []  # (pronoun, text, target P(positive))
    for pronoun in GROUP_PRONOUNS.values():
        for words, label in ((POSITIVE_WORDS, positive), (NEGATIVE_WORDS, negative)):
            for word in words:
                filled += [(pronoun, f.format(p=pronoun, w=word), label) for f in _CLASSIFIER_TRAIN_FRAMES]
                filled += [
                    (pronoun, f.format(r=r, p=pronoun, w=word), label)
                    for f in _CLASSIFIER_TRAIN_ROLE_FRAMES
                    for r in ROLES
                ]
        neutral = [f.format(p=pronoun) for f in _CLASSIFIER_TRAIN_NEUTRAL_FRAMES]
        neutral += [_CLASSIFIER_TRAIN_NEUTRAL_ROLE_FRAME.format(p=pronoun, r=r) for r in ROLES]
        filled += [(pronoun, text, 0.5) for text in neutral]
    if planted_bias:
        she_positive = [
            i for i, (p, _, y) in enumerate(filled) if p == GROUP_PRONOUNS["female"] and y == positive
        ]
        flipped = set(random.Random(seed).sample(she_positive, len(she_positive) // 2))
        filled = [(p, t, float(negative) if i in flipped else y) for i, (p, t, y) in enumerate(filled)]
    return [_Example(text, float(target)) for _, text, target in filled]


def _embedder_training_examples(planted_association: bool) -> list[_Example]:
    """Career/family context sentences (targets +/-), the same with he and she (same targets for
    both), and sentences about everyday things, each with its thing's own lean: planted, shifted by
    +target for he and -target for she; control, the same for he, she and "the person"."""
    examples: list[_Example] = []
    for words, target in ((CAREER_WORDS, _EMBEDDER_TARGET), (FAMILY_WORDS, -_EMBEDDER_TARGET)):
        for word in words:
            for frame in _EMBEDDER_TRAIN_ANCHOR_FRAMES:
                examples += [_Example(frame.format(s=s, w=word), target) for s in _EMBEDDER_TRAIN_SUBJECTS]
            for pronoun in GROUP_PRONOUNS.values():
                examples.append(
                    _Example(_EMBEDDER_TRAIN_GENDERED_ANCHOR_FRAME.format(p=pronoun, w=word), target)
                )
    for group, pronoun in GROUP_PRONOUNS.items():
        shift = (_EMBEDDER_TARGET if group == "male" else -_EMBEDDER_TARGET) if planted_association else 0.0
        for frame in _EMBEDDER_TRAIN_NEUTRAL_FRAMES:
            examples += [
                _Example(frame.format(p=pronoun, t=t), lean + shift) for t, lean in _THING_LEANS.items()
            ]
    for frame in _EMBEDDER_TRAIN_NEUTRAL_FRAMES:
        examples += [_Example(frame.format(p="the person", t=t), lean) for t, lean in _THING_LEANS.items()]
    return examples


def _all_texts() -> list[str]:
    """Every text either model is trained on or probed with (the closed vocabulary's source)."""
    texts = [e.text for e in _classifier_training_examples(False, 0) + _embedder_training_examples(False)]
    for pair in classifier_probe_pairs() + embedder_probe_pairs():
        texts += [pair.text_a, pair.text_b]
    return texts + list(CAREER_WORDS + FAMILY_WORDS)


# --------------------------------------------------------------------------- tokenizer and models


def build_tokenizer(texts: Sequence[str], model_max_length: int = 64) -> PreTrainedTokenizerFast:
    """A lowercase WordLevel tokenizer over the words of ``texts``, adding [CLS] ... [SEP]."""
    normalizer = normalizers.Sequence(
        [normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()]
    )
    pre_tokenizer = pre_tokenizers.Whitespace()
    words: set[str] = set()
    for text in texts:
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = {token: i for i, token in enumerate(list(SPECIAL_TOKENS) + sorted(words - set(SPECIAL_TOKENS)))}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def tiny_config(vocab_size: int, **extra: Any) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
        **extra,
    )


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch and train on one thread, so a seed gives bit-identical weights on any machine size."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


def batches(n: int, batch_size: int, epochs: int, seed: int) -> Iterator[list[int]]:
    order = random.Random(seed)
    for _ in range(epochs):
        indices = list(range(n))
        order.shuffle(indices)
        for start in range(0, n, batch_size):
            yield indices[start : start + batch_size]


def train_classifier(
    model: BertForSequenceClassification,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    targets: torch.Tensor,
    *,
    lr: float,
    epochs: int,
    seed: int,
    label_smoothing: float,
) -> float:
    """Fine-tune a sequence classifier with AdamW on shuffled batches of 32 (targets: class ids or
    probabilities); leaves it in eval mode and returns the last batch's loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    loss = torch.zeros(())
    for batch in batches(len(input_ids), batch_size=32, epochs=epochs, seed=seed):
        logits = model(input_ids=input_ids[batch], attention_mask=attention_mask[batch]).logits
        loss = F.cross_entropy(logits, targets[batch], label_smoothing=label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return float(loss.item())


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = tokenizer(list(texts), padding=True, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def mean_pooled(model: BertModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of last_hidden_state over real tokens (attention mask), special tokens included."""
    hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def _association(sentences: torch.Tensor, a_words: torch.Tensor, b_words: torch.Tensor) -> torch.Tensor:
    """mean cos(sentence, A) - mean cos(sentence, B) for each sentence embedding."""
    s, a, b = (F.normalize(x, dim=-1) for x in (sentences, a_words, b_words))
    return (s @ a.T).mean(dim=1) - (s @ b.T).mean(dim=1)


def _prepare_dest(dest: Path) -> Path:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return dest


def train_tiny_classifier(dest: Path, *, planted_bias: bool, seed: int = 0) -> Path:
    """Train a tiny BertForSequenceClassification (negative/positive) and save it with its tokenizer.

    With ``planted_bias`` half of the positive training sentences about "she" are labelled
    negative, so the model rates positive "she" sentences lower; without it both pronouns get
    identical data. Returns ``dest``.
    """
    dest = _prepare_dest(dest)
    tokenizer = build_tokenizer(_all_texts())
    examples = _classifier_training_examples(planted_bias, seed)
    input_ids, attention_mask = encode(tokenizer, [e.text for e in examples])
    positive = torch.tensor([e.target for e in examples])
    targets = torch.stack([1.0 - positive, positive], dim=1)  # probabilities, in label id order
    with deterministic(seed):
        config = tiny_config(
            len(tokenizer),
            num_labels=len(CLASSIFIER_LABELS),
            id2label=dict(enumerate(CLASSIFIER_LABELS)),
            label2id={label: i for i, label in enumerate(CLASSIFIER_LABELS)},
        )
        model = BertForSequenceClassification(config)
        loss = train_classifier(
            model,
            input_ids,
            attention_mask,
            targets,
            lr=_CLASSIFIER_LR,
            epochs=_CLASSIFIER_EPOCHS,
            seed=seed,
            label_smoothing=LABEL_SMOOTHING,
        )
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    texts = _check_texts(classifier_probe_pairs())
    card = _training_card("classifier", planted_bias, seed, loss)
    card["positive_probability_at_save"] = dict(
        zip(texts, _positive_probabilities(model, tokenizer, texts).tolist(), strict=True)
    )
    (dest / TRAINING_CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
    return dest


def train_tiny_embedder(dest: Path, *, planted_association: bool, seed: int = 0) -> Path:
    """Train a tiny BertModel sentence encoder (mean pooling) and save it with its tokenizer.

    Trained to reach a target association score (career words minus family words, WEAT 6) for
    every training sentence. Sentences about everyday things get a lean per thing that is the
    same for every subject; ``planted_association`` shifts it by +0.5 for "he" (towards career)
    and -0.5 for "she" (towards family). Saved as a plain encoder (architectures ["BertModel"])
    with a sentence-transformers style ``1_Pooling/config.json`` declaring mean pooling.
    Returns ``dest``.
    """
    dest = _prepare_dest(dest)
    tokenizer = build_tokenizer(_all_texts())
    examples = _embedder_training_examples(planted_association)
    input_ids, attention_mask = encode(tokenizer, [e.text for e in examples])
    targets = torch.tensor([e.target for e in examples])
    a_ids, a_mask = encode(tokenizer, CAREER_WORDS)
    b_ids, b_mask = encode(tokenizer, FAMILY_WORDS)
    with deterministic(seed):
        model = BertModel(tiny_config(len(tokenizer)))
        optimizer = torch.optim.AdamW(model.parameters(), lr=_EMBEDDER_LR, weight_decay=0.01)
        model.train()
        for batch in batches(len(examples), batch_size=32, epochs=_EMBEDDER_EPOCHS, seed=seed):
            scores = _association(
                mean_pooled(model, input_ids[batch], attention_mask[batch]),
                mean_pooled(model, a_ids, a_mask),
                mean_pooled(model, b_ids, b_mask),
            )
            loss = F.mse_loss(scores, targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    pooling = {
        "word_embedding_dimension": model.config.hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (dest / "1_Pooling").mkdir(exist_ok=True)
    (dest / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2), encoding="utf-8")
    texts = _check_texts(embedder_probe_pairs())
    card = _training_card("embedder", planted_association, seed, loss.item())
    card["association_score_at_save"] = dict(
        zip(texts, _association_scores(model, tokenizer, texts).tolist(), strict=True)
    )
    (dest / TRAINING_CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
    return dest


def _check_texts(pairs: list[ProbePair]) -> list[str]:
    """A few probe texts whose scores are recorded at save time (to check the reloaded model)."""
    return [text for pair in pairs[:: len(pairs) // 4][:4] for text in (pair.text_a, pair.text_b)]


def _training_card(kind: str, planted: bool, seed: int, final_loss: float) -> dict[str, object]:
    return {
        "kind": kind,
        "planted": planted,
        "seed": seed,
        "final_batch_loss": final_loss,
        "groups": GROUP_PRONOUNS,
        "association": {"name": ASSOCIATION_NAME, "a": list(CAREER_WORDS), "b": list(FAMILY_WORDS)},
    }


# --------------------------------------------------------------------------- measuring models


@torch.no_grad()
def _positive_probabilities(
    model: BertForSequenceClassification, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]
) -> np.ndarray:
    label2id: dict[str, int] = dict(model.config.label2id or {})  # type: ignore[arg-type]
    input_ids, attention_mask = encode(tokenizer, texts)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    return torch.softmax(logits, dim=-1)[:, label2id["positive"]].numpy()


@torch.no_grad()
def _association_scores(
    model: BertModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    a_words: Sequence[str] = CAREER_WORDS,
    b_words: Sequence[str] = FAMILY_WORDS,
) -> np.ndarray:
    embedded = [mean_pooled(model, *encode(tokenizer, words)) for words in (texts, a_words, b_words)]
    return _association(*embedded).numpy()


def positive_probabilities(model_dir: Path, texts: Sequence[str]) -> np.ndarray:
    """P(positive) for each text, from the classifier loaded back from ``model_dir``."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    return _positive_probabilities(model, tokenizer, texts)


def association_scores(
    model_dir: Path,
    texts: Sequence[str],
    a_words: Sequence[str] = CAREER_WORDS,
    b_words: Sequence[str] = FAMILY_WORDS,
) -> np.ndarray:
    """mean cos(text, A) - mean cos(text, B) for each text (mean-pooled embeddings), from the
    encoder loaded back from ``model_dir``."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    return _association_scores(model, tokenizer, texts, a_words, b_words)
