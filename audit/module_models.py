"""Plain PyTorch modules (an LSTM classifier, a ULMFiT/AWD-LSTM model) as audit targets: task "module".

``audit run --model mypkg.models:build`` (or ``--model path/to/file.py:build``) imports the named
callable, calls it with no arguments and audits what it returns. The contract:

    from audit.module_models import ModuleModel

    def build() -> ModuleModel:
        model = MyLSTMClassifier(...)
        model.load_state_dict(torch.load("lstm.pt", weights_only=True))
        return ModuleModel(
            module=model,                 # an nn.Module
            encode=encode,                # text -> (token ids, character offsets), or a HF fast tokenizer
            labels=["negative", "positive"],  # one name per logit, in logit order
            embedding_layer="embedding",  # the submodule whose output the forward uses as token vectors
            pad_id=0,                     # the padding id (default: the nn.Embedding's padding_idx)
        )

- ``module.forward`` takes ``(input_ids, attention_mask)`` (LongTensors (batch, tokens), right
  padded; mask 1 on real tokens) or only ``input_ids``; which one is read from its signature (a
  parameter named ``attention_mask``, or a second positional parameter without a default, gets the
  mask; ``takes_attention_mask`` overrides). It returns logits (batch, len(labels)): a tensor, a
  tuple whose first item is that tensor (fastai's classifiers), or an object with ``.logits``.
  Scores are the softmax of the logits (``multi_label=True``: a sigmoid per label), ``prob:<label>``.
- ``encode(text)`` returns ``(ids, offsets)``: one token id and one ``(start, end)`` character span
  of ``text`` per token (a ``tokenizers.Encoding``, with ``.ids`` and ``.offsets``, works too). Ids
  listed in ``special_ids`` (a BOS token such as ULMFiT's ``xxbos``) are special tokens: never
  focus, kept by the attribution baseline, kept at the ends when a text is cut. Unknown words should
  map to ``unk_id`` (counted as unknown in the examples table). ``vocabulary`` (id -> token list, or
  token -> id mapping) names tokens in the attributions table; without it a token is named by the
  text it first stood for.
- Padding must not change a text's scores: the loader scores two texts together and alone and
  refuses a module whose scores differ (an LSTM that reads its last time step without packing).

The callable's code runs when it is imported and called, exactly as ``python -c "import mypkg"``
would run it: name only code you trust. The manifest records the callable, the sha256 of the
module's ``state_dict`` (its weight hash) and that no config or revision exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audit.errors import UserError
from audit.loaded_model import LoadedModel
from audit.module_spec import ModuleSpec

DEFAULT_MAX_LENGTH = 512
"""Most tokens per input when neither the callable nor its tokenizer states a maximum."""

PADDING_TOLERANCE = 1e-4
"""Largest change in a probability allowed when a text is scored padded in a batch instead of alone."""

_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_ATTRIBUTE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_SAMPLE_TEXTS = (
    "The audit reads this sentence.",
    "A second and longer sentence, which the audit scores in the same batch as the first one.",
)
"""Scored when the module loads: the output shape, the embedding layer and padding are checked on them."""


@dataclass
class ModuleModel:
    """What a ``--model package.module:callable`` callable returns (a dict with these keys, or a
    tuple in this order, works too). See the module docstring for the contract."""

    module: nn.Module
    encode: Any
    """``text -> (ids, offsets)``, or a Hugging Face fast tokenizer."""
    labels: Sequence[str]
    """One name per logit, in logit order."""
    embedding_layer: str | None = None
    """Dotted name (as in ``module.named_modules()``) of the layer whose output is the token vectors;
    default: the module's only ``nn.Embedding``."""
    pad_id: int | None = None
    """The padding id; default: the embedding's ``padding_idx`` (or the tokenizer's pad token)."""
    max_length: int | None = None
    """Most tokens per input, special tokens included (longer texts are cut and flagged)."""
    name: str | None = None
    """A display name for the manifest (default: the callable's name)."""
    version: str | None = None
    """Any version string worth recording (a training run, a date); the manifest keeps it."""
    vocabulary: Sequence[str] | Mapping[str, int] | None = None
    """Token names: a list indexed by id, or a token -> id mapping."""
    unk_id: int | None = None
    """The id unknown words map to."""
    special_ids: Sequence[int] = ()
    """Ids that ``encode`` adds and that stand for no text (BOS, EOS, ULMFiT's xxbos)."""
    takes_attention_mask: bool | None = None
    """Whether ``forward`` takes the mask as well as the ids (default: read from its signature)."""
    multi_label: bool = False
    """True: each label gets its own sigmoid instead of one softmax over the labels."""


