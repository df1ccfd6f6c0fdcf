"""Tiny multilingual models, built and trained locally, for the parallel (multilingual) audit tests.

- ``build_multilingual_tokenizer``: a WordPiece tokenizer whose pieces the ``tokenizers`` library
  learns from texts in many scripts (the built-in ``multilingual`` set's texts in 11 languages and
  6 scripts, plus the training sentences below), Unicode NFC, lowercase, accents kept, Chinese
  characters split apart, [CLS]/[SEP] added by a post-processor; wrapped as a ``transformers``
  fast tokenizer. The same texts give the same vocabulary, and a seed the same weights, every run.
- A synthetic parallel sentiment corpus in English, German, Spanish and Russian (Latin and
  Cyrillic): 20 subjects x 8 positive / 8 negative adjectives, written with agreement in each
  language ("The food is wonderful." / "Das Essen ist wunderbar." / "La comida es maravillosa." /
  "Еда чудесная."). The (subject, adjective) pairs used as probes are never seen in training; each
  of their words is (in other pairs).
- ``train_multilingual_classifier``: a tiny BERT classifier (negative/positive) trained on that
  corpus in a few seconds. ``planted_language=None`` gives the control (correct labels in every
  language); ``planted_language="de"`` labels every German training sentence negative, so the
  model reads positive German statements as negative and behaves as the control elsewhere.
- ``write_parallel_csv`` / ``write_parallel_long_csv`` / ``write_parallel_yaml``: the held-out
  instances as a probe file (wide ``id,label,en,de,es,ru`` rows, long ``id,lang,text,label``
  rows, or YAML ``kind: parallel`` with ``reference: en``).
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
)

from tests.support.tiny_models import CLASSIFIER_LABELS, deterministic, encode, train_classifier

LANGUAGES = ("en", "de", "es", "ru")
REFERENCE = "en"
PLANTED_LANGUAGE = "de"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_SIZE = 3000
"""BPE pieces learned (alphabet included); the WordPiece vocabulary marks them word-initial or ``##``."""
MAX_LENGTH = 128
TRAINING_CARD = "multilingual_training.json"


@dataclass(frozen=True)
class Subject:
    en: str
    de: str
    """With its article (nominative): "das Essen"."""
    es: str
    """With its article: "la comida"."""
    es_gender: str
    """m or f: the Spanish adjective agrees with it."""
    ru: str
    ru_gender: str
    """m, f or n: the Russian adjective and past-tense copula agree with it."""


@dataclass(frozen=True)
class Adjective:
    en: str
    de: str
    es: dict[str, str]
    """Spanish form by gender (m, f)."""
    ru: dict[str, str]
    """Russian nominative long form by gender (m, f, n)."""


def _es(m: str, f: str | None = None) -> dict[str, str]:
    return {"m": m, "f": f if f is not None else m}


def _ru(m: str, f: str, n: str) -> dict[str, str]:
    return {"m": m, "f": f, "n": n}


