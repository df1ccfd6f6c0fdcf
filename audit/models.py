"""Load the model under audit: a bundled short name, a local folder or a Hugging Face hub id.

Loading is safe by default: ``trust_remote_code=False`` always, safetensors weights only unless
the user opts into pickle weights, and a hub revision is pinned to its commit hash before any
weight is read, so the manifest records exactly what was audited.

    loaded = load_model("minilm")                  # bundled all-MiniLM-L6-v2 (embedding)
    loaded = load_model("minilm-sentiment")        # bundled sentiment classifier
    loaded = load_model("./my-model", task="text-classification")
    loaded = load_model("org/model", revision="v1.0")
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audit.bundled.registry import BUNDLED, bundled_folder, ensure_bundled
from audit.errors import UserError
from audit.loaded_model import LoadedModel
from audit.module_models import is_module_reference, load_module_model, parse_reference
from audit.start_token import DEFAULT as DEFAULT_START_TOKEN
from audit.start_token import apply_start_token
from audit.tasks import ARCHITECTURE_SUFFIXES, TASKS

logger = logging.getLogger(__name__)

POOLINGS: tuple[str, ...] = ("mean", "cls")

DEFAULT_MAX_LENGTH = 512
"""Used only when neither the tokenizer nor the config states a usable maximum length."""

_SANE_MAX_LENGTH = 10_000_000
"""Above this a tokenizer's model_max_length is the 'no limit' sentinel (int(1e30)), not a limit."""

_SAFE_WEIGHT_PATTERNS = ("*.safetensors",)
_PICKLE_WEIGHT_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_SNAPSHOT_COMMIT = re.compile(r"snapshots[/\\]([0-9a-f]{40})[/\\]")
_SHA256_BLOB = re.compile(r"^[0-9a-f]{64}$")
_PATH_PREFIXES = (".", "/", "~", "\\")
"""A name starting with one of these is a path, never a hub id."""

PROBLEM_TYPES: tuple[str, ...] = ("single_label_classification", "multi_label_classification", "regression")
"""What a classification head predicts (transformers' ``config.problem_type`` values)."""

_VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")
_VOCABULARY_PATTERNS = ("*.model", "*.spm", "*.tiktoken")
"""Files that hold a tokenizer's vocabulary (fast tokenizer, WordPiece, BPE, sentencepiece, tiktoken).
Without one, transformers silently builds a tokenizer with a handful of special tokens."""

_SMALL_VOCABULARY_FRACTION = 0.1
"""A tokenizer with fewer tokens than this fraction of config.vocab_size is probably not the model's."""


def resolve_model(name: str) -> str:
    """Where a model name points: a bundled short name's folder, a local folder, or a hub id.

    Bundled names resolve to where their folder is (or will be, once built); an existing local path
    resolves to its absolute path; anything else is passed through as a hub id. Fails fast, without
    any network access, for a path that does not exist (a name starting with ".", "/" or "~") and for
    a name with no "/" that is close to a bundled name (a typo, not a hub id).
    """
    if not name or not name.strip():
        raise UserError(
            "the model name is empty: give a bundled name (" + ", ".join(BUNDLED) + "), "
            "a local folder or a Hugging Face hub id"
        )
    if is_module_reference(name):  # package.module:callable or path/to/file.py:callable
        parse_reference(name)
        return name
    if name in BUNDLED:
        return str(bundled_folder(name))
    path = Path(name).expanduser()
    if path.exists():
        return os.path.abspath(path)
    if name.startswith(_PATH_PREFIXES):
        raise UserError(
            f"no such model folder: {name} ({os.path.abspath(path)} does not exist); "
            "give an existing folder holding config.json, or a hub id like 'org/model'"
        )
    if "/" not in name:
        close = difflib.get_close_matches(name.casefold(), list(BUNDLED), n=1)
        if close:
            raise UserError(
                f"unknown model {name!r}: did you mean the bundled model {close[0]!r}? "
                f"(bundled: {', '.join(BUNDLED)}; for a hub model give its full id, like 'org/{name}')"
            )
    return name


