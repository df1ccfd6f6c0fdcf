"""The probe data model: a ProbeSet holds Instances, each seen in several Variants.

One shape serves every kind of probe set (see docs/architecture.md):

- counterfactual: one template filled once per group ("He is a nurse." / "She is a nurse.")
- long document / multilingual: later kinds reuse the same shape (position or language as variant).

For embedding models a probe set may also carry ``associations``: named pairs of attribute
sets (SEAT/WEAT style, e.g. pleasant vs unpleasant words). The embedding target scores every
variant by its mean cosine similarity to set ``a`` minus set ``b``, and the association test
uses the variants of each group as the target sets.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ProbeKind = Literal["counterfactual"]


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
        return self


class Instance(BaseModel):
    """One probe seen in several variants; the variants are compared with each other."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    attribute: str
    variants: tuple[Variant, ...]
    context: str | None = Field(default=None, description="template or source this instance came from")

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
        return self

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


class ProbeSet(BaseModel):
    """A named collection of instances with its card and, optionally, embedding associations."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ProbeKind = "counterfactual"
    description: str = ""
    card: str = Field(default="", description="what it measures, how it was built, known confounds")
    source: str = Field(default="", description="file the set was loaded from, or 'builtin:NAME'")
    tasks: tuple[str, ...] = Field(
        default=("text-classification", "embedding"), description="target tasks the set is meant for"
    )
    instances: tuple[Instance, ...]
    associations: tuple[Association, ...] = ()

    @model_validator(mode="after")
    def _unique_instances(self) -> ProbeSet:
        ids = [i.instance_id for i in self.instances]
        if len(ids) != len(set(ids)):
            seen: set[str] = set()
            dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise ValueError(f"probe set {self.name!r} repeats instance id {dup!r}")
        if not self.instances:
            raise ValueError(f"probe set {self.name!r} has no instances")
        return self

    @property
    def attributes(self) -> list[str]:
        return sorted({i.attribute for i in self.instances})

    @property
    def variants(self) -> list[Variant]:
        return [v for i in self.instances for v in i.variants]

    def content_hash(self) -> str:
        """sha256 of the set's content; recorded in the run manifest."""
        payload = json.dumps(self.model_dump(mode="json", exclude={"source"}), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()
