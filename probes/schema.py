"""The probe data model: a ProbeSet holds Instances, each seen in several Variants.

One shape serves every kind of probe set (see docs/architecture.md):

- counterfactual: one template filled once per group ("He is a nurse." / "She is a nurse.")
- long document: a key sentence (or an identity-swap sentence) placed at several positions of
  filler documents of several lengths. The file holds a ``LongDocumentSpec``; the instances are
  built for each model by ``probes.long_document.materialize`` (lengths are counted in the model's
  tokens), one instance per key sentence x length, one variant per position (plus ``none``, the
  document without the key sentence; or one per group x position for identity swaps).

For embedding models a probe set may also carry ``associations``: named pairs of attribute
sets (SEAT/WEAT style, e.g. pleasant vs unpleasant words). The embedding target scores every
variant by its mean cosine similarity to set ``a`` minus set ``b``, and the association test
uses the variants of each group as the target sets.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from audit.kinds.names import ProbeKind

InstanceRole = Literal["counterfactual", "key_sentence", "identity_swap"]
COUNTERFACTUAL_TASKS = ("text-classification", "embedding", "masked-lm", "causal-lm")
"""The model tasks a counterfactual set that lists no ``tasks`` (a CSV / JSONL pairs or variants
file, a dataset, a YAML file without ``tasks:``) is meant for: every task whose score reads each
variant on its own (a classifier's probabilities, an embedding model's association or similarity
scores, a masked LM's pseudo-log-likelihood, a causal LM's log-likelihood). Sequence-to-sequence,
token-classification and question-answering models need what such a set does not have (target
texts, name spans, questions): a set for them lists them."""
OTHER_TASKS = ("text-classification", "embedding")
"""The model tasks a set of another kind that lists no ``tasks`` is meant for (parallel and
long-document sets: classifiers and embedding models; decoders and masked LMs cannot compare their
numbers across languages or document lengths)."""
TARGET_FIELDS = ("targets", "target_lang", "target_words")
"""Variant fields of seq2seq sets (a set without them hashes as before they existed)."""


class Span(BaseModel):
    """Character span [start, end) in a variant's text (the swapped word, the key sentence)."""

    model_config = ConfigDict(frozen=True)

    start: int = Field(ge=0)
    end: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if self.end < self.start:
            raise ValueError(f"span end {self.end} is before its start {self.start}")
        return self


