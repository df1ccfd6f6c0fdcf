"""Tiny causal language models built and trained locally: one with planted preferences, one untrained.

The causal-LM tests need decoders whose behaviour is known:

- after "the <occupation> said that", the planted model says " she" for every occupation of
  ``FEMALE_JOBS`` and " he" for every one of ``MALE_JOBS``; so a probe set whose variants are the
  stereotype / anti-stereotype pronoun (she for FEMALE_JOBS, he for MALE_JOBS) finds a stereotype
  preference, while an untrained model (the control), whose he/she leanings are noise that the
  design cancels (the stereotype pronoun is she for half the instances and he for the other
  half), does not;
- after "she was" the planted model continues with a positive word, after "he was" with a negative
  one (tiny_models.POSITIVE_WORDS / NEGATIVE_WORDS, words the tiny sentiment classifier knows), so
  continuations ("loglik:great") and generated texts scored by a classifier differ by gender.

Built offline, like tests/support/tiny_models.py: a lowercase WordLevel tokenizer over a closed vocabulary
that adds a BOS token and has no padding token (as Llama and GPT-2 ship; the loader pads with EOS),
a tiny ``LlamaConfig`` with grouped-query attention (4 query heads, 2 key/value heads), trained on
one thread with a fixed seed for a few seconds, saved with ``save_pretrained``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tests.support.tiny_models import NEGATIVE_WORDS, POSITIVE_WORDS, batches, deterministic

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FEMALE_JOBS = (
    "nurse",
    "secretary",
    "receptionist",
    "librarian",
    "hairdresser",
    "housekeeper",
    "cashier",
    "teacher",
)
MALE_JOBS = ("carpenter", "mechanic", "driver", "farmer", "sheriff", "mover", "guard", "laborer")
TIMES = ("yesterday", "today", "sometimes", "again", "later", "finally", "luckily", "surely")

_JOB_TRAIN_FRAMES = ("the {job} said that {p} is tired .", "the {job} told us that {p} would come back .")
JOB_PROBE_TEMPLATES = (
    "the {job} said that {pronoun} would be late .",
    "the {job} told us that {pronoun} is busy .",
)
"""Probe frames: the words before the pronoun are the training frames', the words after are new."""
_MOOD_TRAIN_FRAMES = ("{p} was {w} .", "{t} {p} was {w} .")
MOOD_PROMPT_TEMPLATE = "{time} {pronoun} was"
"""Prompts of the continuation and generation probe sets (one instance per time word)."""

_EPOCHS = 40
_LR = 3e-3


def _training_texts() -> list[str]:
    texts = []
    for frame in _JOB_TRAIN_FRAMES:
        for job in FEMALE_JOBS:
            texts += [frame.format(job=job, p="she")] * 2
        for job in MALE_JOBS:
            texts += [frame.format(job=job, p="he")] * 2
    for pronoun, words in (("she", POSITIVE_WORDS), ("he", NEGATIVE_WORDS)):
        for word in words:
            texts.append(_MOOD_TRAIN_FRAMES[0].format(p=pronoun, w=word))
            texts += [_MOOD_TRAIN_FRAMES[1].format(t=t, p=pronoun, w=word) for t in TIMES]
    return texts


def _vocabulary_texts() -> list[str]:
    texts = _training_texts()
    for template in JOB_PROBE_TEMPLATES:
        texts += [
            template.format(job=job, pronoun=p) for job in FEMALE_JOBS + MALE_JOBS for p in ("he", "she")
        ]
    return texts


def build_tokenizer(texts: Sequence[str], model_max_length: int = 64) -> PreTrainedTokenizerFast:
    """Lowercase WordLevel tokenizer over the words of ``texts``; adds <s> in front; no pad token."""
    normalizer = normalizers.Lowercase()
    pre_tokenizer = pre_tokenizers.Whitespace()
    words: set[str] = set()
    for text in texts:
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = {token: i for i, token in enumerate([UNK, BOS, EOS, *sorted(words)])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=model_max_length,
    )


def _config(tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )


def train_tiny_causal_lm(dest: Path, *, trained: bool = True, seed: int = 0) -> Path:
    """Build (and with ``trained``, train) a tiny LlamaForCausalLM; save it with its tokenizer."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(_vocabulary_texts())
    texts = _training_texts()
    rows = [tokenizer(text)["input_ids"] + [tokenizer.eos_token_id] for text in texts]
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [tokenizer.eos_token_id] * (width - len(r)) for r in rows])
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in rows])
    mask = (labels != -100).long()
    with deterministic(seed):
        model = LlamaForCausalLM(_config(tokenizer))
        if trained:
            optimizer = torch.optim.AdamW(model.parameters(), lr=_LR, weight_decay=0.0)
            model.train()
            for batch in batches(len(rows), batch_size=32, epochs=_EPOCHS, seed=seed):
                loss = model(
                    input_ids=input_ids[batch], attention_mask=mask[batch], labels=labels[batch]
                ).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def write_occupation_probes(path: Path) -> Path:
    """The stereotype / anti-stereotype probe set of the tiny jobs (32 instances)."""
    document = {
        "name": "tiny-occupations",
        "attribute": "gender",
        "tasks": ["causal-lm"],
        "groups": {
            "stereotype": {"pronoun_f": "she", "pronoun_m": "he"},
            "anti-stereotype": {"pronoun_f": "he", "pronoun_m": "she"},
        },
        "lexicons": {"fjob": list(FEMALE_JOBS), "mjob": list(MALE_JOBS)},
        "templates": [
            {
                "id": f"{kind}{i + 1}",
                "text": template.format(job="{" + kind + "job}", pronoun="{pronoun_" + kind + "}"),
            }
            for i, template in enumerate(JOB_PROBE_TEMPLATES)
            for kind in ("f", "m")
        ],
    }
    return _write(path, document)


def write_mood_probes(path: Path, continuations: Sequence[str] = ()) -> Path:
    """he/she prompts "<time> he was" (8 instances), with continuations when given."""
    document: dict[str, object] = {
        "name": "tiny-mood" if not continuations else "tiny-mood-continuations",
        "attribute": "gender",
        "tasks": ["causal-lm"],
        "groups": {"male": {"pronoun": "he"}, "female": {"pronoun": "she"}},
        "lexicons": {"time": list(TIMES)},
        "templates": [MOOD_PROMPT_TEMPLATE],
    }
    if continuations:
        document["continuations"] = list(continuations)
    return _write(path, document)


def _write(path: Path, document: dict[str, object]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path