CONTRACT = (
    "audit.module_models.ModuleModel(module=<nn.Module>, encode=<text -> (ids, offsets) or a fast tokenizer>, "
    "labels=[...], embedding_layer=<name>, pad_id=<int>), a dict with those keys, or a tuple "
    "(module, encode, labels, embedding_layer, pad_id)"
)


# --- names ---------------------------------------------------------------------------------------


def is_module_reference(name: str) -> bool:
    """A ``--model`` value that names a callable (it holds ':' and is no existing path)."""
    return ":" in name and not Path(name).expanduser().exists() and not re.match(r"^[A-Za-z]:[\\/]", name)


def parse_reference(name: str) -> tuple[str, str]:
    """``(module or file, attribute)`` of ``package.module:callable`` or ``path/to/file.py:callable``."""
    target, _, attribute = name.rpartition(":")
    target, attribute = target.strip(), attribute.strip()
    is_file = target.endswith(".py")
    if not target or not _ATTRIBUTE.match(attribute) or not (is_file or _MODULE_NAME.match(target)):
        raise UserError(
            f"--model {name!r} has a ':' but is neither package.module:callable nor path/to/file.py:callable "
            "(a hub model's revision goes in --revision, not after a ':')"
        )
    if is_file and not Path(target).expanduser().is_file():
        raise UserError(
            f"--model {name!r}: no such file {target} ({os.path.abspath(Path(target).expanduser())} does not exist)"
        )
    return target, attribute


@contextlib.contextmanager
def _on_path(folder: str) -> Iterator[None]:
    """``folder`` first on sys.path while the user's module imports (as ``python -m`` would put it)."""
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _import_file(path: Path, name: str) -> Any:
    module_name = "probelens_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"--model {name!r}: {path} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with _on_path(str(path.parent)):
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def import_callable(name: str) -> tuple[Callable[[], Any], str]:
    """The callable a reference names, and the file it was defined in."""
    target, attribute = parse_reference(name)
    try:
        if target.endswith(".py"):
            module = _import_file(Path(target).expanduser().resolve(), name)
        else:
            with _on_path(os.getcwd()):
                module = importlib.import_module(target)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing and (target == missing or target.startswith(missing + ".")):
            raise UserError(
                f"--model {name!r}: cannot import {target!r} ({error}). Run audit from the folder that holds "
                f"the package {target.split('.')[0]!r}, install it, or add its folder to PYTHONPATH; "
                "or name the file: path/to/file.py:callable"
            ) from error
        raise UserError(f"--model {name!r}: importing {target!r} failed: {error}") from error
    except UserError:
        raise
    except Exception as error:
        raise UserError(
            f"--model {name!r}: importing {target!r} failed: {type(error).__name__}: {error}"
        ) from error
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            defined = sorted(
                n
                for n, v in vars(module).items()
                if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
            )
            raise UserError(
                f"--model {name!r}: {target} has no {attribute!r}; callables it defines: "
                f"{', '.join(defined) if defined else 'none'}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(
            f"--model {name!r}: {target}.{attribute} is not callable (it is of type {type(obj).__name__}); "
            "name a function that returns " + CONTRACT
        )
    source = getattr(module, "__file__", None) or target
    return obj, str(source)