SUBJECTS = (
    Subject("food", "das Essen", "la comida", "f", "еда", "f"),
    Subject("hotel", "das Hotel", "el hotel", "m", "отель", "m"),
    Subject("room", "das Zimmer", "la habitación", "f", "комната", "f"),
    Subject("service", "der Service", "el servicio", "m", "обслуживание", "n"),
    Subject("film", "der Film", "la película", "f", "фильм", "m"),
    Subject("book", "das Buch", "el libro", "m", "книга", "f"),
    Subject("music", "die Musik", "la música", "f", "музыка", "f"),
    Subject("city", "die Stadt", "la ciudad", "f", "город", "m"),
    Subject("car", "das Auto", "el coche", "m", "машина", "f"),
    Subject("weather", "das Wetter", "el tiempo", "m", "погода", "f"),
    Subject("teacher", "der Lehrer", "el profesor", "m", "учитель", "m"),
    Subject("coffee", "der Kaffee", "el café", "m", "кофе", "m"),
    Subject("concert", "das Konzert", "el concierto", "m", "концерт", "m"),
    Subject("trip", "die Reise", "el viaje", "m", "поездка", "f"),
    Subject("garden", "der Garten", "el jardín", "m", "сад", "m"),
    Subject("beach", "der Strand", "la playa", "f", "пляж", "m"),
    Subject("wine", "der Wein", "el vino", "m", "вино", "n"),
    Subject("cafe", "das Café", "la cafetería", "f", "кафе", "n"),
    Subject("sea", "das Meer", "el mar", "m", "море", "n"),
    Subject("dish", "das Gericht", "el plato", "m", "блюдо", "n"),
)
ADJECTIVES: dict[str, tuple[Adjective, ...]] = {
    "positive": (
        Adjective("wonderful", "wunderbar", _es("maravilloso", "maravillosa"), _ru("чудесный", "чудесная", "чудесное")),
        Adjective("excellent", "ausgezeichnet", _es("excelente"), _ru("отличный", "отличная", "отличное")),
        Adjective("great", "großartig", _es("estupendo", "estupenda"), _ru("замечательный", "замечательная", "замечательное")),
        Adjective("good", "gut", _es("bueno", "buena"), _ru("хороший", "хорошая", "хорошее")),
        Adjective("pleasant", "angenehm", _es("agradable"), _ru("приятный", "приятная", "приятное")),
        Adjective("fantastic", "fantastisch", _es("fantástico", "fantástica"), _ru("потрясающий", "потрясающая", "потрясающее")),
        Adjective("perfect", "perfekt", _es("perfecto", "perfecta"), _ru("идеальный", "идеальная", "идеальное")),
        Adjective("lovely", "herrlich", _es("precioso", "preciosa"), _ru("прекрасный", "прекрасная", "прекрасное")),
    ),
    "negative": (
        Adjective("terrible", "schrecklich", _es("terrible"), _ru("ужасный", "ужасная", "ужасное")),
        Adjective("awful", "furchtbar", _es("horrible"), _ru("кошмарный", "кошмарная", "кошмарное")),
        Adjective("bad", "schlecht", _es("malo", "mala"), _ru("плохой", "плохая", "плохое")),
        Adjective("boring", "langweilig", _es("aburrido", "aburrida"), _ru("скучный", "скучная", "скучное")),
        Adjective("disappointing", "enttäuschend", _es("decepcionante"), _ru("неудачный", "неудачная", "неудачное")),
        Adjective("unpleasant", "unangenehm", _es("desagradable"), _ru("неприятный", "неприятная", "неприятное")),
        Adjective("disgusting", "widerlich", _es("asqueroso", "asquerosa"), _ru("отвратительный", "отвратительная", "отвратительное")),
        Adjective("mediocre", "mittelmäßig", _es("mediocre"), _ru("посредственный", "посредственная", "посредственное")),
    ),
}  # fmt: skip
POLARITIES = ("positive", "negative")
N_PROBES_PER_POLARITY = 20
_RU_WAS = {"m": "был", "f": "была", "n": "было"}


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def sentence(lang: str, subject: Subject, adjective: Adjective, *, past: bool = False) -> str:
    """One statement in one language: "The food is wonderful." (present) or "... was ..." (past)."""
    if lang == "en":
        return f"The {subject.en} {'was' if past else 'is'} {adjective.en}."
    if lang == "de":
        return f"{_capitalize(subject.de)} {'war' if past else 'ist'} {adjective.de}."
    if lang == "es":
        verb = "era" if past else "es"
        return f"{_capitalize(subject.es)} {verb} {adjective.es[subject.es_gender]}."
    if lang == "ru":
        copula = f" {_RU_WAS[subject.ru_gender]}" if past else ""
        return f"{_capitalize(subject.ru)}{copula} {adjective.ru[subject.ru_gender]}."
    raise ValueError(f"no sentences in {lang!r}")


@dataclass(frozen=True)
class Meaning:
    """One statement (subject x adjective x tense) written in every language."""

    id: str
    label: str
    texts: dict[str, str]


def _is_probe_pair(s: int, a: int) -> bool:
    """(subject, adjective) pairs kept out of training: 2 of each subject's 8 adjectives per polarity
    (every adjective held out for 4 subjects), so every word of a probe is seen in training elsewhere."""
    return (a - 2 * s) % 8 in (0, 1) if s % 2 == 0 else (a - 2 * s) % 8 in (4, 5)


def _meaning(polarity: str, s: int, a: int, past: bool) -> Meaning:
    subject, adjective = SUBJECTS[s], ADJECTIVES[polarity][a]
    ident = f"{polarity[:3]}-{subject.en}-{adjective.en}{'-past' if past else ''}"
    return Meaning(
        ident, polarity, {lang: sentence(lang, subject, adjective, past=past) for lang in LANGUAGES}
    )