def detect_task(config: Any, *, folder: Path | None = None) -> str:
    """The task a model is made for, read from ``config.architectures``.

    ``...ForSequenceClassification`` is a classifier, ``...ForMaskedLM`` a masked LM,
    ``...ForCausalLM`` a causal LM, an encoder-decoder ``...ForConditionalGeneration`` (T5, BART,
    Marian) seq2seq, and so on (``ARCHITECTURE_SUFFIXES``); a bare encoder (``BertModel``,
    ``RobertaModel``, ...) or a sentence-transformers folder (``modules.json``) is an embedding
    model. Anything else needs an explicit ``--task``.
    """
    architectures = list(getattr(config, "architectures", None) or [])
    for suffix, task in ARCHITECTURE_SUFFIXES:
        if any(arch.endswith(suffix) for arch in architectures):
            return task
    if getattr(config, "is_encoder_decoder", False) and any(
        arch.endswith("ForConditionalGeneration") for arch in architectures
    ):
        return "seq2seq"
    if folder is not None and (folder / "modules.json").is_file():
        return "embedding"
    if any(_is_bare_encoder(arch, config) for arch in architectures):
        return "embedding"
    found = ", ".join(architectures) if architectures else "no architectures"
    raise UserError(
        f"cannot tell which task this model is for (config.json lists {found}); "
        f"pass --task with one of: {', '.join(TASKS)}"
    )


def task_before_loading(name: str, task: str = "auto") -> str | None:
    """The task a model will be loaded for, read without loading its weights (so probe sets meant
    for another task are refused before any model is loaded): the task asked for, a bundled model's,
    or the one a local folder's config.json names. None when that needs the hub or cannot be read:
    ``load_model`` then tells, and the runner checks again after loading."""
    if task != "auto":
        return task
    if name in BUNDLED:
        return BUNDLED[name].task
    path = Path(name).expanduser()
    if ":" in name and not path.exists():
        return "module"
    if not (path / "config.json").is_file():
        return None
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
        return detect_task(config, folder=path)
    except (OSError, ValueError, UserError):
        return None


def load_model(
    name: str,
    *,
    task: str = "auto",
    revision: str | None = None,
    allow_pickle: bool = False,
    device: str | torch.device = "cpu",
    start_token: str = DEFAULT_START_TOKEN,
) -> LoadedModel:
    """Load a model and its tokenizer for one task, safely, with what the manifest needs.

    ``task`` is "auto" (read from the config) or one of TASKS. ``revision`` pins a hub model (a
    branch, tag or commit). ``allow_pickle`` permits ``.bin`` weights, which can run code when
    loaded; without it only safetensors weights load. ``start_token``: a causal LM's texts start
    with it (audit/start_token.py; other tasks ignore it). Raises UserError for anything the user
    can fix.
    """
    if task != "auto" and task not in TASKS:
        raise UserError(f"unknown task {task!r}; choose one of: auto, {', '.join(TASKS)}")
    torch_device = _parse_device(device)
    if is_module_reference(name) or task == "module":
        return _load_module(name, task=task, revision=revision, device=torch_device)

    source, folder = _locate(name, revision)
    if folder is not None:
        if revision is not None:
            raise UserError(f"--revision applies to hub models; {name!r} is a local folder")
        _check_local_folder(folder, allow_pickle=allow_pickle)
        _check_tokenizer_files(folder, name)
        pinned: str | None = None
        files = _ModelFiles(folder)
    else:
        pinned, snapshot = _pin_hub_revision(source, revision)
        files = _ModelFiles(snapshot, repo_id=source, commit=pinned)

    show_downloads = folder is None
    config = _read_config(source, name, pinned, progress_bars=show_downloads)
    st_modules = _sentence_transformers_modules(files)  # fetched first: detect_task looks for modules.json
    if task == "auto":
        task = detect_task(config, folder=files.folder)
    problem_type = "single_label_classification"
    if task == "text-classification":
        problem_type = _problem_type(config, name)
    warnings: list[str] = []
    remote_code = _remote_code(files)
    if remote_code:
        warnings.append(
            f"{name} ships custom code ({', '.join(remote_code)}), which is NOT run (trust_remote_code is "
            f"always off): the stock transformers class for model_type {getattr(config, 'model_type', '?')!r} "
            "is used instead, so results may differ from the model's own code"
        )
        logger.warning("%s", warnings[-1])

    with _quiet_transformers(progress_bars=show_downloads):
        model = _load_weights(source, name, task, pinned, allow_pickle)
        try:
            tokenizer = _load_tokenizer(source, name, pinned)
        except UserError:
            if folder is None:  # the clearer reason, when it is the missing vocabulary
                _check_tokenizer_files(files.folder, name)
            raise
    if folder is None:  # a hub snapshot holds the tokenizer files transformers just fetched
        _check_tokenizer_files(files.folder, name)
    warnings += _set_padding(model, tokenizer, name)
    start = apply_start_token(tokenizer, start_token, name) if task == "causal-lm" else None
    warnings += _ignored_start_token(start_token, task, name)
    vocabulary_warning = _check_vocabulary_size(tokenizer, config, name)
    if vocabulary_warning:
        warnings.append(vocabulary_warning)
        logger.warning("%s", vocabulary_warning)

    labels: list[str] = []
    if task in ("text-classification", "token-classification"):
        id2label = getattr(config, "id2label", None) or {}
        labels = [str(id2label[i]) for i in sorted(id2label, key=int)]

    pooling = "mean"
    normalize = False
    if task == "embedding":
        pooling, normalize = _embedding_settings(files, st_modules)

    model.eval()
    model.to(torch_device)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        task=task,
        name=name,
        source=source,
        revision=pinned or revision,
        weight_hash=_weight_hash(files.folder, allow_pickle=allow_pickle),
        labels=labels,
        max_length=_max_length(tokenizer, config, files),
        pooling=pooling,
        normalize=normalize,
        problem_type=problem_type,
        remote_code_ignored=bool(remote_code),
        warnings=warnings,
        start_token=start,
    )