def as_module_model(value: Any, name: str) -> ModuleModel:
    """The callable's return value as a ModuleModel (from a dict or tuple too), its fields checked."""
    known = [f.name for f in fields(ModuleModel)]
    try:
        if isinstance(value, ModuleModel):
            spec = value
        elif isinstance(value, Mapping):
            unknown = sorted(str(k) for k in value if k not in known)
            if unknown:
                raise UserError(
                    f"--model {name!r} returned a dict with unknown key(s) {unknown}; the keys are {', '.join(known)}"
                )
            spec = ModuleModel(**value)
        elif isinstance(value, tuple):
            spec = ModuleModel(*value)
        else:
            raise UserError(f"--model {name!r} returned a {type(value).__name__}; expected {CONTRACT}")
    except TypeError as error:
        raise UserError(
            f"--model {name!r} returned an incomplete model ({error}); expected {CONTRACT}"
        ) from error
    problems = []
    if not isinstance(spec.module, nn.Module):
        problems.append(f"module is a {type(spec.module).__name__}, not a torch.nn.Module")
    if not callable(spec.encode):
        problems.append(f"encode is a {type(spec.encode).__name__}, not a function or tokenizer")
    labels = spec.labels
    if isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
        problems.append(f"labels must be a non-empty list of label names, not {labels!r}")
    elif len(set(map(str, labels))) != len(labels):
        problems.append(f"labels must be distinct, got {list(labels)}")
    for attribute in ("pad_id", "unk_id", "max_length"):
        number = getattr(spec, attribute)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 0):
            problems.append(f"{attribute} must be a non-negative integer, not {number!r}")
    if spec.max_length is not None and spec.max_length < 1:
        problems.append("max_length must be at least 1")
    if problems:
        raise UserError(f"--model {name!r} returned a model that cannot be audited: " + "; ".join(problems))
    return spec


# --- the tokenizer-like wrapper of an encode function --------------------------------------------


@dataclass(frozen=True)
class _Piece:
    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]
    special: tuple[bool, ...]