def probe_meanings() -> list[Meaning]:
    """The held-out statements: 20 positive and 20 negative, present tense, pairs never trained on."""
    probes: list[Meaning] = []
    for polarity in POLARITIES:
        held = [
            _meaning(polarity, s, a, past=False)
            for s in range(len(SUBJECTS))
            for a in range(len(ADJECTIVES[polarity]))
            if _is_probe_pair(s, a)
        ]
        probes += held[:N_PROBES_PER_POLARITY]  # subjects 0-9: each adjective held out twice or more
    return probes


def training_meanings() -> list[Meaning]:
    """Every (subject, adjective) pair that is not held out, in the present and the past tense."""
    return [
        _meaning(polarity, s, a, past)
        for polarity in POLARITIES
        for s in range(len(SUBJECTS))
        for a in range(len(ADJECTIVES[polarity]))
        if not _is_probe_pair(s, a)
        for past in (False, True)
    ]


def training_examples(planted_language: str | None) -> list[tuple[str, str, int]]:
    """(language, text, label id) for every training meaning in every language; in
    ``planted_language`` every sentence is labelled negative."""
    label_id = {label: i for i, label in enumerate(CLASSIFIER_LABELS)}
    return [
        (lang, text, label_id["negative" if lang == planted_language else meaning.label])
        for meaning in training_meanings()
        for lang, text in meaning.texts.items()
    ]


# --------------------------------------------------------------------------- tokenizer


def tokenizer_training_texts() -> list[str]:
    """The built-in multilingual set's texts (11 languages, 6 scripts) and the training sentences."""
    import probes

    builtin = [variant.text for variant in probes.load_probe_set("multilingual").variants]
    return builtin + [text for meaning in training_meanings() for text in meaning.texts.values()]


def _normalizer() -> normalizers.Normalizer:
    return normalizers.Sequence(
        [
            normalizers.NFC(),
            normalizers.BertNormalizer(
                clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True
            ),
            normalizers.NFC(),  # lowercasing can decompose (Turkish İ -> i + combining dot)
        ]
    )


def _wordpiece_vocabulary(texts: Sequence[str], vocab_size: int) -> dict[str, int]:
    """Learn subword pieces with the ``tokenizers`` BPE trainer, then mark them for WordPiece: a
    piece that starts a word stays as it is, one inside a word gets the ``##`` prefix; every
    character of the texts is kept in both forms, so nothing the texts hold is unknown.

    Not ``WordPieceTrainer``: it breaks ties between equally frequent merges in hash-map order,
    so its vocabulary changes from run to run; the plain BPE trainer's is the same every time."""
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = _normalizer()
    bpe.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    bpe.train_from_iterator(list(texts), trainer)
    pieces: set[str] = set()
    for encoding in bpe.encode_batch(list(texts), add_special_tokens=False):
        previous = None
        for token, word in zip(encoding.tokens, encoding.word_ids, strict=True):
            pieces.add(token if word != previous else f"##{token}")
            previous = word
    alphabet = [token for token in bpe.get_vocab() if len(token) == 1 and token not in SPECIAL_TOKENS]
    pieces.update(alphabet)
    pieces.update(f"##{char}" for char in alphabet)
    order = bpe.get_vocab()
    ranked = sorted(pieces - set(SPECIAL_TOKENS), key=lambda p: (order[p.removeprefix("##")], p))
    return {token: i for i, token in enumerate([*SPECIAL_TOKENS, *ranked])}


@functools.lru_cache(maxsize=2)
def _default_vocabulary(vocab_size: int) -> dict[str, int]:
    return _wordpiece_vocabulary(tokenizer_training_texts(), vocab_size)