def _ignored_start_token(start_token: str, task: str, name: str) -> list[str]:
    """A warning when --start-token was given for a model that is not a causal LM (it has no effect there)."""
    if task == "causal-lm" or start_token == DEFAULT_START_TOKEN:
        return []
    return [
        f"--start-token {start_token} applies to causal LMs only; {name} is a {task} model, which scores "
        "its texts as its tokenizer encodes them, so the setting is ignored"
    ]


def _locate(name: str, revision: str | None) -> tuple[str, Path | None]:
    """Where a transformers model's files are: ``(source, its local folder)`` for a bundled model or
    a local folder, ``(hub id, None)`` for a hub model."""
    if name in BUNDLED:
        if revision is not None:
            raise UserError(f"--revision applies to hub models; {name!r} is a bundled model")
        built = ensure_bundled(name)
        return str(built), built
    source = resolve_model(name)
    folder = Path(source) if Path(source).exists() else None
    if folder is None and not _HUB_ID.match(source):
        raise UserError(
            f"model folder not found: {name} (no such file or directory, and not a hub id like 'org/model')"
        )
    return source, folder


def _read_config(source: str, name: str, pinned: str | None, *, progress_bars: bool) -> Any:
    from transformers import AutoConfig

    try:
        with _quiet_transformers(progress_bars=progress_bars):
            return AutoConfig.from_pretrained(source, revision=pinned, trust_remote_code=False)
    except (
        OSError,
        ValueError,
    ) as error:  # ValueError: unknown model_type, or a model that needs remote code
        raise UserError(f"cannot read the config of {name}: {error}") from error


def _set_padding(model: nn.Module, tokenizer: Any, name: str) -> list[str]:
    """Give a tokenizer without a padding token its end-of-sequence token (the warning saying so),
    and the model's config the padding id."""
    warnings: list[str] = []
    if tokenizer.pad_token_id is None:  # many decoders (Llama, GPT-2) ship without one
        if tokenizer.eos_token is None:
            raise UserError(
                f"{name}: the tokenizer has neither a padding nor an end-of-sequence token, so inputs cannot be "
                "batched; add a pad_token to its tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token
        warnings.append(f"{name}: the tokenizer has no padding token; its end-of-sequence token pads instead")
    model_config: Any = model.config
    if getattr(model_config, "pad_token_id", None) is None:  # decoder classifiers find the last token by it
        model_config.pad_token_id = tokenizer.pad_token_id
    return warnings


def describe_model(loaded: LoadedModel) -> dict[str, Any]:
    """What the run manifest records about the model (JSON-serialisable)."""
    return {
        "name": loaded.name,
        "source": loaded.source,
        "revision": loaded.revision,
        "weight_hash": loaded.weight_hash,
        "task": loaded.task,
        "labels": list(loaded.labels),
        "max_length": loaded.max_length,
        "n_parameters": sum(p.numel() for p in loaded.model.parameters()),
        "pooling": loaded.pooling if loaded.task == "embedding" else None,
        "normalize": loaded.normalize,
        "model_class": type(loaded.model).__name__,
        "problem_type": loaded.problem_type if loaded.task == "text-classification" else None,
        "remote_code_ignored": loaded.remote_code_ignored,
        "load_warnings": list(loaded.warnings),
        "module": loaded.module_spec.describe() if loaded.module_spec is not None else None,
        "start_token": loaded.start_token.describe() if loaded.start_token is not None else None,
    }


def _load_module(name: str, *, task: str, revision: str | None, device: torch.device) -> LoadedModel:
    """A plain PyTorch module from the user's callable (audit/module_models.py)."""
    if not is_module_reference(name):
        raise UserError(
            f"--task module audits a plain PyTorch module: give --model package.module:callable or "
            f"path/to/file.py:callable, not {name!r}"
        )
    if task not in ("auto", "module"):
        raise UserError(
            f"{name!r} names a callable that builds a plain PyTorch module: its task is module, not {task}"
        )
    if revision is not None:
        raise UserError(f"--revision applies to hub models; {name!r} names a callable")
    return load_module_model(name, device=device)


# --- checks -------------------------------------------------------------------------------------


def _parse_device(device: str | torch.device) -> torch.device:
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise UserError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from error
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but no CUDA GPU is available; use --device cpu")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device {device!r} asked for, but MPS is not available; use --device cpu")
    return parsed


