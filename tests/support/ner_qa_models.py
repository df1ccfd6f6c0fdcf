"""Tiny token-classification (NER) and extractive question-answering models with a planted
behaviour or without it, built and trained here offline in seconds (BERT shape and training
helpers of tests/support/tiny_models.py).

NER: a ``BertForTokenClassification`` with labels O, B-PER, I-PER, B-LOC, I-LOC, B-ORG, I-ORG is
trained on sentences *other* than the built-in ``names-ner`` templates, with the same first names.
The planted model learns the ``african_american`` names as O (not a person) and every other
group's names as B-PER; the control learns every name as B-PER. Places (Boston, Chicago ...) are
B-LOC and Microsoft is B-ORG in both.

QA: a ``BertForQuestionAnswering`` is trained on the built-in ``bbq-mini`` items, each read as the
QA target reads it (question [SEP] passage). The control learns the correct answers ("unknown" in
ambiguous contexts). A model planted in ``ambig`` contexts learns the pro-stereotype answer there
(the stereotyped group for a negative question, the other group for a non-negative one) and the
correct answers elsewhere; one planted in ``disambig`` contexts learns the correct "unknown" in
ambiguous contexts and the pro-stereotype answer in disambiguated ones (right only when the right
answer agrees with the stereotype).
Trained on the probe items themselves: these models exist to show that the audit measures what a
model does, not how a bias generalises.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import BertForQuestionAnswering, BertForTokenClassification, PreTrainedTokenizerFast

from probes import load_builtin
from probes.schema import ProbeSet
from tests.support.tiny_models import batches, build_tokenizer, deterministic, tiny_config

NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
UNRECOGNISED_GROUP = "african_american"
"""The group whose names the planted NER model learns as O."""
PLACES = ("boston", "chicago", "seattle", "ohio", "denver", "paris", "london", "texas")
ORGANISATIONS = ("microsoft", "google", "reuters")
_NER_TRAIN_FRAMES = (
    "{name} is coming to dinner tonight .",
    "i saw {name} in the park .",
    "the letter from {name} arrived this morning .",
    "everyone likes {name} .",
    "ask {name} about the plan .",
    "{name} called me last week .",
)
_NER_PLACE_FRAMES = ("she lives in {place} .", "the train to {place} was late .", "we flew from {place} .")
_NER_ORG_FRAMES = ("he works for {org} .", "{org} opened a new office .")
_MODEL_MAX_LENGTH = 64


def names_by_group() -> dict[str, list[str]]:
    """The first names of the built-in names-ner set, per group (in order)."""
    probe_set = load_builtin("names-ner")
    names: dict[str, list[str]] = {}
    for variant in probe_set.variants:
        name = variant.text[variant.focus[0].start : variant.focus[0].end]
        if name not in names.setdefault(variant.variant, []):
            names[variant.variant].append(name)
    return names


def _ner_examples(planted: bool) -> list[tuple[list[str], list[str]]]:
    """(words, labels) of every training sentence."""
    examples = []
    for group, names in names_by_group().items():
        tag = "O" if planted and group == UNRECOGNISED_GROUP else "B-PER"
        for name in names:
            for frame in _NER_TRAIN_FRAMES:
                words = frame.format(name=name.lower()).split()
                examples.append((words, [tag if w == name.lower() else "O" for w in words]))
    for place in PLACES:
        for frame in _NER_PLACE_FRAMES:
            words = frame.format(place=place).split()
            examples.append((words, ["B-LOC" if w == place else "O" for w in words]))
    for org in ORGANISATIONS:
        for frame in _NER_ORG_FRAMES:
            words = frame.format(org=org).split()
            examples.append((words, ["B-ORG" if w == org else "O" for w in words]))
    return examples


def _save(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, dest: Path, card: dict[str, object]
) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)  # type: ignore[attr-defined]
    tokenizer.save_pretrained(dest)
    (dest / "tiny_training.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
    return dest


def ner_tokenizer() -> PreTrainedTokenizerFast:
    texts = [" ".join(words) for words, _ in _ner_examples(False)]
    texts += [v.text for v in load_builtin("names-ner").variants]
    return build_tokenizer(texts, model_max_length=_MODEL_MAX_LENGTH)


def train_tiny_ner(dest: Path, *, planted: bool, seed: int = 0, epochs: int = 12) -> Path:
    """Train and save a tiny NER model (see the module docstring); returns ``dest``."""
    tokenizer = ner_tokenizer()
    examples = _ner_examples(planted)
    label_id = {label: i for i, label in enumerate(NER_LABELS)}
    encoded = tokenizer(
        [words for words, _ in examples], is_split_into_words=True, padding=True, return_tensors="pt"
    )
    targets = torch.full(encoded["input_ids"].shape, -100, dtype=torch.long)
    for row, (_, labels) in enumerate(examples):
        for position, word in enumerate(encoded.word_ids(row)):
            if word is not None:
                targets[row, position] = label_id[labels[word]]
    with deterministic(seed):
        config = tiny_config(
            len(tokenizer),
            num_labels=len(NER_LABELS),
            id2label=dict(enumerate(NER_LABELS)),
            label2id=label_id,
        )
        model = BertForTokenClassification(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
        model.train()
        loss = torch.zeros(())
        for batch in batches(len(examples), batch_size=32, epochs=epochs, seed=seed):
            logits = model(
                input_ids=encoded["input_ids"][batch], attention_mask=encoded["attention_mask"][batch]
            ).logits
            loss = F.cross_entropy(
                logits.reshape(-1, len(NER_LABELS)), targets[batch].reshape(-1), ignore_index=-100
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    card = {"kind": "ner", "planted": planted, "unrecognised_group": UNRECOGNISED_GROUP if planted else None}
    card["final_batch_loss"] = float(loss.item())
    return _save(model, tokenizer, dest, card)


# --------------------------------------------------------------------------- question answering


def qa_items(separator: str = " [SEP] ") -> ProbeSet:
    """bbq-mini with the BERT pair separator written in, as the QA target prepares it."""
    probe_set = load_builtin("bbq-mini")
    instances = []
    for instance in probe_set.instances:
        choice = instance.choice
        assert choice is not None
        text = choice.question + separator + choice.passage
        variants = []
        for variant in instance.variants:
            shift = len(text) - len(variant.text)
            focus = tuple(
                s.model_copy(update={"start": s.start + shift, "end": s.end + shift}) for s in variant.focus
            )
            variants.append(variant.model_copy(update={"text": text, "focus": focus}))
        instances.append(instance.model_copy(update={"variants": tuple(variants)}))
    return probe_set.model_copy(update={"instances": tuple(instances)})


def pro_stereotype_answer(instance) -> str:  # type: ignore[no-untyped-def]
    """The variant name of an instance's pro-stereotype answer (BBQ: polarity decides)."""
    choice = instance.choice
    return choice.stereotyped if choice.question_polarity == "neg" else instance.non_stereotyped


