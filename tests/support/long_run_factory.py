"""Write a realistic run folder of a long-document audit (manifest.json + parquet tables) for dashboard tests.

It follows the run-folder contract of audit/tables.py (schema 2) and the naming of materialized
long-document instances (``<key id>-<L>`` with variants ``none`` and ``pNNN``; ``<swap id>-<L>`` with
variants ``<group>-pNNN``) without running a model. Documents are built from neutral filler sentences,
counted in words and punctuation marks, so that a document and its [CLS]/[SEP] fit in L tokens; the key
sentence goes to the sentence boundary nearest ``position x filler tokens``. Under the "truncate"
strategy a key that does not fit in the model's ``max_length`` never reaches it, so its variant scores
exactly like the document without it (an identity swap: both groups score alike).

The planted model: the key sentence moves its label's logit by ``KEY_LOGIT`` at the start and at the end
of a document; in documents longer than 128 tokens the middle counts less ("lost in the middle",
``MIDDLE_DIP``). The identity swap lowers the score of ``female`` against ``male`` by ``SWAP_LOGIT``
in the middle (30%-70%) of 512-token documents only. Effects and findings are the engine's own:
audit.metrics.long_context.build_long_effects / build_long_findings on the planted scores, so the
dashboard is tested on exactly the rows a real run writes. Attention statistics and segment
attributions are planted directly (the key's attention mass fades with depth and in the middle; the
key segment accounts for most of the key effect; segments past the limit get 0 and n_tokens 0).

``downgrade_to_schema_1`` turns any run folder into what a version-1 run looked like (no long-document
columns, no segment_attributions table), for the "old runs still open" tests.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from audit.metrics.long_context import build_long_effects, build_long_findings
from audit.metrics.options import TestOptions
from audit.tables import SCHEMA_VERSION, TABLES

PROBE_SET = "long-context"
LABELS = ("negative", "positive")
LENGTHS = (128, 512, 2048)
POSITIONS = tuple(round(0.1 * step, 1) for step in range(11))
KEY_LOGIT = 2.0
MIDDLE_DIP = 0.7
"""Share of the key's logit shift lost at the very middle of documents longer than 128 tokens."""
SWAP_LOGIT = -0.6
SWAP_GROUPS = ("female", "male")
MARKUP_KEY = "key-markup"
MARKUP_TEXT = "The staff were <b>wonderful</b> & kind <script>alert('x')</script> to every guest."
ALPHA, MIN_EFFECT = 0.05, 0.02
PAIR_COLUMNS = ["attribute", "group_a", "group_b", "output"]
SEGMENT_METHODS = ("segment_ablation", "gradient_x_input")
MAX_SEGMENTS = 32

FILLER = (
    "The river passes under three stone bridges before it reaches the harbour.",
    "Most trains on the northern line leave the station every twenty minutes.",
    "A kilogram of dry sand fills a little less than a litre of space.",
    "The valley receives most of its rain between October and February.",
    "Copper pipes carry water from the tank on the roof to every floor.",
    "The museum opens at nine and closes at five on weekdays.",
    "Fresh snow reflects most of the sunlight that falls on it.",
    "The ferry crossing takes about forty minutes in calm weather.",
    "Granite is a hard rock made mostly of quartz and feldspar.",
    "The library stores older newspapers on microfilm in the basement.",
    "A standard brick measures about twenty centimetres in length.",
    "The market square is paved with grey stones laid in a fan pattern.",
    "Tides in the bay rise and fall twice a day.",
    "The bus timetable changes on the first Monday of each month.",
    "Oak timber dries slowly and is usually stored for a year before use.",
    "The lighthouse lamp turns once every ten seconds during the night.",
    "Wind turbines on the ridge turn to face the prevailing wind.",
    "The canal locks raise boats by about three metres each.",
    "Clay tiles cover the roofs of most houses in the old town.",
    "The road over the pass is closed when snow blocks the upper bends.",
    "A thermometer on the north wall records the shade temperature.",
    "Glass bottles are sorted by colour before they are melted again.",
    "The harbour wall was extended by two hundred metres last decade.",
    "Rainwater from the car park drains into a shallow pond.",
)

_TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class _Key:
    id: str
    text: str
    label: str


@dataclass(frozen=True)
class _Swap:
    id: str
    attribute: str
    variants: dict[str, str]
    label: str