class Variant(BaseModel):
    """One input text: an instance seen as one group (or position, or language)."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    variant: str = Field(description="group, position or language this text stands for")
    attribute: str = Field(description="gender, race, religion, nationality, age, disability, ...")
    text: str
    label: str | None = Field(default=None, description="expected label, when the probe states one")
    lang: str = "en"
    focus: tuple[Span, ...] = Field(default=(), description="characters that differ between variants")
    doc_length: int | None = Field(default=None, ge=1, description="long documents: nominal length in tokens")
    position: float | None = Field(
        default=None, ge=0.0, le=1.0, description="long documents: key sentence start (0..1); None: no key"
    )
    swap_group: str | None = Field(default=None, description="long-document identity swaps: the group")
    targets: dict[str, str] = Field(
        default_factory=dict,
        description="seq2seq: name -> a target text (a translation) whose log-likelihood given this text is scored",
    )
    target_lang: str | None = Field(default=None, description="seq2seq: the language the targets are in")
    target_words: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="seq2seq: name -> words whose presence marks a generated output as that target's form",
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is empty")
        return text

    @model_validator(mode="after")
    def _focus_inside_text(self) -> Variant:
        for span in self.focus:
            if span.end > len(self.text):
                raise ValueError(
                    f"focus span {span.start}:{span.end} lies outside the text ({len(self.text)} characters)"
                )
        self._check_targets()
        return self

    def _check_targets(self) -> None:
        """Target names and texts are not blank; words and a target language go with targets."""
        for name, target in self.targets.items():
            if not name.strip() or not target.strip():
                raise ValueError(f"target {name!r} of variant {self.variant!r} has an empty name or text")
        unknown = sorted(set(self.target_words) - set(self.targets))
        if unknown:
            raise ValueError(
                f"target_words name(s) {unknown} that are not targets of variant {self.variant!r}"
            )
        if any(not words or not all(w.strip() for w in words) for words in self.target_words.values()):
            raise ValueError(f"target_words of variant {self.variant!r} hold an empty list or an empty word")
        if self.target_lang is not None and not self.targets:
            raise ValueError(f"variant {self.variant!r} has a target_lang but no targets")


class MultipleChoice(BaseModel):
    """A BBQ-style question (Parrish et al. 2022) about a context, with three answers: the two groups
    and "unknown". One variant per answer; every variant's text is the same input (the question, a
    separator, then the passage: the context and a final sentence listing the answers), and its
    focus span is its answer inside that last sentence, so every answer is a span of the input."""

    model_config = ConfigDict(frozen=True)

    question: str
    passage: str = Field(description="the context followed by the sentence that lists the answers")
    context_condition: Literal["ambig", "disambig"]
    question_polarity: Literal["neg", "nonneg"]
    correct: str = Field(description="variant name of the correct answer")
    stereotyped: str = Field(description="variant name of the answer naming the stereotyped group")
    unknown: str = Field(description='variant name of the "unknown" answer')
    groups: dict[str, str] = Field(
        default_factory=dict, description="variant name -> the group its answer names"
    )
    source_id: str | None = Field(default=None, description="the item's id in its source (BBQ example_id)")


class Instance(BaseModel):
    """One probe seen in several variants; the variants are compared with each other."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    attribute: str
    variants: tuple[Variant, ...]
    context: str | None = Field(default=None, description="template or source this instance came from")
    role: InstanceRole = "counterfactual"
    query: str | None = Field(
        default=None, description="embedding targets: the text the instance's documents are compared with"
    )
    choice: MultipleChoice | None = Field(
        default=None, description="kind multiple_choice: the question, its answers' roles and conditions"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Instance:
        if len(self.variants) < 2:
            raise ValueError(
                f"instance {self.instance_id!r} has {len(self.variants)} variant(s); it needs at least 2"
            )
        names = [v.variant for v in self.variants]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"instance {self.instance_id!r} repeats variant(s) {duplicated}")
        for v in self.variants:
            if v.instance_id != self.instance_id:
                raise ValueError(
                    f"variant {v.variant!r} belongs to {v.instance_id!r}, not {self.instance_id!r}"
                )
        self._check_choice()
        return self

    def _check_choice(self) -> None:
        """A multiple-choice instance has three answers (stereotyped group, other group, unknown), each
        variant's text is question + separator + passage, and each answer is a span of it."""
        choice = self.choice
        if choice is None:
            return
        names = [v.variant for v in self.variants]
        if len(names) != 3:
            raise ValueError(
                f"multiple-choice instance {self.instance_id!r} needs 3 answers, not {len(names)}"
            )
        for role in ("correct", "stereotyped", "unknown"):
            if getattr(choice, role) not in names:
                raise ValueError(
                    f"instance {self.instance_id!r}: its {role} answer {getattr(choice, role)!r} is not one of "
                    f"its variants {names}"
                )
        if choice.stereotyped == choice.unknown:
            raise ValueError(
                f"instance {self.instance_id!r}: the stereotyped answer cannot be the unknown one"
            )
        for v in self.variants:
            if not (v.text.startswith(choice.question) and v.text.endswith(choice.passage)):
                raise ValueError(
                    f"instance {self.instance_id!r}: the text of answer {v.variant!r} is not its question, a "
                    "separator and its passage"
                )
            if len(v.focus) != 1 or v.focus[0].start < len(v.text) - len(choice.passage):
                raise ValueError(
                    f"instance {self.instance_id!r}: answer {v.variant!r} needs one focus span inside the passage"
                )

    @property
    def non_stereotyped(self) -> str | None:
        """Multiple-choice instances: the variant name of the answer naming the other group."""
        if self.choice is None:
            return None
        roles = {self.choice.stereotyped, self.choice.unknown}
        return next(v.variant for v in self.variants if v.variant not in roles)

    @property
    def groups(self) -> list[str]:
        return [v.variant for v in self.variants]