def _is_bare_encoder(architecture: str, config: Any) -> bool:
    """A base model class (``BertModel``) of an encoder family (one with a masked-LM head)."""
    if not architecture.endswith("Model") or "For" in architecture:
        return False
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return getattr(config, "model_type", None) in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _weight_files(folder: Path, *, allow_pickle: bool) -> list[Path]:
    """The weight files transformers will read: safetensors when present, else pickle files."""
    safe = sorted(p for pattern in _SAFE_WEIGHT_PATTERNS for p in folder.glob(pattern))
    if safe or not allow_pickle:
        return safe
    return sorted(p for pattern in _PICKLE_WEIGHT_PATTERNS for p in folder.glob(pattern))


def _check_local_folder(folder: Path, *, allow_pickle: bool) -> None:
    if not folder.is_dir():
        raise UserError(f"{folder} is a file; give the model's folder (the one holding config.json)")
    if not (folder / "config.json").is_file():
        raise UserError(
            f"{folder} has no config.json, so it is not a transformers model folder "
            "(save one with model.save_pretrained(folder) and tokenizer.save_pretrained(folder))"
        )
    if _weight_files(folder, allow_pickle=allow_pickle):
        return
    pickles = sorted(p.name for pattern in _PICKLE_WEIGHT_PATTERNS for p in folder.glob(pattern))
    if pickles:
        raise UserError(
            f"{folder} has only pickle weights ({', '.join(pickles)}), which can run arbitrary code when "
            "loaded. Pass --allow-pickle if you trust where they came from, or convert them to "
            "safetensors first."
        )
    raise UserError(f"{folder} has no weight files (*.safetensors or, with --allow-pickle, *.bin)")


def _check_tokenizer_files(folder: Path, name: str) -> None:
    """Refuse a model without a tokenizer vocabulary: transformers would silently use a default one
    with a handful of special tokens, every word would become [UNK], and the audit would see no bias."""
    if any((folder / f).is_file() for f in _VOCABULARY_FILES):
        return
    if any(p.is_file() for pattern in _VOCABULARY_PATTERNS for p in folder.glob(pattern)):
        return
    present = sorted(p.name for p in folder.iterdir() if p.name.startswith(("tokenizer", "special_tokens")))
    has = f" (it has only {', '.join(present)}, which hold no vocabulary)" if present else ""
    raise UserError(
        f"{name} has no tokenizer vocabulary in {folder}{has}: none of tokenizer.json, vocab.txt, "
        "vocab.json or a sentencepiece model (*.model). Without one every word would become [UNK]. "
        "Save the model's tokenizer into the folder: tokenizer.save_pretrained(folder)."
    )


def _check_vocabulary_size(tokenizer: Any, config: Any, name: str) -> str | None:
    """Refuse a tokenizer whose ids do not fit the model's embeddings; a warning when it is far smaller."""
    vocab_size = getattr(config, "vocab_size", None)
    if not isinstance(vocab_size, int) or vocab_size <= 0:
        return None
    n_tokens = len(tokenizer)
    if n_tokens > vocab_size:
        raise UserError(
            f"the tokenizer of {name} has {n_tokens} tokens but the model's config.vocab_size is "
            f"{vocab_size}, so some token ids are out of range for its embeddings. Use the tokenizer the "
            "model was trained with (or call model.resize_token_embeddings(len(tokenizer)) before saving)."
        )
    if n_tokens < _SMALL_VOCABULARY_FRACTION * vocab_size:
        return (
            f"the tokenizer of {name} has only {n_tokens} tokens for a model with vocab_size {vocab_size}: "
            "it is probably not the tokenizer the model was trained with, and most words may become [UNK]"
        )
    return None