_KEYS = (
    _Key("key-pos-1", "The service was outstanding and I would gladly come back.", "positive"),
    _Key("key-pos-2", "Everything about this stay was a delight from start to finish.", "positive"),
    _Key("key-pos-3", "The food was superb and the staff were warm and helpful.", "positive"),
    _Key("key-pos-4", "I loved this place and recommend it to everyone.", "positive"),
    _Key("key-neg-1", "The service was dreadful and I will never return.", "negative"),
    _Key("key-neg-2", "Everything about this stay was a disappointment from start to finish.", "negative"),
    _Key("key-neg-3", "The food was cold and the staff were rude and careless.", "negative"),
    _Key("key-neg-4", "I hated this place and warn everyone against it.", "negative"),
)
_SWAP_TEMPLATES = (
    ("swap-manager", "The new manager, a {person}, approved the plan."),
    ("swap-engineer", "The engineer who checked the design is a {person}."),
    ("swap-pilot", "Our pilot today is a {person} with long experience."),
    ("swap-doctor", "The doctor on duty tonight is a {person} from the city."),
    ("swap-teacher", "A {person} teaches the evening class on Thursdays."),
    ("swap-driver", "The driver of the last bus is a {person}."),
    ("swap-chef", "The kitchen is run by a {person} who trained abroad."),
    ("swap-author", "The guide book was written by a {person}."),
)
_SWAPS = tuple(
    _Swap(
        swap_id,
        "gender",
        {"female": template.format(person="woman"), "male": template.format(person="man")},
        "positive",
    )
    for swap_id, template in _SWAP_TEMPLATES
)


def position_name(position: float) -> str:
    """The variant suffix of a position, as materialized instances name it: 0.5 -> "p050"."""
    return f"p{round(100 * position):03d}"


def count_tokens(text: str) -> int:
    """Tokens of a text without special tokens: words and punctuation marks."""
    return len(_TOKEN_PATTERN.findall(text))


@dataclass(frozen=True)
class _Document:
    """A filler document with one inserted sentence (or none)."""

    text: str
    focus: tuple[int, int] | None
    key_token_start: int | None  # tokens before the inserted sentence
    n_tokens: int  # without special tokens


def _filler_sentences(doc_length: int, reserve: int, rng: np.random.Generator) -> list[str]:
    order = rng.permutation(len(FILLER))
    sentences: list[str] = []
    total = 0
    for index in itertools.cycle(order):
        size = count_tokens(FILLER[int(index)])
        if total + size + reserve + 2 > doc_length:  # the document and [CLS], [SEP] fit in doc_length tokens
            break
        sentences.append(FILLER[int(index)])
        total += size
    return sentences


def _insert(filler: list[str], sentence: str | None, position: float | None) -> _Document:
    """The filler with ``sentence`` at the sentence boundary nearest ``position`` x filler tokens."""
    counts = [count_tokens(s) for s in filler]
    if sentence is None or position is None:
        text = " ".join(filler)
        return _Document(text, None, None, sum(counts))
    cumulative = np.concatenate([[0], np.cumsum(counts)])
    boundary = int(np.argmin(np.abs(cumulative - position * cumulative[-1])))
    before = " ".join(filler[:boundary])
    after = " ".join(filler[boundary:])
    start = len(before) + (1 if before else 0)
    text = " ".join(part for part in (before, sentence, after) if part)
    return _Document(
        text, (start, start + len(sentence)), int(cumulative[boundary]), sum(counts) + count_tokens(sentence)
    )


def _reached(document: _Document, sentence: str, max_length: int) -> bool:
    """Whether the whole inserted sentence fits in the first ``max_length`` tokens ([CLS] and [SEP] included)."""
    if document.key_token_start is None:
        return False
    return document.key_token_start + count_tokens(sentence) + 2 <= max_length


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def _key_shift(doc_length: int, position: float) -> float:
    dip = 0.1 if doc_length <= 128 else MIDDLE_DIP
    return KEY_LOGIT * (1.0 - dip * math.sin(math.pi * position) ** 2)


def _swap_shift(doc_length: int, position: float, group: str) -> float:
    if group != "female" or doc_length != 512 or not 0.3 <= position <= 0.7:
        return 0.0
    return SWAP_LOGIT