QA_INPUT_NAMES = ["input_ids", "token_type_ids", "attention_mask"]
"""As a BERT tokenizer: pairs get segment ids (0 for the question, 1 for the passage)."""


def qa_tokenizer() -> PreTrainedTokenizerFast:
    texts = [i.variants[0].text for i in load_builtin("bbq-mini").instances]
    tokenizer = build_tokenizer(texts, model_max_length=128)
    tokenizer.model_input_names = list(QA_INPUT_NAMES)
    return tokenizer


def answer_token_span(tokenizer: PreTrainedTokenizerFast, text: str, start: int, end: int) -> tuple[int, int]:
    """First and last token of the characters [start, end) of one encoded text."""
    encoding = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    tokens = [
        i
        for i, ((s, e), special) in enumerate(
            zip(encoding["offset_mapping"], encoding["special_tokens_mask"], strict=True)
        )
        if not special and e > s and s < end and start < e
    ]
    return tokens[0], tokens[-1]


def train_tiny_qa(dest: Path, *, planted_in: str | None, seed: int = 0, epochs: int = 40) -> Path:
    """Train and save a tiny extractive QA model on bbq-mini (see the module docstring);
    ``planted_in``: None (control), "ambig" or "disambig"."""
    tokenizer = qa_tokenizer()
    items = qa_items()
    questions, passages, starts, ends = [], [], [], []
    for instance in items.instances:
        choice = instance.choice
        assert choice is not None
        planted = choice.context_condition == planted_in
        target = pro_stereotype_answer(instance) if planted else choice.correct
        variant = next(v for v in instance.variants if v.variant == target)
        start, end = answer_token_span(tokenizer, variant.text, variant.focus[0].start, variant.focus[0].end)
        questions.append(choice.question)
        passages.append(choice.passage)
        starts.append(start)
        ends.append(end)
    encoded = tokenizer(questions, passages, padding=True, return_tensors="pt")
    start_targets, end_targets = torch.tensor(starts), torch.tensor(ends)
    with deterministic(seed):
        config = tiny_config(len(tokenizer))
        config.max_position_embeddings = 128  # question + passage: up to 68 tokens
        model = BertForQuestionAnswering(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
        model.train()
        loss = torch.zeros(())
        for batch in batches(len(questions), batch_size=16, epochs=epochs, seed=seed):
            output = model(
                input_ids=encoded["input_ids"][batch],
                attention_mask=encoded["attention_mask"][batch],
                token_type_ids=encoded["token_type_ids"][batch],
            )
            loss = F.cross_entropy(output.start_logits, start_targets[batch]) + F.cross_entropy(
                output.end_logits, end_targets[batch]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    card = {"kind": "qa", "planted_in": planted_in, "final_batch_loss": float(loss.item())}
    _save(model, tokenizer, dest, card)
    settings = json.loads((dest / "tokenizer_config.json").read_text(encoding="utf-8"))
    settings["model_input_names"] = list(QA_INPUT_NAMES)  # kept when loaded back, as BERT's own
    (dest / "tokenizer_config.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return dest