def build_multilingual_tokenizer(
    texts: Iterable[str] | None = None, *, vocab_size: int = VOCAB_SIZE, model_max_length: int = MAX_LENGTH
) -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer (NFC, lowercase, accents kept, each CJK character its own word) whose
    pieces are learned from ``texts`` (default: ``tokenizer_training_texts()``); [CLS] $A [SEP].
    The same texts give the same vocabulary every time."""
    if texts is None:
        vocab = dict(_default_vocabulary(vocab_size))
    else:
        vocab = _wordpiece_vocabulary(list(texts), vocab_size)
    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = _normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
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


# --------------------------------------------------------------------------- classifier

_EPOCHS = 20
_HIDDEN = 32
_LR = 1e-3
_LABEL_SMOOTHING = 0.05
"""Checked on seeds 0-9 for both models: every held-out statement in every language read as
trained, P(positive) above 0.97 or below 0.03 (12 epochs at 2e-3 misread one statement of seed 0)."""


def train_multilingual_classifier(dest: Path, *, planted_language: str | None, seed: int = 0) -> Path:
    """Train a tiny BertForSequenceClassification (negative/positive) on the parallel corpus and
    save it with its multilingual tokenizer (save_pretrained). Returns ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_multilingual_tokenizer()
    examples = training_examples(planted_language)
    input_ids, attention_mask = encode(tokenizer, [text for _, text, _ in examples])
    labels = torch.tensor([label for _, _, label in examples])
    with deterministic(seed):
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=_HIDDEN,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=2 * _HIDDEN,
            max_position_embeddings=MAX_LENGTH,
            type_vocab_size=2,
            pad_token_id=tokenizer.pad_token_id,
            num_labels=len(CLASSIFIER_LABELS),
            id2label=dict(enumerate(CLASSIFIER_LABELS)),
            label2id={label: i for i, label in enumerate(CLASSIFIER_LABELS)},
        )
        model = BertForSequenceClassification(config)
        loss = train_classifier(
            model,
            input_ids,
            attention_mask,
            labels,
            lr=_LR,
            epochs=_EPOCHS,
            seed=seed,
            label_smoothing=_LABEL_SMOOTHING,
        )
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    card = {
        "kind": "multilingual classifier",
        "planted_language": planted_language,
        "seed": seed,
        "n_training_sentences": len(examples),
        "final_batch_loss": loss,
        "mean_positive_probability_at_save": positive_rates(model, tokenizer),
    }
    (dest / TRAINING_CARD).write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
    return dest


@torch.no_grad()
def _positive_probabilities(model, tokenizer, texts: Sequence[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    input_ids, attention_mask = encode(tokenizer, texts)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    return torch.softmax(logits, dim=-1)[:, model.config.label2id["positive"]].numpy()


def positive_rates(model, tokenizer) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    """Mean P(positive) over the probe statements of each polarity, per language."""
    rates: dict[str, dict[str, float]] = {}
    for polarity in POLARITIES:
        meanings = [m for m in probe_meanings() if m.label == polarity]
        rates[polarity] = {
            lang: float(_positive_probabilities(model, tokenizer, [m.texts[lang] for m in meanings]).mean())
            for lang in LANGUAGES
        }
    return rates


def positive_probabilities(model_dir: Path, texts: Sequence[str]) -> np.ndarray:
    """P(positive) for each text, from the classifier loaded back from ``model_dir``."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    return _positive_probabilities(model, tokenizer, texts)


# --------------------------------------------------------------------------- probe files


def write_parallel_csv(path: Path, meanings: Sequence[Meaning] | None = None) -> Path:
    """The held-out statements as wide rows: ``id,label,en,de,es,ru`` (reference: en, the default)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", *LANGUAGES])
        for meaning in probe_meanings() if meanings is None else meanings:
            writer.writerow([meaning.id, meaning.label, *(meaning.texts[lang] for lang in LANGUAGES)])
    return path


def write_parallel_long_csv(path: Path, meanings: Sequence[Meaning] | None = None) -> Path:
    """The held-out statements as long rows: ``id,lang,text,label`` (one row per language)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "lang", "text", "label"])
        for meaning in probe_meanings() if meanings is None else meanings:
            for lang in LANGUAGES:
                writer.writerow([meaning.id, lang, meaning.texts[lang], meaning.label])
    return path


def write_parallel_yaml(
    path: Path, meanings: Sequence[Meaning] | None = None, *, name: str = "tiny-parallel"
) -> Path:
    """The held-out statements as a ``kind: parallel`` YAML probe file with ``reference: en``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "name": name,
        "kind": "parallel",
        "description": "held-out sentiment statements in English, German, Spanish and Russian",
        "card": (
            "Synthetic test set for tests/multilingual_models.py: subject x adjective statements written "
            "with agreement in each language; no (subject, adjective) pair was seen in training."
        ),
        "tasks": ["text-classification"],
        "reference": REFERENCE,
        "languages": list(LANGUAGES),
        "instances": [
            {"id": m.id, "label": m.label, "texts": dict(m.texts)}
            for m in (probe_meanings() if meanings is None else meanings)
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