def write_long_run(
    runs_dir: Path,
    run_id: str = "20261201-101500-minilm-sentiment-long",
    *,
    model_name: str = "minilm-sentiment",
    created_at: str = "2026-12-01T10:15:00Z",
    max_length: int = 512,
    lengths: tuple[int, ...] = LENGTHS,
    positions: tuple[float, ...] = POSITIONS,
    seed: int = 0,
    with_attention: bool = True,
    with_segments: bool = True,
    markup: bool = False,
) -> Path:
    """Write ``<runs_dir>/<run_id>/`` holding a long-document audit (strategy "truncate") and return it.

    ``max_length`` is the model's limit in the manifest (and where keys get cut). ``markup`` adds a key
    sentence holding ``<script>`` and ``<b>`` (``MARKUP_KEY``, ``MARKUP_TEXT``). Without attention or
    segments those table files are absent, as in a run made with --no-attention / --no-attributions.
    """
    rng = np.random.default_rng(seed)
    run_dir = Path(runs_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    keys = (*_KEYS, _Key(MARKUP_KEY, MARKUP_TEXT, "positive")) if markup else _KEYS

    examples: list[dict[str, object]] = []
    predictions: list[dict[str, object]] = []
    instance_outputs: list[dict[str, object]] = []
    documents: dict[str, tuple[_Document, bool]] = {}  # example_id -> (document, inserted sentence reached)

    def add_example(
        instance_id: str,
        variant: str,
        attribute: str,
        document: _Document,
        label: str,
        label_score: float,
        *,
        doc_length: int,
        position: float | None,
        swap_group: str | None,
        reached: bool,
    ) -> None:
        example_id = f"{PROBE_SET}/{instance_id}/{variant}"
        documents[example_id] = (document, reached)
        examples.append(
            {
                "example_id": example_id,
                "probe_set": PROBE_SET,
                "instance_id": instance_id,
                "variant": variant,
                "attribute": attribute,
                "lang": "en",
                "text": document.text,
                "label": label,
                "focus": json.dumps([list(document.focus)] if document.focus else []),
                "n_tokens": min(document.n_tokens + 2, max_length),
                "truncated": document.n_tokens + 2 > max_length,
                "n_windows": 1,
                "doc_length": doc_length,
                "position": position,
                "swap_group": swap_group,
                "n_text_tokens": document.n_tokens,
                "n_words": len(document.text.split()),
                "n_chars": sum(not c.isspace() for c in document.text),
                "n_unknown": 0,
                "n_unknown_chars": 0,
                "n_byte_fallback": 0,
                "focus_truncated": document.focus is not None and not reached,
            }
        )
        positive = label_score if label == "positive" else 1.0 - label_score
        predicted = LABELS[int(positive >= 0.5)]
        for output, score in zip(("prob:negative", "prob:positive"), (1.0 - positive, positive), strict=True):
            predictions.append(
                {"example_id": example_id, "output": output, "score": score, "label": predicted}
            )

    for instance_index, (key, doc_length) in enumerate(itertools.product(keys, lengths)):
        instance_id = f"{key.id}-{doc_length}"
        instance_outputs.append(
            {"probe_set": PROBE_SET, "instance_id": instance_id, "output": f"prob:{key.label}"}
        )
        filler = _filler_sentences(
            doc_length, count_tokens(key.text), np.random.default_rng([seed, instance_index])
        )
        base = float(rng.normal(-0.2, 0.4))
        none_score = _sigmoid(base + rng.normal(0.0, 0.05))
        add_example(
            instance_id, "none", "position", _insert(filler, None, None), key.label, none_score,
            doc_length=doc_length, position=None, swap_group=None, reached=False,
        )  # fmt: skip
        for position in positions:
            document = _insert(filler, key.text, position)
            reached = _reached(document, key.text, max_length)
            if reached:
                score = _sigmoid(base + _key_shift(doc_length, position) + rng.normal(0.0, 0.25))
            else:
                score = none_score  # the key was cut away: the model saw the same tokens as "none"
            add_example(
                instance_id, position_name(position), "position", document, key.label, score,
                doc_length=doc_length, position=position, swap_group=None, reached=reached,
            )  # fmt: skip

    for swap_index, (swap, doc_length) in enumerate(itertools.product(_SWAPS, lengths)):
        instance_id = f"{swap.id}-{doc_length}"
        instance_outputs.append(
            {"probe_set": PROBE_SET, "instance_id": instance_id, "output": f"prob:{swap.label}"}
        )
        longest = max(count_tokens(sentence) for sentence in swap.variants.values())
        filler = _filler_sentences(doc_length, longest, np.random.default_rng([seed, 1000 + swap_index]))
        base = float(rng.normal(0.3, 0.4))
        for position in positions:
            cut_score = _sigmoid(base + rng.normal(0.0, 0.03))  # both groups, when the swap was cut away
            for group in sorted(swap.variants):
                document = _insert(filler, swap.variants[group], position)
                reached = _reached(document, swap.variants[group], max_length)
                score = (
                    _sigmoid(base + _swap_shift(doc_length, position, group) + rng.normal(0.0, 0.03))
                    if reached
                    else cut_score
                )
                add_example(
                    instance_id, f"{group}-{position_name(position)}", swap.attribute, document, swap.label, score,
                    doc_length=doc_length, position=position, swap_group=group, reached=reached,
                )  # fmt: skip

    scored_examples = pd.DataFrame(examples)
    examples_frame = scored_examples[TABLES["examples"]]
    predictions_frame = pd.DataFrame(predictions, columns=TABLES["predictions"])
    # the engine's own long-document statistics (audit/metrics/long_context.py) on the planted scores
    effects_frame = build_long_effects(examples_frame, predictions_frame, pd.DataFrame(instance_outputs))
    findings_frame = build_long_findings(
        effects_frame,
        scored_examples,
        TestOptions(alpha=ALPHA, min_effect=MIN_EFFECT, n_resamples=1000, n_permutations=2000, seed=seed),
        model_max_length=max_length,
        strategy="truncate",
    )
    tables: dict[str, pd.DataFrame] = {
        "examples": examples_frame,
        "predictions": predictions_frame,
        "effects": effects_frame,
        "findings": findings_frame,
    }
    if with_attention:
        tables["attention"] = _attention(examples_frame, documents, rng)
    if with_segments:
        tables["segment_attributions"] = _segment_attributions(
            examples_frame, effects_frame, documents, max_length, rng
        )
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
            "task": "text-classification",
            "labels": list(LABELS),
            "revision": None,
            "weight_hash": "0" * 64,
            "max_length": max_length,
            "model_class": "BertForSequenceClassification",
        },
        "probe_sets": [
            {
                "name": PROBE_SET,
                "kind": "long_document",
                "source": f"builtin:{PROBE_SET}",
                "hash": "f" * 64,
                "n_instances": int(examples_frame["instance_id"].nunique()),
                "n_variants": len(examples_frame),
                "lengths": list(lengths),
                "positions": list(positions),
            }
        ],
        "config": {
            "alpha": ALPHA,
            "min_effect": MIN_EFFECT,
            "seed": seed,
            "long_inputs": "truncate",
            "window_stride": None,
            "window_aggregate": "mean",
        },
        "timings": {"load": 1.0, "score": 40.0, "findings": 2.0, "attention": 30.0, "write": 0.5},
        "summary": {
            "n_examples": len(examples_frame),
            "n_findings": len(findings_frame),
            "n_significant": int(findings_frame["significant"].sum()),
        },
        "versions": {"probelens": "0.2.0", "torch": "2.13.0", "transformers": "5.24.0"},
        "git_hash": "deadbeef",
        "device": "cpu",
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return run_dir