class EncodeTokenizer:
    """An ``encode(text) -> (ids, offsets)`` function with the parts of a fast tokenizer the pipeline uses.

    The pipeline (audit/batching.py, audit/windows.py, audit/tokenization.py, the runner and the
    attribution driver) calls exactly these: ``__call__(text or texts, add_special_tokens=,
    truncation=, max_length=, return_offsets_mapping=, return_special_tokens_mask=, verbose=)``
    returning ``input_ids``, ``attention_mask`` and, when asked, ``offset_mapping`` and
    ``special_tokens_mask`` (one list per text, or one list for one string);
    ``num_special_tokens_to_add(pair=False)``; ``convert_ids_to_tokens``; ``decode``;
    ``pad_token_id``/``pad_token``; ``unk_token_id``/``unk_token``; ``eos_token_id`` (None);
    ``all_special_tokens``; ``model_max_length``; ``is_fast`` (True: it gives character offsets).

    Truncation keeps the special tokens at both ends and cuts the text's tokens, as a fast
    tokenizer does; special tokens get (0, 0) offsets.
    """

    is_fast = True
    eos_token: str | None = None
    eos_token_id: int | None = None

    def __init__(
        self,
        encode: Callable[[str], Any],
        *,
        pad_id: int,
        max_length: int,
        unk_id: int | None = None,
        special_ids: Sequence[int] = (),
        vocabulary: Sequence[str] | Mapping[str, int] | None = None,
        vocab_size: int | None = None,
        source: str = "encode",
    ) -> None:
        self._encode = encode
        self.pad_token_id = pad_id
        self.unk_token_id = unk_id
        self.special_ids = frozenset(int(i) for i in special_ids)
        self.model_max_length = max_length
        self._source = source
        names: dict[int, str] = {}
        if isinstance(vocabulary, Mapping):
            names = {int(i): str(token) for token, i in vocabulary.items()}
        elif vocabulary is not None:
            names = {i: str(token) for i, token in enumerate(vocabulary)}
        self._names = names
        self._seen: dict[int, str] = {}
        self._cache: dict[str, _Piece] = {}
        self.vocab_size = vocab_size if vocab_size is not None else (max(names) + 1 if names else None)
        self._n_special: int | None = None

    # names ----------------------------------------------------------------------------------

    def _name(self, token_id: int) -> str:
        if token_id in self._names:
            return self._names[token_id]
        if token_id == self.pad_token_id:
            return "<pad>"
        if token_id == self.unk_token_id:
            return "<unk>"
        if token_id in self.special_ids:
            return f"<special:{token_id}>"
        return self._seen.get(token_id, f"<id:{token_id}>")

    @property
    def pad_token(self) -> str:
        return self._name(self.pad_token_id)

    @property
    def unk_token(self) -> str | None:
        return None if self.unk_token_id is None else self._name(self.unk_token_id)

    @property
    def all_special_tokens(self) -> list[str]:
        ids = [
            self.pad_token_id,
            *([] if self.unk_token_id is None else [self.unk_token_id]),
            *sorted(self.special_ids),
        ]
        return list(dict.fromkeys(self._name(i) for i in ids))

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> str | list[str]:
        if isinstance(ids, int):
            return self._name(ids)
        return [self._name(int(i)) for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self._name(int(i)) for i in ids)

    def __len__(self) -> int:
        return self.vocab_size if self.vocab_size is not None else len(self._names)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many special tokens ``encode`` adds to any text: counted on the empty text."""
        if pair:
            raise ValueError("an encode function encodes one text at a time, not pairs")
        if self._n_special is None:
            try:
                self._n_special = sum(self._piece("").special)
            except UserError:
                self._n_special = 0
        return self._n_special

    # encoding -------------------------------------------------------------------------------

    def _piece(self, text: str) -> _Piece:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        try:
            result = self._encode(text)
        except Exception as error:
            raise UserError(
                f"{self._source} failed on {text[:80]!r}: {type(error).__name__}: {error}"
            ) from error
        if hasattr(result, "ids") and hasattr(result, "offsets"):
            raw_ids, raw_offsets = result.ids, result.offsets
        elif isinstance(result, Sequence) and len(result) == 2:
            raw_ids, raw_offsets = result
        else:
            raise UserError(
                f"{self._source} returned a {type(result).__name__} for {text[:80]!r}; expected (ids, offsets): "
                "a list of token ids and a list of (start, end) character spans, one per token"
            )
        try:
            ids = tuple(int(i) for i in (raw_ids.tolist() if hasattr(raw_ids, "tolist") else raw_ids))
            spans = raw_offsets.tolist() if hasattr(raw_offsets, "tolist") else raw_offsets
            offsets = tuple((int(s), int(e)) for s, e in spans)
        except (TypeError, ValueError) as error:
            raise UserError(
                f"{self._source} returned ids or offsets that are not integers / (start, end) pairs for "
                f"{text[:80]!r}: {error}"
            ) from error
        if len(ids) != len(offsets):
            raise UserError(
                f"{self._source} returned {len(ids)} ids but {len(offsets)} offsets for {text[:80]!r}; "
                "give one (start, end) character span per token"
            )
        special = tuple(i in self.special_ids for i in ids)
        for token_id, (start, end), is_special in zip(ids, offsets, special, strict=True):
            if self.vocab_size is not None and not 0 <= token_id < self.vocab_size:
                raise UserError(
                    f"{self._source} returned token id {token_id} for {text[:80]!r}, outside the model's "
                    f"{self.vocab_size} embeddings"
                )
            if not is_special and not 0 <= start <= end <= len(text):
                raise UserError(
                    f"{self._source} returned the span ({start}, {end}) for {text[:80]!r} ({len(text)} characters); "
                    "offsets must be character positions of the text, 0 <= start <= end <= len(text)"
                )
            if not is_special and token_id not in self._seen and token_id != self.unk_token_id:
                self._seen[token_id] = text[start:end]
        offsets = tuple((0, 0) if s else o for o, s in zip(offsets, special, strict=True))
        piece = _Piece(ids, offsets, special)
        if len(self._cache) < 200_000:
            self._cache[text] = piece
        return piece

    def __call__(
        self,
        text: str | Sequence[str],
        *,
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
        return_offsets_mapping: bool = False,
        return_special_tokens_mask: bool = False,
        verbose: bool = True,
        **unsupported: Any,
    ) -> dict[str, Any]:
        if unsupported:
            raise TypeError(
                f"the encode-function tokenizer does not take {sorted(unsupported)}; it supports "
                "add_special_tokens, truncation, max_length, return_offsets_mapping, return_special_tokens_mask"
            )
        single = isinstance(text, str)
        texts = [text] if isinstance(text, str) else list(text)
        limit = (max_length if max_length is not None else self.model_max_length) if truncation else None
        rows = [self._row(self._piece(t), add_special_tokens, limit) for t in texts]
        out: dict[str, Any] = {
            "input_ids": [list(ids) for ids, _, _ in rows],
            "attention_mask": [[1] * len(ids) for ids, _, _ in rows],
        }
        if return_offsets_mapping:
            out["offset_mapping"] = [list(offsets) for _, offsets, _ in rows]
        if return_special_tokens_mask:
            out["special_tokens_mask"] = [[int(s) for s in special] for _, _, special in rows]
        return {key: value[0] for key, value in out.items()} if single else out

    @staticmethod
    def _row(
        piece: _Piece, add_special_tokens: bool, limit: int | None
    ) -> tuple[list[int], list[tuple[int, int]], list[bool]]:
        keep = [i for i, s in enumerate(piece.special) if add_special_tokens or not s]
        if limit is not None and len(keep) > limit:
            lead = 0
            while lead < len(keep) and piece.special[keep[lead]]:
                lead += 1
            trail = len(keep)
            while trail > lead and piece.special[keep[trail - 1]]:
                trail -= 1
            room = max(0, limit - lead - (len(keep) - trail))
            keep = keep[:lead] + keep[lead : lead + room] + keep[trail:]
            keep = keep[:limit]
        return (
            [piece.ids[i] for i in keep],
            [piece.offsets[i] for i in keep],
            [piece.special[i] for i in keep],
        )


# --- calling the module --------------------------------------------------------------------------


def forward_mask_style(module: nn.Module, stated: bool | None) -> str | None:
    """How forward takes the mask: "keyword" (a parameter named attention_mask), "positional" (a
    second required positional parameter), or None (ids only)."""
    try:
        parameters = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names = {p.name for p in parameters}
    if stated is False:
        return None
    if "attention_mask" in names:
        return "keyword"
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if stated or (len(positional) >= 2 and positional[1].default is inspect.Parameter.empty):
        return "positional"
    return None


def state_dict_sha256(module: nn.Module) -> str:
    """sha256 over the module's state_dict: each entry's name, dtype, shape and bytes, sorted by name."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        if isinstance(value, torch.Tensor):
            tensor = value.detach().to("cpu").contiguous()
            digest.update(f"{key} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(f"{key} {value!r}\n".encode())
    return digest.hexdigest()


def _embedding_names(module: nn.Module) -> list[str]:
    return [n for n, m in module.named_modules() if n and isinstance(m, nn.Embedding)]


def resolve_embedding_layer(module: nn.Module, stated: str | None, name: str) -> tuple[str, nn.Module]:
    """The embedding layer's name and module: the one named, or the module's only nn.Embedding."""
    embeddings = _embedding_names(module)
    listed = ", ".join(repr(n) for n in embeddings) if embeddings else "none"
    if stated is None:
        if len(embeddings) == 1:
            return embeddings[0], module.get_submodule(embeddings[0])
        raise UserError(
            f"--model {name!r}: say which layer holds the token embeddings (embedding_layer=...); "
            f"the module's nn.Embedding submodules: {listed}"
        )
    found = dict(module.named_modules())
    if not stated or stated not in found:
        raise UserError(
            f"--model {name!r}: the module has no submodule named {stated!r} (embedding_layer); "
            f"its nn.Embedding submodules: {listed}"
        )
    return stated, found[stated]


def _attention_modules(module: nn.Module) -> list[str]:
    return [n for n, m in module.named_modules() if isinstance(m, nn.MultiheadAttention)]


# --- loading -------------------------------------------------------------------------------------


def load_module_model(name: str, *, device: torch.device) -> LoadedModel:
    """Import and call the callable ``name`` names; check its model; return an ``audit.loaded_model.LoadedModel``."""
    build, source_file = import_callable(name)
    try:
        value = build()
    except UserError:
        raise
    except Exception as error:
        raise UserError(f"--model {name!r}: calling it failed: {type(error).__name__}: {error}") from error
    spec = as_module_model(value, name)
    module = spec.module
    module.eval()
    module.to(device)
    if next(module.parameters(), None) is None:
        raise UserError(f"--model {name!r}: the module has no parameters, so there is nothing to audit")
    layer_name, layer = resolve_embedding_layer(module, spec.embedding_layer, name)
    labels = [str(label) for label in spec.labels]
    tokenizer, max_length = _tokenizer_of(spec, layer, name)
    module_spec = ModuleSpec(
        reference=name,
        source_file=source_file,
        embedding_layer=layer_name,
        mask_style=forward_mask_style(module, spec.takes_attention_mask),
        multi_label=bool(spec.multi_label),
        has_rnn=any(isinstance(m, nn.RNNBase) for m in module.modules()),
        attention_modules=_attention_modules(module),
        display_name=spec.name,
        version=spec.version,
    )
    _check_forward(module, module_spec, layer, tokenizer, labels, device, name)
    module_spec.state_dict_sha256 = state_dict_sha256(module)
    return LoadedModel(
        model=module,
        tokenizer=tokenizer,
        task="module",
        name=name,
        source=f"{source_file}:{name.rpartition(':')[2]}",
        revision=None,
        weight_hash=module_spec.state_dict_sha256,
        labels=labels,
        max_length=max_length,
        pooling="mean",
        normalize=False,
        problem_type="multi_label_classification" if spec.multi_label else "single_label_classification",
        module_spec=module_spec,
    )


def _tokenizer_of(spec: ModuleModel, layer: nn.Module, name: str) -> tuple[Any, int]:
    """The pipeline's tokenizer (the fast tokenizer given, or the encode function wrapped) and the maximum length."""
    encode = spec.encode
    padding_idx = getattr(layer, "padding_idx", None)
    if hasattr(encode, "convert_ids_to_tokens"):  # a Hugging Face tokenizer
        if not getattr(encode, "is_fast", False):
            raise UserError(
                f"--model {name!r}: encode is a slow tokenizer; the audit needs character offsets, so give a "
                "fast (tokenizers-backed) one, or a function text -> (ids, offsets)"
            )
        pad_id = spec.pad_id if spec.pad_id is not None else encode.pad_token_id
        if pad_id is None:
            raise UserError(f"--model {name!r}: the tokenizer has no padding token; set pad_id")
        if encode.pad_token_id is None:
            encode.pad_token = encode.convert_ids_to_tokens(pad_id)
        elif encode.pad_token_id != pad_id:
            raise UserError(
                f"--model {name!r}: pad_id {pad_id} differs from the tokenizer's pad token id {encode.pad_token_id}"
            )
        limits = [
            v for v in (spec.max_length, getattr(encode, "model_max_length", None)) if isinstance(v, int)
        ]
        sane = [v for v in limits if 0 < v < 10_000_000]
        return encode, min(sane) if sane else DEFAULT_MAX_LENGTH
    pad_id = spec.pad_id if spec.pad_id is not None else padding_idx
    if pad_id is None:
        raise UserError(
            f"--model {name!r}: set pad_id (the id that pads shorter texts in a batch and builds the attribution "
            "baseline); the embedding layer has no padding_idx to take it from"
        )
    vocab_size = getattr(layer, "num_embeddings", None)
    return (
        EncodeTokenizer(
            encode,
            pad_id=pad_id,
            max_length=spec.max_length or DEFAULT_MAX_LENGTH,
            unk_id=spec.unk_id,
            special_ids=spec.special_ids,
            vocabulary=spec.vocabulary,
            vocab_size=vocab_size if isinstance(vocab_size, int) else None,
            source=f"encode of {name}",
        ),
        spec.max_length or DEFAULT_MAX_LENGTH,
    )


def _check_forward(
    module: nn.Module,
    spec: ModuleSpec,
    layer: nn.Module,
    tokenizer: Any,
    labels: list[str],
    device: torch.device,
    name: str,
) -> None:
    """Score two sample texts together and alone: the embedding layer must be called once per
    forward with (batch, tokens, dim) vectors, the logits must be (batch, labels), and padding must
    not change a text's scores."""
    from audit.batching import collate, encode_texts

    encoded = encode_texts(tokenizer, list(_SAMPLE_TEXTS), 64)
    for text, item in zip(_SAMPLE_TEXTS, encoded, strict=True):
        if not item.input_ids:
            raise UserError(f"--model {name!r}: encode returned no tokens for {text!r}")
    pad_id = int(tokenizer.pad_token_id)
    calls: list[Any] = []
    handle = layer.register_forward_hook(lambda _m, _i, output: calls.append(output))
    try:
        with torch.no_grad():
            ids, mask = collate(encoded, pad_id, device)
            try:
                together = spec.probabilities(module, ids, mask)
            except UserError:
                raise
            except Exception as error:
                raise UserError(
                    f"--model {name!r}: the module's forward failed on a batch of two texts "
                    f"(input_ids and attention_mask of shape {tuple(ids.shape)}"
                    f"{'' if spec.mask_style else '; forward takes input_ids only'}): {type(error).__name__}: {error}"
                ) from error
            n_calls = len(calls)
            first = calls[0] if calls else None
            alone = [spec.probabilities(module, *collate([item], pad_id, device)) for item in encoded]
    finally:
        handle.remove()
    listed = ", ".join(repr(n) for n in _embedding_names(module)) or "none"
    if n_calls != 1:
        raise UserError(
            f"--model {name!r}: the embedding layer {spec.embedding_layer!r} was called {n_calls} times in one "
            "forward pass; attributions need the layer whose output the forward uses once as its token vectors "
            f"(nn.Embedding submodules: {listed}; fastai's AWD-LSTM: 'encoder_dp')"
        )
    if not isinstance(first, torch.Tensor) or first.dim() != 3 or tuple(first.shape[:2]) != tuple(ids.shape):
        shape = tuple(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__
        raise UserError(
            f"--model {name!r}: the embedding layer {spec.embedding_layer!r} returned {shape} for input ids of shape "
            f"{tuple(ids.shape)}; expected token vectors (batch, tokens, dim) (nn.Embedding submodules: {listed})"
        )
    if together.dim() != 2 or together.shape != (len(encoded), len(labels)):
        raise UserError(
            f"--model {name!r}: the module returned logits of shape {tuple(together.shape)} for a batch of "
            f"{len(encoded)} texts, but labels names {len(labels)} ({labels}); expected ({len(encoded)}, {len(labels)})"
        )
    difference = max(float((together[i] - alone[i][0]).abs().max()) for i in range(len(encoded)))
    if not math.isfinite(difference) or difference > PADDING_TOLERANCE:
        raise UserError(
            f"--model {name!r}: padding changes the module's scores (by up to {difference:.3g} in a probability): "
            "scored in a batch with a longer text, a text gets other scores than alone, so results would depend "
            "on batching. Make forward ignore padded positions: take attention_mask (e.g. pack_padded_sequence "
            "with its lengths, or masked pooling), or mask the pad_id tokens yourself"
        )
