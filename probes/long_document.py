"""Long-document probe sets: the documents are built for each model, in the model's own tokens.

A long-document set (``kind: long_document``) holds a ``LongDocumentSpec``: neutral filler
sentences, key sentences (each should decide the output wherever it stands) and identity-swap
sentences (the same sentence once per group). ``materialize`` turns the spec into instances for
one model, because a document "of 2048 tokens" depends on the model's tokenizer:

- one **key-sentence instance** per key x length L, id ``<key id>-<L>``: variant ``none`` (the
  filler alone) and one variant per position p, ``p000`` .. ``p100``, with the key sentence
  inserted into the same filler at p;
- one **identity-swap instance** per swap x length L, id ``<swap id>-<L>``: one variant per group
  x position, ``<group>-p050``, each with that group's sentence inserted at p.

How a document is built (deterministic; no document is ever tokenized):

1. Every filler sentence and every key/swap sentence is counted once, as it reads inside a
   document (after a sentence and a space), with the model's tokenizer (``count_tokens``).
2. Per key or swap the filler sentences are shuffled with
   ``numpy.random.default_rng([seed, crc32(its id)])`` and cycled. The same order serves every
   length, so a shorter document is the start of a longer one and lengths differ only in length.
3. Filler sentences are added, in that order, while filler + key stays within L tokens (at
   least one filler sentence is always used): a document has at most about L tokens without the
   model's special tokens, and at least L minus one filler sentence.
4. The key sentence goes to the sentence boundary whose cumulative filler tokens lie nearest to
   p x (filler tokens): p=0 before the first sentence, p=1 after the last. Sentences are joined by
   single spaces; the variant's focus span is the inserted sentence's characters.

Token counts are approximate where a tokenizer merges across a sentence boundary (none of the
usual ones do after a full stop and a space).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import cycle

import numpy as np

from audit.errors import UserError
from probes.schema import (
    Instance,
    InstanceRole,
    KeySentence,
    LongDocumentSpec,
    ProbeSet,
    Span,
    SwapSentence,
    Variant,
)

DEFAULT_LENGTHS: tuple[int, ...] = (128, 512, 2048, 8192, 32768)
"""Document lengths (tokens) that ``auto_lengths`` chooses from."""

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
"""Key, swap and group names become parts of instance, variant and example ids."""

CONTEXT_ANCHOR = "Text."
"""Sentences are counted after this anchor and a space, i.e. as they read inside a document."""

TokenCounter = Callable[[Sequence[str]], list[int]]
"""texts -> each text's number of tokens, without special tokens (the model's tokenizer)."""


def auto_lengths(model_max: int, max_doc_tokens: int = 32768) -> tuple[int, ...]:
    """The document lengths for a model whose inputs hold ``model_max`` tokens.

    The rule: every default length (128, 512, 2048, 8192, 32768) below ``model_max``; ``model_max``
    itself (the limit); and the first default length at least twice ``model_max``, when it is at
    most ``max_doc_tokens``, so that one length lies clearly past the limit (truncated or windowed):
    a limit of 510 (512 minus [CLS] and [SEP]) gets 2048, not 512. When that length is above
    ``max_doc_tokens`` but the cap itself lies past the limit, the cap is the length beyond.
    Every length is capped at ``max_doc_tokens``; the result is sorted and without repeats.

    >>> auto_lengths(512)
    (128, 512, 2048)
    >>> auto_lengths(510)
    (128, 510, 2048)
    >>> auto_lengths(8192)
    (128, 512, 2048, 8192, 32768)
    >>> auto_lengths(131072)  # the cap: no length past a 128k limit is built
    (128, 512, 2048, 8192, 32768)
    """
    if model_max < 1 or max_doc_tokens < 1:
        raise ValueError(
            f"model_max ({model_max}) and max_doc_tokens ({max_doc_tokens}) must be positive token counts"
        )
    lengths = {length for length in DEFAULT_LENGTHS if length < model_max}
    lengths.add(model_max)
    beyond = next((length for length in DEFAULT_LENGTHS if length >= 2 * model_max), None)
    if beyond is not None and beyond <= max_doc_tokens:
        lengths.add(beyond)
    elif max_doc_tokens > model_max:  # the cap still lies past the limit: it is the length beyond
        lengths.add(max_doc_tokens)
    return tuple(sorted({min(length, max_doc_tokens) for length in lengths}))


def position_name(position: float) -> str:
    """The variant name of a position: 0.5 -> "p050" (whole percent, as the ids contract says)."""
    return f"p{round(100 * position):03d}"


def count_words(texts: Sequence[str]) -> list[int]:
    """Whitespace-separated words per text: a token counter for previews without a model."""
    return [len(text.split()) for text in texts]


def spec_problems(spec: LongDocumentSpec) -> list[str]:
    """What keeps a spec from making valid, uniquely named instances (empty when it can).

    The YAML loader reports the same problems located by line; this check serves specs built in
    Python.
    """
    problems: list[str] = []
    if not spec.keys and not spec.swaps:
        problems.append("the spec has no key sentences and no identity swaps; give at least one")
    ids = [key.id for key in spec.keys] + [swap.id for swap in spec.swaps]
    for repeated in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"id {repeated!r} is used more than once; key and swap ids must be unique")
    for name in ids + [group for swap in spec.swaps for group in swap.variants]:
        if not ID_PATTERN.match(name):
            problems.append(f"{name!r} must be letters, digits, _ . - only (it becomes part of ids)")
    for swap in spec.swaps:
        if len(swap.variants) < 2:
            problems.append(f"swap {swap.id!r} has {len(swap.variants)} group(s); it needs at least 2")
    names = [position_name(p) for p in spec.positions]
    for repeated in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"several positions are named {repeated}; positions are named by whole percent")
    if isinstance(spec.lengths, tuple) and any(length < 1 for length in spec.lengths):
        problems.append(f"lengths must be positive token counts, not {spec.lengths}")
    return problems


@dataclass(frozen=True)
class _Insert:
    """What goes into one instance's documents: the key, or each group's swap sentence."""

    instance_stem: str
    attribute: str
    role: InstanceRole
    texts: dict[str, str]
    """group -> sentence ("" for a key sentence)."""
    label: str | None
    query: str | None
    tokens: int
    """The longest of ``texts`` in tokens: the filler leaves room for it."""


def materialize(
    probe_set: ProbeSet,
    count_tokens: TokenCounter,
    model_max: int,
    max_doc_tokens: int | None = None,
) -> ProbeSet:
    """The probe set with its long-document instances built for one model (see the module doc).

    ``count_tokens`` counts each text's tokens without special tokens (pass the model tokenizer's
    counter; ``count_words`` for a preview). ``model_max`` is the model's input limit in tokens;
    it sets the lengths when the spec says ``lengths: auto``. ``max_doc_tokens`` caps every
    length (default: the spec's, which caps auto lengths only). A counterfactual set is returned
    unchanged. Raises ``UserError`` when a length cannot hold a key sentence.
    """
    spec = probe_set.long_document
    if spec is None:
        return probe_set
    problems = spec_problems(spec)
    if problems:
        raise UserError(f"long-document probe set {probe_set.name!r}: " + "; ".join(problems))
    if spec.lengths == "auto":
        lengths = auto_lengths(
            model_max, max_doc_tokens if max_doc_tokens is not None else spec.max_doc_tokens
        )
    else:
        cap = max_doc_tokens if max_doc_tokens is not None else max(spec.lengths)
        lengths = tuple(sorted({min(length, cap) for length in spec.lengths}))  # as given, but capped

    filler_tokens = _in_context_counts(spec.filler, count_tokens)
    inserts = _inserts(spec, count_tokens)
    instances: list[Instance] = []
    for insert in inserts:
        # seeded by the key's id, not its place: a key keeps its documents when others are sampled away
        order = np.random.default_rng([spec.seed, zlib.crc32(insert.instance_stem.encode())]).permutation(
            len(spec.filler)
        )
        for length in lengths:
            sentences, counts = _fill(spec, order, filler_tokens, length, insert, probe_set.name)
            instances.append(_instance(spec, insert, length, sentences, counts))
    return ProbeSet(**{**dict(probe_set), "instances": tuple(instances)})


def _in_context_counts(texts: Sequence[str], count_tokens: TokenCounter) -> list[int]:
    """Each text's tokens as it reads inside a document: count(anchor + " " + text) - count(anchor)."""
    counted = count_tokens([CONTEXT_ANCHOR, *(f"{CONTEXT_ANCHOR} {text}" for text in texts)])
    if len(counted) != len(texts) + 1 or not all(isinstance(n, (int, np.integer)) for n in counted):
        raise TypeError(
            f"count_tokens must return one int per text ({len(texts) + 1} texts), got {counted[:5]!r}"
        )
    anchor = int(counted[0])
    return [max(1, int(n) - anchor) for n in counted[1:]]


def _inserts(spec: LongDocumentSpec, count_tokens: TokenCounter) -> list[_Insert]:
    """The keys, then the swaps, with their token counts (all counted in one call)."""
    texts = [key.text for key in spec.keys] + [t for swap in spec.swaps for t in swap.variants.values()]
    counts = iter(_in_context_counts(texts, count_tokens))
    inserts = [_key_insert(key, next(counts)) for key in spec.keys]
    for swap in spec.swaps:
        inserts.append(_swap_insert(swap, max(next(counts) for _ in swap.variants)))
    return inserts


def _key_insert(key: KeySentence, tokens: int) -> _Insert:
    return _Insert(key.id, "position", "key_sentence", {"": key.text}, key.label, key.query, tokens)


def _swap_insert(swap: SwapSentence, tokens: int) -> _Insert:
    return _Insert(
        swap.id, swap.attribute, "identity_swap", dict(swap.variants), swap.label, swap.query, tokens
    )


def _fill(
    spec: LongDocumentSpec,
    order: np.ndarray,
    filler_tokens: list[int],
    length: int,
    insert: _Insert,
    set_name: str,
) -> tuple[list[str], list[int]]:
    """The filler sentences (in the instance's cycled order) that fit beside the insert in ``length``."""
    budget = length - insert.tokens
    if budget < 1:
        raise UserError(
            f"long-document probe set {set_name!r}: a {length}-token document cannot hold "
            f"{insert.instance_stem!r} ({insert.tokens} tokens) and any filler; use lengths above "
            f"{insert.tokens + max(filler_tokens)} tokens or a shorter sentence"
        )
    sentences: list[str] = []
    counts: list[int] = []
    total = 0
    for index in cycle(order.tolist()):
        count = filler_tokens[index]
        if sentences and total + count > budget:
            break
        sentences.append(spec.filler[index])
        counts.append(count)
        total += count
    return sentences, counts


def _instance(
    spec: LongDocumentSpec, insert: _Insert, length: int, sentences: list[str], counts: list[int]
) -> Instance:
    """One instance: the same filler, the insert placed at each position (plus ``none`` for a key)."""
    instance_id = f"{insert.instance_stem}-{length}"
    filler = " ".join(sentences)
    cumulative = np.concatenate([[0], np.cumsum(counts)])
    char_starts = np.concatenate([[0], np.cumsum([len(s) + 1 for s in sentences])])
    variants: list[Variant] = []
    if insert.role == "key_sentence":
        variants.append(
            Variant(
                instance_id=instance_id,
                variant="none",
                attribute=insert.attribute,
                text=filler,
                label=insert.label,
                doc_length=length,
            )
        )
    for position in spec.positions:
        boundary = int(np.argmin(np.abs(cumulative - position * cumulative[-1])))
        before = filler[: int(char_starts[boundary]) - 1] if boundary > 0 else ""
        after = filler[int(char_starts[boundary]) :] if boundary < len(sentences) else ""
        for group, sentence in insert.texts.items():
            start = len(before) + (1 if before else 0)
            text = f"{before}{' ' if before else ''}{sentence}{' ' if after else ''}{after}"
            name = position_name(position)
            variants.append(
                Variant(
                    instance_id=instance_id,
                    variant=f"{group}-{name}" if group else name,
                    attribute=insert.attribute,
                    text=text,
                    label=insert.label,
                    focus=(Span(start=start, end=start + len(sentence)),),
                    doc_length=length,
                    position=position,
                    swap_group=group or None,
                )
            )
    return Instance(
        instance_id=instance_id,
        attribute=insert.attribute,
        variants=tuple(variants),
        context=" | ".join(insert.texts.values()),
        role=insert.role,
        query=insert.query,
    )


def summary_lines(probe_set: ProbeSet, model_max: int = 512) -> list[str]:
    """A few lines that describe a probe set without a model (for ``audit probes show/list``).

    For a long-document set: its lengths rule, positions, keys, swaps and filler, and what it
    would make for a model with a ``model_max``-token limit (a whitespace count stands in for
    the tokenizer, so instance and variant counts are exact, text lengths are not).
    """
    spec = probe_set.long_document
    if spec is None:
        return [
            f"{len(probe_set.instances)} instances, {len(probe_set.variants)} variants; "
            f"attributes: {', '.join(probe_set.attributes)}"
        ]
    if spec.lengths == "auto":
        lengths_rule = (
            f"lengths: auto, per model (defaults {', '.join(map(str, DEFAULT_LENGTHS))} below the model's "
            f"limit, the limit itself and the next default past it; at most {spec.max_doc_tokens} tokens)"
        )
        example_lengths = auto_lengths(model_max, spec.max_doc_tokens)
    else:
        lengths_rule = f"lengths: {', '.join(map(str, spec.lengths))} tokens"
        example_lengths = spec.lengths
    labels = sorted({key.label for key in spec.keys if key.label})
    by_label = ", ".join(f"{sum(k.label == label for k in spec.keys)} {label}" for label in labels)
    attributes = sorted({swap.attribute for swap in spec.swaps})
    groups = sorted({group for swap in spec.swaps for group in swap.variants})
    key_variants = 1 + len(spec.positions)
    swap_variants = sum(len(swap.variants) * len(spec.positions) for swap in spec.swaps)
    instances = (len(spec.keys) + len(spec.swaps)) * len(example_lengths)
    variants = len(example_lengths) * (len(spec.keys) * key_variants + swap_variants)
    lines = [
        "long-document set: its documents are built for each model when it is audited",
        lengths_rule,
        f"positions: {', '.join(f'{p:g}' for p in spec.positions)} ({len(spec.positions)})",
        f"key sentences: {len(spec.keys)}" + (f" ({by_label})" if by_label else ""),
        f"identity swaps: {len(spec.swaps)}"
        + (f" ({', '.join(attributes)}: {', '.join(groups)})" if spec.swaps else ""),
        f"filler: {len(spec.filler)} sentences" + (f"; {spec.filler_source}" if spec.filler_source else ""),
        f"for a model with a {model_max}-token limit: lengths {', '.join(map(str, example_lengths))}; "
        f"{instances} instances, {variants} variants",
    ]
    if probe_set.materialized:
        built = sorted({v.doc_length for v in probe_set.variants if v.doc_length is not None})
        lines.append(
            f"built: lengths {', '.join(map(str, built))}; {len(probe_set.instances)} instances, "
            f"{len(probe_set.variants)} variants"
        )
    return lines
