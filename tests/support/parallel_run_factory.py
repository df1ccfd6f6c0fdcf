"""Write a realistic run folder of a parallel (multilingual) audit for the dashboard's Languages page.

It follows the run-folder contract of audit/tables.py (schema 3) and the issue-4 contract for parallel
probe sets (findings with attribute "language", group_a the language, group_b the reference language
for comparisons and null for per-language descriptions), without running a model. The texts are the
real built-in ``multilingual`` set (``probes.load_probe_set("multilingual")``): ``N_PER_LABEL``
positive, negative and neutral instances in English (the reference), German, Arabic and Chinese.

What is planted:

- a classifier (labels negative/positive) whose English scores follow the expected label, whose German
  texts get ``DE_SHIFT`` less positive logit (a parity shift: German parity rows are significant),
  whose Arabic texts only add noise (no parity finding), and which reads Chinese as mostly unknown
  tokens, so every Chinese text gets about the same clearly negative score (``ZH_LOGIT``);
- a tokenizer that cuts words into pieces of ``PIECE_CHARS[lang]`` characters (Arabic splits finest),
  reads Chinese character by character with 7 in 10 characters unknown (``unknown_rate`` 0.7, at or
  above the run's ``unknown_rate_limit`` 0.5: Chinese is "unreadable", its parity rows keep their
  statistics but are never significant, severity "none", with the note), and gives every tenth Arabic
  piece as raw bytes (``byte_fallback_rate`` 0.1);
- token attributions (integrated gradients, output ``prob:positive``) for every language of the
  ``ATTRIBUTED`` instances with the largest |parity delta| over the readable languages, larger on
  content words than on function words.

Statistics are the engine's own primitives (audit.metrics.stats: BCa bootstrap intervals, sign-flip
p-values, Benjamini-Hochberg q-values over the run's parity rows, Wilson intervals for shares).

``downgrade_to_schema_2`` turns a run folder into what a version-2 run looked like (no tokenization
columns in examples), for the "old runs still open" tests.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from audit.metrics.paired import SEVERITY_CUTOFFS
from audit.metrics.stats import (
    benjamini_hochberg,
    bootstrap_ci,
    cohens_dz,
    flip_rate_ci,
    sign_flip_pvalue,
)
from audit.tables import SCHEMA_VERSION, TABLES
from probes import load_probe_set

PROBE_SET = "multilingual"
REFERENCE = "en"
LANGUAGES = ("en", "de", "ar", "zh")
RTL_LANGUAGE = "ar"
UNREADABLE = "zh"
SHIFTED = "de"
N_PER_LABEL = 4
"""Instances per label kind (pos-, neg-, neu-): 12 in all, enough for an exact sign-flip p of 2/4096."""
LABELS = ("negative", "positive")
OUTPUTS = ("prob:negative", "prob:positive")
EXPLAINED = "prob:positive"
METHOD = "integrated_gradients"
ATTRIBUTED = 2
ALPHA, MIN_EFFECT, UNKNOWN_RATE_LIMIT = 0.05, 0.05, 0.5
BASE_LOGIT = {"positive": 2.2, "negative": -2.2, None: 0.0}
DE_SHIFT = -1.0
SIMILARITY = "sim:reference"
EMBEDDING_SIMILARITY = {"de": 0.72, "ar": 0.86, "zh": 0.3}
ZH_LOGIT = -3.2
"""Every Chinese text scores about this negative logit: its parity rows would be significant were
Chinese readable (q < alpha), but they are not a bias finding."""
PIECE_CHARS = {"en": 6, "de": 4, "ar": 2}
UNKNOWN_EVERY = (0, 1, 2, 3, 4, 5, 6)  # zh: characters whose position mod 10 is here are [UNK]
NO_SPACES = frozenset({"zh", "ja", "th"})
FUNCTION_WORDS = {
    "en": frozenset(
        ["the", "a", "an", "at", "this", "that", "was", "is", "to", "of", "in", "and", "for", "every", "it"]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "das",
            "den",
            "dem",
            "des",
            "ein",
            "eine",
            "in",
            "im",
            "zum",
            "zur",
            "war",
            "ist",
            "und",
            "für",
            "alle",
        ]
    ),
    "ar": frozenset(["في", "هذا", "هذه", "كان", "كانت", "إلى", "من", "على", "و", "كل"]),
}
"""Small stand-ins for the languages' function-word lists; zh has none (content share: NaN + note)."""
MARKUP_INSTANCE = "pos-001"
MARKUP_TAIL = "<b>Really</b> & <script>alert('x')</script>"
"""With ``markup``, the English text of MARKUP_INSTANCE ends with this."""
SCHEMA_3_COLUMNS = ("n_text_tokens", "n_words", "n_chars", "n_unknown", "n_unknown_chars", "n_byte_fallback")

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_PIECE = re.compile(r"[^\W_]+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Piece:
    """One token of the planted tokenizer over the characters [start, end) of a text."""

    token: str
    start: int
    end: int
    unknown: bool = False
    byte_fallback: bool = False


def tokenize(text: str, lang: str) -> list[Piece]:
    """The planted tokenizer: word pieces of PIECE_CHARS[lang] characters (``##`` continues a word),
    punctuation alone; languages without spaces character by character, 7 in 10 unknown."""
    pieces: list[Piece] = []
    if lang in NO_SPACES:
        chars = [(i, c) for i, c in enumerate(text) if not c.isspace()]
        for position, (index, char) in enumerate(chars):
            unknown = position % 10 in UNKNOWN_EVERY
            pieces.append(Piece("[UNK]" if unknown else char, index, index + 1, unknown=unknown))
        return pieces
    size = PIECE_CHARS[lang]
    for match in _PIECE.finditer(text):
        word, start = match.group(), match.start()
        for offset in range(0, len(word), size):
            piece = word[offset : offset + size]
            in_bytes = lang == "ar" and len(pieces) % 10 == 9
            token = f"<0x{ord(piece[0]) & 0xFF:02X}>" if in_bytes else ("##" if offset else "") + piece
            pieces.append(Piece(token, start + offset, start + offset + len(piece), byte_fallback=in_bytes))
    return pieces


def count_words(text: str, lang: str) -> int | None:
    return None if lang in NO_SPACES else len(_WORD.findall(text))


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def _severity(significant: bool, effect: float, threshold: float) -> str:
    if not significant:
        return "none"
    ratio = abs(effect) / threshold
    return "low" if ratio < SEVERITY_CUTOFFS[0] else "medium" if ratio < SEVERITY_CUTOFFS[1] else "high"


def chosen_instances(n_per_label: int = N_PER_LABEL) -> list[tuple[str, str | None, dict[str, str]]]:
    """(instance id, expected label, {lang: text}) of the first n positive, negative and neutral instances."""
    probe_set = load_probe_set(PROBE_SET)
    chosen = []
    for prefix in ("pos-", "neg-", "neu-"):
        instances = [i for i in probe_set.instances if i.instance_id.startswith(prefix)][:n_per_label]
        for instance in instances:
            texts = {v.lang: v.text for v in instance.variants if v.lang in LANGUAGES}
            chosen.append((instance.instance_id, instance.variants[0].label, texts))
    return chosen


def unreadable_note(lang: str, rate: float) -> str:
    """The unknown_rate row's note of an unreadable language (as audit/metrics/multilingual.py writes it)."""
    return f"{rate:.0%} of the {lang} tokens are the unknown token: the model cannot read {lang}"


def not_a_bias_note(lang: str, rate: float) -> str:
    """The note of an unreadable language's comparison rows (parity, label_agreement)."""
    return (
        f"{lang} is mostly unknown tokens ({rate:.0%}): this difference measures missing vocabulary, "
        "not a bias finding"
    )


def write_parallel_run(
    runs_dir: Path,
    run_id: str = "20261210-101500-minilm-sentiment-multilingual",
    *,
    model_name: str = "minilm-sentiment",
    created_at: str = "2026-12-10T10:15:00Z",
    seed: int = 0,
    de_shift: float = DE_SHIFT,
    with_attributions: bool = True,
    markup: bool = False,
    embedding: bool = False,
) -> Path:
    """Write ``<runs_dir>/<run_id>/`` holding a parallel audit of a sentiment classifier and return it.

    ``de_shift`` is the planted German logit shift (0: no parity finding for German). ``markup`` appends
    ``MARKUP_TAIL`` (``<b>``, ``&``, ``<script>``) to the English text of ``MARKUP_INSTANCE``.
    ``embedding``: an embedding model without associations instead, scored by its similarity to the
    reference text (output ``sim:reference``; German ``EMBEDDING_SIMILARITY`` lower than Arabic, Chinese
    near 0.3), so the set gets translation_similarity rows instead of parity and no label accuracy.
    """
    rng = np.random.default_rng(seed)
    run_dir = Path(runs_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    instances = chosen_instances()
    if markup:
        first_id, first_label, first_texts = instances[0]
        assert first_id == MARKUP_INSTANCE
        instances[0] = (first_id, first_label, dict(first_texts, en=f"{first_texts['en']} {MARKUP_TAIL}"))

    examples: list[dict[str, object]] = []
    predictions: list[dict[str, object]] = []
    pieces: dict[str, list[Piece]] = {}
    scores: dict[tuple[str, str], dict[str, float]] = {}  # (instance, lang) -> output -> score
    labels: dict[tuple[str, str], str] = {}
    for instance_id, label, texts in instances:
        difficulty = float(rng.normal(0.0, 0.3))
        for lang in LANGUAGES:
            text = texts[lang]
            example_id = f"{PROBE_SET}/{instance_id}/{lang}"
            tokens = tokenize(text, lang)
            pieces[example_id] = tokens
            examples.append(
                {
                    "example_id": example_id,
                    "probe_set": PROBE_SET,
                    "instance_id": instance_id,
                    "variant": lang,
                    "attribute": "language",
                    "lang": lang,
                    "text": text,
                    "label": label,
                    "focus": "[]",
                    "n_tokens": len(tokens) + 2,
                    "truncated": False,
                    "n_windows": 1,
                    "doc_length": None,
                    "position": None,
                    "swap_group": None,
                    "n_text_tokens": len(tokens),
                    "n_words": count_words(text, lang),
                    "n_chars": sum(not c.isspace() for c in text),
                    "n_unknown": sum(t.unknown for t in tokens),
                    "n_unknown_chars": sum(t.end - t.start for t in tokens if t.unknown),
                    "n_byte_fallback": sum(t.byte_fallback for t in tokens),
                }
            )
            if embedding:
                similarity = (
                    1.0 if lang == REFERENCE else EMBEDDING_SIMILARITY[lang] + float(rng.normal(0, 0.03))
                )
                nearest = instance_id if lang != UNREADABLE or rng.random() < 0.3 else "pos-001"
                scores[(instance_id, lang)] = {SIMILARITY: similarity}
                labels[(instance_id, lang)] = nearest
                predictions.append(
                    {"example_id": example_id, "output": SIMILARITY, "score": similarity, "label": nearest}
                )
                continue
            logit = BASE_LOGIT[label] + difficulty
            if lang == SHIFTED:
                logit += de_shift + float(rng.normal(0.0, 0.1))
            elif lang == UNREADABLE:
                logit = ZH_LOGIT + float(rng.normal(0.0, 0.1))  # mostly [UNK]: the text hardly matters
            elif lang != REFERENCE:
                logit += float(rng.normal(0.0, 0.25))
            positive = _sigmoid(logit)
            scores[(instance_id, lang)] = {"prob:negative": 1.0 - positive, "prob:positive": positive}
            labels[(instance_id, lang)] = LABELS[int(positive >= 0.5)]
            for output, score in scores[(instance_id, lang)].items():
                predictions.append(
                    {
                        "example_id": example_id,
                        "output": output,
                        "score": score,
                        "label": labels[(instance_id, lang)],
                    }
                )
    examples_frame = pd.DataFrame(examples)
    predictions_frame = pd.DataFrame(predictions, columns=TABLES["predictions"])

    effects_rows: list[dict[str, object]] = []
    for instance_id, _, _ in instances:
        for lang in LANGUAGES[1:]:
            for output in (SIMILARITY,) if embedding else OUTPUTS:
                score_a, score_b = (
                    scores[(instance_id, lang)][output],
                    scores[(instance_id, REFERENCE)][output],
                )
                label_a, label_b = labels[(instance_id, lang)], labels[(instance_id, REFERENCE)]
                effects_rows.append(
                    {
                        "probe_set": PROBE_SET,
                        "instance_id": instance_id,
                        "attribute": "language",
                        "group_a": lang,
                        "group_b": REFERENCE,
                        "output": output,
                        "score_a": score_a,
                        "score_b": score_b,
                        "delta": score_a - score_b,
                        "label_a": label_a,
                        "label_b": label_b,
                        "flipped": label_a != label_b,
                        "doc_length": None,
                        "position": None,
                    }
                )
    effects_frame = pd.DataFrame(effects_rows, columns=TABLES["effects"])

    unknown_rates = {
        lang: float(
            np.mean([sum(t.unknown for t in pieces[e]) / len(pieces[e]) for e in _ids(examples_frame, lang)])
        )
        for lang in LANGUAGES
    }
    unreadable = {lang: rate for lang, rate in unknown_rates.items() if rate >= UNKNOWN_RATE_LIMIT}
    attributed = _top_instances(effects_frame, set(unreadable), ATTRIBUTED) if with_attributions else []
    explained = SIMILARITY if embedding else EXPLAINED
    attribution_rows = _attributions(examples_frame, pieces, attributed, rng, explained)
    findings_frame = _findings(
        examples_frame, effects_frame, predictions_frame, attribution_rows, unreadable, seed, embedding
    )

    tables: dict[str, pd.DataFrame] = {
        "examples": examples_frame[TABLES["examples"]],
        "predictions": predictions_frame,
        "effects": effects_frame,
        "findings": findings_frame,
    }
    if with_attributions:
        tables["attributions"] = attribution_rows
    for name, frame in tables.items():
        frame.to_parquet(run_dir / f"{name}.parquet", index=False)

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": created_at,
        "status": "complete",
        "model": {
            "name": model_name,
            "source": f"/models/{model_name}",
            "task": "embedding" if embedding else "text-classification",
            "labels": [] if embedding else list(LABELS),
            "revision": None,
            "weight_hash": "0" * 64,
            "max_length": 512,
            "model_class": "BertModel" if embedding else "BertForSequenceClassification",
        },
        "probe_sets": [
            {
                "name": PROBE_SET,
                "kind": "parallel",
                "source": f"builtin:{PROBE_SET}",
                "hash": "e" * 64,
                "n_instances": len(instances),
                "n_variants": len(examples_frame),
                "reference_lang": REFERENCE,
                "languages": sorted(LANGUAGES),
            }
        ],
        "config": {
            "alpha": ALPHA,
            "min_effect": MIN_EFFECT,
            "seed": seed,
            "attribute_top": ATTRIBUTED,
            "unknown_rate_limit": UNKNOWN_RATE_LIMIT,
        },
        "timings": {"load": 1.0, "score": 3.0, "findings": 1.0, "attributions": 5.0, "write": 0.2},
        "summary": {
            "n_examples": len(examples_frame),
            "n_findings": len(findings_frame),
            "n_significant": int(findings_frame["significant"].sum()),
            "unreadable_languages": {PROBE_SET: unreadable},
        },
        "versions": {"probelens": "0.3.0", "torch": "2.13.0", "transformers": "5.24.0"},
        "git_hash": "deadbeef",
        "device": "cpu",
    }
    (run_dir / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return run_dir


def _ids(examples: pd.DataFrame, lang: str) -> list[str]:
    return list(examples.loc[examples["lang"] == lang, "example_id"])


def _top_instances(effects: pd.DataFrame, unreadable: set[str], top: int) -> list[str]:
    """Instances with the largest |parity delta| over the readable languages, largest first."""
    readable = effects[~effects["group_a"].isin(unreadable)]
    largest = readable["delta"].abs().groupby(readable["instance_id"]).max()
    return list(largest.sort_values(ascending=False).index[:top])


def _attributions(
    examples: pd.DataFrame,
    pieces: dict[str, list[Piece]],
    instances: list[str],
    rng: np.random.Generator,
    explained: str,
) -> pd.DataFrame:
    """Token rows ([CLS], the text's pieces, [SEP]) for every language of the attributed instances."""
    rows: list[dict[str, object]] = []
    chosen = examples[examples["instance_id"].isin(instances)]
    for example_id, lang, text in zip(chosen["example_id"], chosen["lang"], chosen["text"], strict=True):
        tokens = [Piece("[CLS]", 0, 0), *pieces[example_id], Piece("[SEP]", 0, 0)]
        function_words = FUNCTION_WORDS.get(lang, frozenset())
        for index, token in enumerate(tokens):
            special = token.token in ("[CLS]", "[SEP]")
            word = _word_at(text, token.start) if not special else ""
            size = 0.02 if special or word.casefold() in function_words else 0.12
            value = float(rng.normal(0.0, 0.3) * size + (size if rng.random() < 0.7 else -size))
            rows.append(
                {
                    "example_id": example_id,
                    "method": METHOD,
                    "output": explained,
                    "token_index": index,
                    "token": token.token,
                    "char_start": None if special else token.start,
                    "char_end": None if special else token.end,
                    "attribution": value,
                    "is_focus": False,
                    "convergence_delta": 0.003 if index == 0 else None,
                }
            )
    return pd.DataFrame(rows, columns=TABLES["attributions"])


def _word_at(text: str, position: int) -> str:
    for match in _WORD.finditer(text):
        if match.start() <= position < match.end():
            return match.group()
    return ""


def _row(lang: str, metric: str, output: str | None, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "probe_set": PROBE_SET,
        "attribute": "language",
        "group_a": lang,
        "group_b": None,
        "metric": metric,
        "output": output,
        "effect": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": math.nan,
        "q_value": math.nan,
        "effect_size": math.nan,
        "n": 0,
        "threshold": math.nan,
        "significant": False,
        "severity": "none",
        "doc_length": None,
        "position": None,
        "note": None,
    }
    row.update(values)
    return row


def _mean_row(
    lang: str, metric: str, values: list[float], seed: int, note: str | None = None
) -> dict[str, object]:
    low, high = bootstrap_ci(values, n_resamples=1000, rng=seed)
    return _row(
        lang, metric, None, effect=float(np.mean(values)), ci_low=low, ci_high=high, n=len(values), note=note
    )


def _share_row(lang: str, metric: str, hits: list[bool], reference: str | None) -> dict[str, object]:
    share = flip_rate_ci(np.asarray(hits, dtype=bool))
    return _row(
        lang,
        metric,
        None,
        group_b=reference,
        effect=share.rate,
        ci_low=share.ci_low,
        ci_high=share.ci_high,
        n=share.n,
    )


def _findings(
    examples: pd.DataFrame,
    effects: pd.DataFrame,
    predictions: pd.DataFrame,
    attributions: pd.DataFrame,
    unreadable: dict[str, float],
    seed: int,
    embedding: bool,
) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    explained = SIMILARITY if embedding else EXPLAINED
    # parity: per language x output, one BH family of the run's parity rows
    parity: list[dict[str, object]] = []
    for lang in LANGUAGES[1:] if not embedding else ():
        for output in OUTPUTS:
            deltas = effects.loc[
                (effects["group_a"] == lang) & (effects["output"] == output), "delta"
            ].to_numpy()
            low, high = bootstrap_ci(deltas, n_resamples=1000, rng=seed)
            note = None
            if lang in unreadable:
                note = not_a_bias_note(lang, unreadable[lang])
            parity.append(
                _row(
                    lang,
                    "parity",
                    output,
                    group_b=REFERENCE,
                    effect=float(deltas.mean()),
                    ci_low=low,
                    ci_high=high,
                    p_value=sign_flip_pvalue(deltas, rng=seed),
                    effect_size=cohens_dz(deltas),
                    n=len(deltas),
                    threshold=MIN_EFFECT,
                    note=note,
                )
            )
    q_values = benjamini_hochberg([float(str(row["p_value"])) for row in parity])
    for row, q_value in zip(parity, q_values, strict=True):
        effect = float(str(row["effect"]))
        significant = bool(q_value < ALPHA and abs(effect) >= MIN_EFFECT and row["group_a"] not in unreadable)
        row.update(
            q_value=float(q_value),
            significant=significant,
            severity=_severity(significant, effect, MIN_EFFECT),
        )
    rows += parity
    for lang in LANGUAGES[1:] if embedding else ():
        similarities = effects.loc[effects["group_a"] == lang, "score_a"].to_numpy(dtype=float)
        note = not_a_bias_note(lang, unreadable[lang]) if lang in unreadable else None
        row = _mean_row(lang, "translation_similarity", list(similarities), seed, note)
        rows.append(row | {"group_b": REFERENCE, "output": SIMILARITY})

    predicted = dict(zip(predictions["example_id"], predictions["label"], strict=False))
    for lang in LANGUAGES:
        own = examples[examples["lang"] == lang]
        ids = list(own["example_id"])
        if lang != REFERENCE:
            agree = [
                predicted[e] == predicted[f"{PROBE_SET}/{i}/{REFERENCE}"]
                for e, i in zip(ids, own["instance_id"], strict=True)
            ]
            agreement = _share_row(lang, "label_agreement", agree, REFERENCE)
            if lang in unreadable:
                agreement["note"] = not_a_bias_note(lang, unreadable[lang])
            rows.append(agreement)
        if not embedding:  # an embedding model has no labels to be right about
            labelled = own[own["label"].isin(LABELS)]
            correct = [
                predicted[e] == label
                for e, label in zip(labelled["example_id"], labelled["label"], strict=True)
            ]
            rows.append(_share_row(lang, "label_accuracy", correct, None))

        n_tokens = own["n_text_tokens"].to_numpy(dtype=float)
        if lang in NO_SPACES:
            rows.append(
                _row(
                    lang,
                    "fertility_per_word",
                    None,
                    n=len(ids),
                    note=f"{lang} is written without spaces between words: tokens per word is not defined",
                )
            )
        else:
            per_word = list(n_tokens / own["n_words"].to_numpy(dtype=float))
            rows.append(_mean_row(lang, "fertility_per_word", per_word, seed))
        rows.append(
            _mean_row(lang, "fertility_per_char", list(n_tokens / own["n_chars"].to_numpy(dtype=float)), seed)
        )
        unknown = list(own["n_unknown"].to_numpy(dtype=float) / n_tokens)
        note = unreadable_note(lang, unreadable[lang]) if lang in unreadable else None
        rows.append(_mean_row(lang, "unknown_rate", unknown, seed, note))
        rows.append(
            _mean_row(
                lang,
                "byte_fallback_rate",
                list(own["n_byte_fallback"].to_numpy(dtype=float) / n_tokens),
                seed,
            )
        )
        rows.append(_share_row(lang, "truncation_rate", [bool(t) for t in own["truncated"]], None))

        attributed = attributions[attributions["example_id"].isin(ids)]
        n_attributed = attributed["example_id"].nunique()
        if lang not in FUNCTION_WORDS:
            rows.append(
                _row(
                    lang,
                    "content_attribution_share",
                    explained,
                    n=n_attributed,
                    note=f"no function-word list for {lang}: content words cannot be told apart",
                )
            )
        elif n_attributed:
            shares = []
            for example_id, tokens in attributed.groupby("example_id"):
                text = str(examples.loc[examples["example_id"] == example_id, "text"].iloc[0])
                real = tokens.dropna(subset=["char_start"])
                size = real["attribution"].abs()
                content = [
                    _word_at(text, int(s)).casefold() not in FUNCTION_WORDS[lang] for s in real["char_start"]
                ]
                shares.append(float(size[content].sum() / size.sum()))
            rows.append(
                _mean_row(
                    lang,
                    "content_attribution_share",
                    shares,
                    seed,
                    f"{METHOD}, {len(shares)} attributed instances",
                )
                | {"output": explained}
            )
    frame = pd.DataFrame(rows)
    frame["n"] = frame["n"].astype("int64")
    frame["significant"] = frame["significant"].astype(bool)
    return frame.reindex(columns=TABLES["findings"])


def downgrade_to_schema_2(run_dir: Path) -> Path:
    """Rewrite a run folder as a version-2 run: no tokenization columns in examples, manifest version 2."""
    path = run_dir / "examples.parquet"
    frame = pd.read_parquet(path)
    frame.drop(columns=[c for c in SCHEMA_3_COLUMNS if c in frame.columns]).to_parquet(path, index=False)
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["schema_version"] = 2
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return run_dir