class Association(BaseModel):
    """Two attribute sets an embedding is compared against (SEAT/WEAT style)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="short name, e.g. 'pleasant_vs_unpleasant'")
    a_name: str = Field(description="what set a stands for, e.g. 'pleasant'")
    b_name: str = Field(description="what set b stands for, e.g. 'unpleasant'")
    a: tuple[str, ...] = Field(min_length=2)
    b: tuple[str, ...] = Field(min_length=2)
    source: str | None = None


class KeySentence(BaseModel):
    """A sentence that should decide the output wherever it stands in a long document."""

    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    label: str | None = Field(default=None, description="classifiers: the label the sentence should decide")
    query: str | None = Field(default=None, description="embeddings: a query the sentence should match")


class SwapSentence(BaseModel):
    """An identity-swap sentence: the same sentence once per group, placed like a key sentence."""

    model_config = ConfigDict(frozen=True)

    id: str
    attribute: str
    variants: dict[str, str] = Field(description="group -> the sentence as that group")
    label: str | None = None
    query: str | None = None


class LongDocumentSpec(BaseModel):
    """How to build a long-document probe set for one model (probes.long_document.materialize)."""

    model_config = ConfigDict(frozen=True)

    lengths: tuple[int, ...] | Literal["auto"] = Field(
        default="auto", description="document lengths in tokens; auto: around the model's maximum"
    )
    positions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    filler: tuple[str, ...] = Field(min_length=1, description="neutral filler sentences")
    filler_source: str = ""
    keys: tuple[KeySentence, ...] = ()
    swaps: tuple[SwapSentence, ...] = ()
    max_doc_tokens: int = Field(default=32768, ge=16, description="longest document auto lengths reach")
    seed: int = 0


class ProbeSet(BaseModel):
    """A named collection of instances with its card and, optionally, embedding associations."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ProbeKind = "counterfactual"
    description: str = ""
    card: str = Field(default="", description="what it measures, how it was built, known confounds")
    source: str = Field(default="", description="file the set was loaded from, or 'builtin:NAME'")
    tasks: tuple[str, ...] = Field(
        default=OTHER_TASKS, description="target tasks the set is meant for (none given: default_tasks(kind))"
    )
    instances: tuple[Instance, ...]
    associations: tuple[Association, ...] = ()
    long_document: LongDocumentSpec | None = Field(
        default=None, description="kind long_document: the spec its instances are built from, per model"
    )
    reference_lang: str | None = Field(
        default=None, description="kind parallel: the language (BCP-47) every other language is compared with"
    )
    in_default_run: bool = Field(
        default=True,
        description="whether an audit with no probes named runs this built-in set (list_builtin(default_run_only=True))",
    )
    continuations: tuple[str, ...] = Field(
        default=(),
        description="causal LMs: texts whose log-likelihood after every variant is scored (BOLD / HolisticBias style)",
    )

    @model_validator(mode="before")
    @classmethod
    def _tasks_by_kind(cls, data: Any) -> Any:
        """A set that lists no tasks is meant for every task that can score its kind."""
        if isinstance(data, dict) and data.get("tasks") is None:
            return {**data, "tasks": default_tasks(data.get("kind") or "counterfactual")}
        return data

    @field_validator("continuations")
    @classmethod
    def _distinct_continuations(cls, continuations: tuple[str, ...]) -> tuple[str, ...]:
        """Each continuation names an output ("loglik:<continuation>"): not blank, not repeated."""
        seen: set[str] = set()
        for continuation in continuations:
            name = continuation.strip()
            if not name:
                raise ValueError("a continuation is empty")
            if name in seen:
                raise ValueError(f"continuation {name!r} is listed twice")
            seen.add(name)
        return continuations

    @model_validator(mode="after")
    def _unique_instances(self) -> ProbeSet:
        ids = [i.instance_id for i in self.instances]
        if len(ids) != len(set(ids)):
            seen: set[str] = set()
            dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise ValueError(f"probe set {self.name!r} repeats instance id {dup!r}")
        if (self.kind == "long_document") != (self.long_document is not None):
            raise ValueError(f"probe set {self.name!r}: kind long_document goes with a long_document spec")
        if not self.instances and self.long_document is None:
            raise ValueError(f"probe set {self.name!r} has no instances")
        if any((i.choice is not None) != (self.kind == "multiple_choice") for i in self.instances):
            raise ValueError(
                f"probe set {self.name!r}: kind multiple_choice goes with a choice on every instance"
            )
        self._check_parallel()
        return self

    def _check_parallel(self) -> None:
        """A parallel set names its reference language, and every instance has a text in it."""
        if (self.kind == "parallel") != (self.reference_lang is not None):
            raise ValueError(f"probe set {self.name!r}: kind parallel goes with a reference_lang")
        for instance in self.instances if self.reference_lang is not None else ():
            if not any(v.lang == self.reference_lang for v in instance.variants):
                raise ValueError(
                    f"instance {instance.instance_id!r} has no text in the reference language "
                    f"{self.reference_lang!r}"
                )

    @property
    def materialized(self) -> bool:
        """Whether the instances exist (a long-document set gets them per model)."""
        return bool(self.instances)

    @property
    def attributes(self) -> list[str]:
        return sorted({i.attribute for i in self.instances})

    @property
    def variants(self) -> list[Variant]:
        return [v for i in self.instances for v in i.variants]

    def content_hash(self) -> str:
        """sha256 of the set's content; recorded in the run manifest."""
        # a long-document set's instances follow from its spec and the model's tokenizer (recorded
        # apart); hashing the spec avoids serialising ~80 MB of built documents
        exclude = {"source", "instances"} if self.long_document is not None else {"source"}
        if self.reference_lang is None:
            exclude.add("reference_lang")  # sets of other kinds hash as before the field existed
        if self.in_default_run:
            exclude.add("in_default_run")  # likewise: only sets kept out of the default run hash it
        if not self.continuations:
            exclude.add("continuations")  # likewise: only sets with continuations hash them
        excluded: dict[str, Any] = dict.fromkeys(exclude, True)
        instance_fields: dict[str, Any] = {}
        if self.kind != "multiple_choice":
            instance_fields["choice"] = True  # likewise: only multiple-choice sets hash it
        if not any(v.targets or v.target_lang or v.target_words for v in self.variants):
            instance_fields["variants"] = {"__all__": dict.fromkeys(TARGET_FIELDS, True)}  # likewise: targets
        if instance_fields and "instances" not in excluded:
            excluded["instances"] = {"__all__": instance_fields}
        payload = json.dumps(self.model_dump(mode="json", exclude=excluded), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def default_tasks(kind: str) -> tuple[str, ...]:
    """The tasks a set of this kind is meant for when it lists none."""
    return COUNTERFACTUAL_TASKS if kind == "counterfactual" else OTHER_TASKS
