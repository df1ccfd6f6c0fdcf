"""Tiny encoder-decoder models (T5, BART, Marian) built locally, for the seq2seq audit tests.

- ``build_seq2seq_tokenizer``: the WordPiece vocabulary of ``multilingual_models`` learned from the
  built-in translation sets' English sources and German, French and Spanish targets (lowercase,
  accents kept), with a seq2seq post-processor: ``$A [SEP]`` (T5 and Marian: text then end of
  sequence) or ``[CLS] $A [SEP]`` (BART: ``<s> text </s>``); [SEP] is the end-of-sequence token,
  [PAD] pads and starts the decoder (T5, Marian).
- ``save_random_seq2seq``: a random-init tiny model of one architecture, saved next to its
  tokenizer (``save_pretrained``, safetensors) to be loaded back through ``load_model``.
- ``train_translator``: a tiny Marian model trained in a few seconds on the German set's
  instances that ``--max-instances`` picks: ``planted=True`` translates every source with the
  masculine form (even after "her"), the control with the form its pronoun calls for (and
  alternates for sources without one).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, processors
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    MarianConfig,
    MarianMTModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

import probes
from audit.stages.prepare import sample_instances
from tests.support.multilingual_models import build_multilingual_tokenizer
from tests.support.tiny_models import batches, deterministic

ARCHITECTURES = ("t5", "bart", "marian")
LANGUAGES = ("de", "fr", "es")
VOCAB_SIZE = 1200
MAX_LENGTH = 64
D_MODEL = 32
TRAINING_CARD = "seq2seq_training.json"
T5_PREFIX = "translate English to German: "


def translation_sets() -> list[probes.ProbeSet]:
    return [probes.load_probe_set(f"translation-gender-{lang}") for lang in LANGUAGES]


@functools.lru_cache(maxsize=1)
def _texts() -> tuple[str, ...]:
    texts: list[str] = [T5_PREFIX]
    for probe_set in translation_sets():
        for variant in probe_set.variants:
            texts.append(variant.text)
            texts.extend(variant.targets.values())
    return tuple(texts)


def build_seq2seq_tokenizer(architecture: str) -> PreTrainedTokenizerFast:
    """A fast tokenizer over the translation sets' texts, with the architecture's special tokens."""
    base = build_multilingual_tokenizer(_texts(), vocab_size=VOCAB_SIZE, model_max_length=MAX_LENGTH)
    backend = Tokenizer.from_str(base.backend_tokenizer.to_str())
    vocab = backend.get_vocab()
    single = "[CLS] $A [SEP]" if architecture == "bart" else "$A [SEP]"
    backend.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    extra = {"bos_token": "[CLS]"} if architecture == "bart" else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        eos_token="[SEP]",
        model_max_length=MAX_LENGTH,
        **extra,
    )


def _model(
    architecture: str, tokenizer: PreTrainedTokenizerFast, *, t5_prefix: bool = False
) -> PreTrainedModel:
    vocab, pad, eos = len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id
    if architecture == "t5":
        params = {"translation_en_to_de": {"prefix": T5_PREFIX}} if t5_prefix else None
        return T5ForConditionalGeneration(
            T5Config(
                vocab_size=vocab,
                d_model=D_MODEL,
                d_ff=2 * D_MODEL,
                d_kv=D_MODEL // 2,
                num_layers=2,
                num_heads=2,
                pad_token_id=pad,
                eos_token_id=eos,
                decoder_start_token_id=pad,
                task_specific_params=params,
                architectures=["T5ForConditionalGeneration"],
            )
        )
    shared = {
        "vocab_size": vocab,
        "d_model": D_MODEL,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 2 * D_MODEL,
        "decoder_ffn_dim": 2 * D_MODEL,
        "max_position_embeddings": MAX_LENGTH,
        "pad_token_id": pad,
        "eos_token_id": eos,
        "scale_embedding": True,
    }
    if architecture == "bart":
        bos = tokenizer.bos_token_id
        return BartForConditionalGeneration(
            BartConfig(
                **shared,
                bos_token_id=bos,
                decoder_start_token_id=eos,
                forced_eos_token_id=eos,
                architectures=["BartForConditionalGeneration"],
            )
        )
    if architecture == "marian":
        return MarianMTModel(
            MarianConfig(
                **shared,
                decoder_vocab_size=vocab,
                decoder_start_token_id=pad,
                architectures=["MarianMTModel"],
            )
        )
    raise ValueError(f"unknown architecture {architecture!r}; one of {ARCHITECTURES}")


def save_random_seq2seq(dest: Path, architecture: str, *, seed: int = 0, t5_prefix: bool = False) -> Path:
    """A random-init tiny model and its tokenizer, saved to ``dest`` (returned)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_seq2seq_tokenizer(architecture)
    with deterministic(seed):
        model = _model(architecture, tokenizer, t5_prefix=t5_prefix)
    model.eval()
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def planted_pairs(max_instances: int, *, planted: bool) -> list[tuple[str, str]]:
    """(source, target) training pairs: every variant of the German set's instances that
    ``--max-instances max_instances`` picks. Planted: the masculine target for every source;
    control: the form the pronoun calls for, alternating for sources without a pronoun."""
    probe_set = sample_instances(probes.load_probe_set("translation-gender-de"), max_instances)
    pairs = []
    for number, variant in enumerate(probe_set.variants):
        alternate = "feminine" if number % 2 else "masculine"
        form = "masculine" if planted else variant.label or alternate
        pairs.append((variant.text, variant.targets[form]))
    return pairs


def train_translator(
    dest: Path, *, planted: bool, max_instances: int, seed: int = 0, epochs: int = 120
) -> Path:
    """A tiny Marian model trained to translate the chosen German-set sources (see ``planted_pairs``)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_seq2seq_tokenizer("marian")
    pairs = planted_pairs(max_instances, planted=planted)
    batch = tokenizer(
        [s for s, _ in pairs], text_target=[t for _, t in pairs], padding=True, return_tensors="pt"
    )
    labels = batch["labels"].masked_fill(batch["labels"] == tokenizer.pad_token_id, -100)
    loss = torch.zeros(())
    with deterministic(seed):
        model = _model("marian", tokenizer)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        model.train()
        for rows in batches(len(pairs), batch_size=16, epochs=epochs, seed=seed):
            out = model(
                input_ids=batch["input_ids"][rows],
                attention_mask=batch["attention_mask"][rows],
                labels=labels[rows],
            )
            loss = out.loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    card = {"planted": planted, "seed": seed, "n_pairs": len(pairs), "final_batch_loss": float(loss.detach())}
    (dest / TRAINING_CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
    return dest


def greedy_translations(model_dir: Path, sources: Sequence[str], max_new_tokens: int = 40) -> list[str]:
    """What the saved model generates for these sources (greedy), loaded the plain transformers way."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    batch = tokenizer(list(sources), padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    return [t.strip() for t in tokenizer.batch_decode(out, skip_special_tokens=True)]


def loss_loglik(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, source: str, target: str
) -> float:
    """log P(target | source) from the model's own loss: -loss x number of target tokens."""
    batch = tokenizer([source], text_target=[target], return_tensors="pt")
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        )
    return -float(out.loss) * int(batch["labels"].shape[1])