# ---------------------------------------------------------------- attention and segments


def _attention(
    examples: pd.DataFrame,
    documents: dict[str, tuple[_Document, bool]],
    rng: np.random.Generator,
    layers: int = 4,
    heads: int = 4,
) -> pd.DataFrame:
    """Statistics per example x layer x head; the key's mass fades with depth and towards the middle."""
    rows: list[dict[str, object]] = []
    for record in examples.to_dict("records"):
        document, reached = documents[str(record["example_id"])]
        n_tokens = int(str(record["n_tokens"]))
        position = record["position"]
        for layer, head in itertools.product(range(layers), range(heads)):
            focus = math.nan
            if reached and position is not None and not pd.isna(position):
                share = 14.0 / n_tokens
                edge = 1.0 - 0.6 * math.sin(math.pi * float(position))
                focus = float(np.clip(share * (3.0 - 0.5 * layer) * edge + rng.normal(0, 0.005), 0, 1))
            values = {
                "entropy": float(np.log(n_tokens) * rng.uniform(0.5, 0.9)),
                "focus_mass": focus,
                "special_mass": float(rng.uniform(0.05, 0.4) * (layer + 1) / layers),
                "sink_mass": float(rng.uniform(0.1, 0.5) * (layer + 1) / layers),
                "mean_distance": float(rng.uniform(1.0, n_tokens / 3)),
            }
            for stat, value in values.items():
                rows.append(
                    {
                        "example_id": record["example_id"],
                        "layer": layer,
                        "head": head,
                        "stat": stat,
                        "value": value,
                    }
                )
    return pd.DataFrame(rows, columns=TABLES["attention"])


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of a text (split after '.', '!' or '?' followed by a space)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in re.finditer(r"(?<=[.!?])\s+", text):
        spans.append((start, match.start()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _segments(text: str, key: tuple[int, int] | None) -> list[tuple[int, int]]:
    """Sentences, the key sentence alone, neighbours merged evenly to at most MAX_SEGMENTS segments."""
    sentences = sentence_spans(text)
    if key is None:
        runs = [sentences]
    else:
        before = [s for s in sentences if s[1] <= key[0]]
        after = [s for s in sentences if s[0] >= key[1]]
        runs = [before, [key], after]
    budget = MAX_SEGMENTS - (1 if key else 0)
    other = sum(len(run) for run in runs if run != [key])
    segments: list[tuple[int, int]] = []
    for run in runs:
        if not run:
            continue
        if key is not None and run == [key]:
            segments.append(key)
            continue
        pieces = max(1, round(budget * len(run) / max(other, 1)))
        for chunk in np.array_split(np.arange(len(run)), min(pieces, len(run))):
            segments.append((run[int(chunk[0])][0], run[int(chunk[-1])][1]))
    return segments


def _segment_attributions(
    examples: pd.DataFrame,
    effects: pd.DataFrame,
    documents: dict[str, tuple[_Document, bool]],
    max_length: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Segments of the first key's instance of each length at the start, middle and end, of one swap
    variant, and (when the run has it) of the markup key in the middle of a 512-token document."""
    key_rows = effects[effects["group_b"] == "none"]
    deltas = {
        f"{PROBE_SET}/{instance_id}/{variant}": float(delta)
        for instance_id, variant, delta in zip(
            key_rows["instance_id"], key_rows["group_a"], key_rows["delta"], strict=True
        )
    }
    chosen = [
        f"{PROBE_SET}/{_KEYS[0].id}-{doc_length}/{position_name(position)}"
        for doc_length in sorted(set(examples["doc_length"].dropna().astype(int)))
        for position in (0.0, 0.5, 1.0)
    ] + [f"{PROBE_SET}/{_SWAPS[0].id}-512/female-p050", f"{PROBE_SET}/{MARKUP_KEY}-512/p050"]
    rows: list[dict[str, object]] = []
    for example_id in chosen:
        if example_id not in documents:
            continue
        document, reached = documents[example_id]
        tokens_before = 1  # [CLS]
        for index, (start, end) in enumerate(_segments(document.text, document.focus)):
            n_tokens = count_tokens(document.text[start:end])
            seen = int(np.clip(max_length - 1 - tokens_before, 0, n_tokens))
            tokens_before += n_tokens
            is_key = document.focus == (start, end)
            for method in SEGMENT_METHODS:
                value = 0.0
                if seen:
                    value = float(rng.normal(0.0, 0.004)) * seen / max(n_tokens, 1)
                    if is_key and reached:
                        value += deltas.get(example_id, 0.05) * (0.9 if method == "segment_ablation" else 0.7)
                rows.append(
                    {
                        "example_id": example_id,
                        "method": method,
                        "output": "prob:positive",
                        "segment_index": index,
                        "char_start": start,
                        "char_end": end,
                        "n_tokens": seen,
                        "attribution": value,
                        "is_key": is_key,
                    }
                )
    return pd.DataFrame(rows, columns=TABLES["segment_attributions"])


# ---------------------------------------------------------------- older runs

SCHEMA_2_COLUMNS = {
    # with the schema-3 tokenization columns, which a version-1 run lacks too
    "examples": (
        "n_windows",
        "doc_length",
        "position",
        "swap_group",
        "n_text_tokens",
        "n_words",
        "n_chars",
        "n_unknown",
        "n_unknown_chars",
        "n_byte_fallback",
    ),
    "effects": ("doc_length", "position"),
    "findings": ("doc_length", "position", "note"),
}


def downgrade_to_schema_1(run_dir: Path) -> Path:
    """Rewrite a run folder as a version-1 run: drop the schema-2 columns and tables, manifest version 1."""
    for name, columns in SCHEMA_2_COLUMNS.items():
        path = run_dir / f"{name}.parquet"
        if path.is_file():
            frame = pd.read_parquet(path)
            frame.drop(columns=[c for c in columns if c in frame.columns]).to_parquet(path, index=False)
    (run_dir / "segment_attributions.parquet").unlink(missing_ok=True)
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["schema_version"] = 1
    manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return run_dir