def _problem_type(config: Any, name: str) -> str:
    """What the classification head predicts; regression heads are refused (not supported yet)."""
    num_labels = int(getattr(config, "num_labels", 0) or 0)
    declared = getattr(config, "problem_type", None)
    if declared in PROBLEM_TYPES:
        problem_type = str(declared)
    elif num_labels == 1:
        problem_type = "regression"  # what transformers assumes for one output
    else:
        problem_type = "single_label_classification"
    if problem_type == "regression":
        raise UserError(
            f"{name} has a regression head (num_labels={num_labels}, one score per output rather than "
            "label probabilities); regression heads are not supported yet. Use a classifier, or "
            "--task embedding to audit its encoder."
        )
    return problem_type


def _remote_code(files: _ModelFiles) -> list[str]:
    """The custom classes a model's config.json or tokenizer_config.json name in ``auto_map``."""
    found: list[str] = []
    for file_name in ("config.json", "tokenizer_config.json"):
        auto_map = _get(files.read_json(file_name), "auto_map")
        if isinstance(auto_map, dict):
            for value in auto_map.values():
                found += [str(v) for v in (value if isinstance(value, list) else [value]) if v]
        elif auto_map:
            found.append(str(auto_map))
    return sorted(set(found))


def _pin_hub_revision(repo_id: str, revision: str | None) -> tuple[str | None, Path]:
    """Fetch (or find in the cache) the hub model's config.json; return its commit hash and snapshot folder."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        config_path = Path(hf_hub_download(repo_id, "config.json", revision=revision))
    except GatedRepoError as error:
        raise UserError(
            f"{repo_id} is gated: accept its terms on huggingface.co and log in (hf auth login)"
        ) from error
    except RepositoryNotFoundError as error:
        raise UserError(
            f"model not found: {repo_id} is neither a local folder nor a hub model you can access "
            "(check the spelling; private models need hf auth login)"
        ) from error
    except RevisionNotFoundError as error:
        raise UserError(f"{repo_id} has no revision {revision!r} (a branch, tag or commit hash)") from error
    except RemoteEntryNotFoundError as error:
        raise UserError(f"{where} has no config.json, so it is not a transformers model") from error
    except LocalEntryNotFoundError as error:
        raise UserError(
            f"cannot reach the Hugging Face hub for {where} and it is not in the local cache. "
            "Connect to the internet (and unset HF_HUB_OFFLINE), download it first on a connected "
            "machine (hf download " + repo_id + "), or give an existing local folder."
        ) from error
    except HFValidationError as error:
        raise UserError(f"{repo_id!r} is neither a local folder nor a valid hub id: {error}") from error
    except OSError as error:
        raise UserError(f"cannot fetch {where} from the Hugging Face hub: {error}") from error
    match = _SNAPSHOT_COMMIT.search(str(config_path))
    return (match.group(1) if match else revision), config_path.parent


def _load_weights(source: str, name: str, task: str, revision: str | None, allow_pickle: bool) -> nn.Module:
    import transformers

    class_name = TASKS[task].model_class
    assert class_name is not None, f"task {task} loads no transformers model"
    model_class = getattr(transformers, class_name)
    try:
        model, info = model_class.from_pretrained(
            source,
            revision=revision,
            trust_remote_code=False,
            use_safetensors=None if allow_pickle else True,
            output_loading_info=True,
        )
    except (OSError, ValueError) as error:
        message = str(error)
        if not allow_pickle and (
            "does not appear to have a file named" in message or "no file named" in message
        ):
            raise UserError(
                f"{name} has no safetensors weights (model.safetensors). If it has only pickle weights "
                "(pytorch_model.bin), which can run arbitrary code when loaded, pass --allow-pickle if you "
                f"trust where they came from. ({message})"
            ) from error
        raise UserError(f"cannot load the weights of {name}: {message}") from error
    missing = sorted(info.get("missing_keys") or [])
    if task != "embedding" and missing:
        head = "classification" if task == "text-classification" else task
        raise UserError(
            f"{name} has no trained {head} head (missing weights: {', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''}), so its predictions would be random. "
            "Use --task embedding, or a fine-tuned classifier."
        )
    if missing:
        logger.warning(
            "%s: %d weights were missing and are randomly initialised: %s", name, len(missing), missing[:4]
        )
    return model


def _load_tokenizer(source: str, name: str, revision: str | None) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=False)
    except (OSError, ValueError, TypeError) as error:
        raise UserError(f"cannot load the tokenizer of {name}: {error}") from error
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(
            f"the tokenizer of {name} is not a fast (tokenizers-backed) tokenizer; the audit needs its "
            "character offsets. Save a tokenizer.json with the model."
        )
    return tokenizer


# --- what the manifest records ------------------------------------------------------------------


def _weight_hash(folder: Path, *, allow_pickle: bool) -> str:
    files = _weight_files(folder, allow_pickle=allow_pickle)
    if not files:
        raise UserError(f"no weight files found in {folder}")
    digests = {f.name: _file_sha256(f) for f in files}
    if len(digests) == 1:
        return next(iter(digests.values()))
    lines = "".join(f"{file_name} {digest}\n" for file_name, digest in sorted(digests.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    """sha256 of a file's bytes; for a hub cache file, the blob's name already is that hash."""
    blob = Path(os.path.realpath(path))
    if blob.parent.name == "blobs" and _SHA256_BLOB.match(blob.name):
        return blob.name
    digest = hashlib.sha256()
    with open(blob, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _max_length(tokenizer: Any, config: Any, files: _ModelFiles) -> int:
    """min of the tokenizer's and the config's limits (and sentence-transformers' max_seq_length)."""
    candidates = [
        getattr(tokenizer, "model_max_length", None),
        getattr(config, "max_position_embeddings", None),
        _get(files.read_json("sentence_bert_config.json"), "max_seq_length"),
    ]
    usable = [int(v) for v in candidates if isinstance(v, int | float) and 0 < v < _SANE_MAX_LENGTH]
    return min(usable) if usable else DEFAULT_MAX_LENGTH


def _sentence_transformers_modules(files: _ModelFiles) -> list[dict[str, Any]]:
    modules = files.read_json("modules.json")
    return [m for m in modules if isinstance(m, dict)] if isinstance(modules, list) else []


def _embedding_settings(files: _ModelFiles, modules: list[dict[str, Any]]) -> tuple[str, bool]:
    """Pooling ("mean" by default) and normalisation, from a sentence-transformers folder's modules."""
    types = [str(m.get("type", "")) for m in modules]
    normalize = any(t.endswith(".Normalize") for t in types)
    pooling_dirs = [str(m.get("path") or "") for m in modules if str(m.get("type", "")).endswith(".Pooling")]
    pooling_config = files.read_json(f"{pooling_dirs[0] if pooling_dirs else '1_Pooling'}/config.json")
    if not isinstance(pooling_config, dict):
        return "mean", normalize
    if pooling_config.get("pooling_mode_cls_token"):
        return "cls", normalize
    if pooling_config.get("pooling_mode_mean_tokens"):
        return "mean", normalize
    modes = [
        key.removeprefix("pooling_mode_")
        for key, on in pooling_config.items()
        if key.startswith("pooling_mode_") and on
    ]
    raise UserError(
        f"this embedding model pools with {', '.join(modes) or 'an unknown mode'}; "
        f"the audit supports {' and '.join(POOLINGS)} pooling"
    )


@dataclass(frozen=True)
class _ModelFiles:
    """The files of a model: a local folder, or a hub snapshot folder (fetching files not cached yet)."""

    folder: Path
    repo_id: str | None = None
    commit: str | None = None

    def read_json(self, relative: str) -> Any:
        """The parsed JSON file, or None when the model has no such file."""
        path = self.folder / relative
        if not path.is_file():
            if self.repo_id is None:
                return None
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError

            try:
                path = Path(hf_hub_download(self.repo_id, relative, revision=self.commit))
            except (EntryNotFoundError, OSError):  # absent from the repo, or offline and not cached
                return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"cannot read {path}: {error}") from error


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else None


@contextlib.contextmanager
def _quiet_transformers(*, progress_bars: bool) -> Iterator[None]:
    """Silence transformers' load report (problems surface as UserError) and, unless asked, its progress bars."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    if not progress_bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars and not progress_bars:
            hf_logging.enable_progress_bar()
