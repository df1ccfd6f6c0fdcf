"""AuditConfig: every setting of an audit run, from CLI flags or an audit.yaml file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from audit.errors import UserError
from audit.tasks import TASKS, task_option_help

DEFAULT_MODELS = ("minilm-sentiment", "minilm")
DEFAULT_MIN_EFFECT = 0.02
"""Practical threshold for mean paired differences: 2 points of probability (or of association
score, a difference of cosine similarities). Smaller shifts are reported but never 'significant'."""

Device = Literal["auto", "cpu", "cuda"]
TASK_CHOICES: tuple[str, ...] = ("auto", *TASKS)
"""``task``: auto (read from the model's config) or a task of ``audit.tasks.TASKS``."""


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS))
    probes: list[str] = Field(
        default_factory=list, description="built-in names or files; empty = all built-in"
    )
    probe_mapping: dict[str, str] = Field(
        default_factory=dict, description="for probe files and datasets: our column -> the file's column"
    )
    probe_defaults: dict[str, str] = Field(
        default_factory=dict, description="values for columns a file lacks"
    )
    probe_split: str | None = Field(default=None, description="dataset split of a probe dataset")
    associations: list[str] = Field(
        default_factory=list,
        description="association files or built-in set names, for probe sets without their own (embeddings)",
    )
    task: str = Field(default="auto", description=task_option_help())
    out: Path = Path("runs")
    name: str | None = Field(default=None, description="run folder name; default <timestamp>-<model>")
    overwrite: bool = False
    device: Device = "auto"
    revision: str | None = None
    allow_pickle: bool = False
    max_length: int | None = Field(default=None, ge=8, description="cap on tokens per input")
    batch_tokens: int = Field(default=8192, ge=64, description="padded tokens per batch")
    max_instances: int | None = Field(
        default=None, ge=1, description="first N instances of each set (quick runs)"
    )
    seed: int = 0
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_effect: float = Field(default=DEFAULT_MIN_EFFECT, gt=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    n_resamples: int = Field(default=2000, ge=100)
    n_permutations: int = Field(default=10000, ge=100)
    attributions: bool = True
    attribute_top: int | Literal["all"] = 10
    attribution_methods: list[str] = Field(
        default_factory=lambda: ["integrated_gradients", "gradient_x_input"]
    )
    ig_steps: int = Field(default=32, ge=2)
    attention: bool = True
    long_inputs: Literal["truncate", "window"] = Field(
        default="truncate",
        description="inputs longer than the model's maximum: cut (flagged 'truncated') or sliding windows",
    )
    window_stride: int | None = Field(
        default=None, ge=1, description="window strategy: tokens between window starts; default half a window"
    )
    window_aggregate: Literal["mean", "max"] | None = Field(
        default=None,
        description="window strategy: how window scores combine into the text's score (default mean)",
    )
    max_doc_tokens: int | None = Field(
        default=None,
        ge=16,
        description="long-document sets: the longest document built (default: the set's, 32768)",
    )
    long_attribute_top: int = Field(
        default=3, ge=0, description="long-document sets: instances given segment attributions"
    )
    long_token_attributions: bool = Field(
        default=False, description="long-document sets: also store token-level attributions (large)"
    )
    unknown_rate_limit: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="parallel sets: a language with this share of unknown tokens or more is unreadable; "
        "its differences are not bias findings",
    )
    generate: int = Field(
        default=0,
        ge=0,
        description="causal LMs: continuations generated per variant of every counterfactual set (0: none)",
    )
    sample: bool = Field(
        default=True, description="generation: sample (temperature 1, top-p 0.95) or, when false, greedy"
    )
    max_new_tokens: int = Field(default=20, ge=1, description="generation: most tokens per continuation")
    generation_scorer: str | None = Field(
        default=None,
        description="generation: a model (classifier, embedding model or causal LM) that scores each continuation",
    )

    @field_validator("models", "probes", "associations", "attribution_methods", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def test_options(self) -> dict[str, Any]:
        """The statistics settings every findings builder takes (audit/metrics/*)."""
        return {
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "n_permutations": self.n_permutations,
            "seed": self.seed,
        }

    @property
    def aggregate(self) -> Literal["mean", "max"]:
        """How window scores combine (a text with one input is the same either way)."""
        return self.window_aggregate or "mean"

    @field_validator("task", mode="before")
    @classmethod
    def _known_task(cls, value: Any) -> Any:
        if value not in TASK_CHOICES:
            expected = ", ".join(map(repr, TASK_CHOICES[:-1])) + f" or {TASK_CHOICES[-1]!r}"
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "/" in value or "\\" in value or value in (".", "..")):
            raise ValueError(
                "--name is a folder name inside --out (no '/', not '.' or '..'); use --out for the place"
            )
        return value

    @field_validator("attribute_top", mode="before")
    @classmethod
    def _top(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "all":
            if not value.isdigit():
                raise ValueError("--attribute-top takes a whole number or 'all'")
            return int(value)
        return value

    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> AuditConfig:
        """Settings from an audit.yaml file; flags given on the command line win."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise UserError(f"{path}: cannot read the config file: {error}") from error
        if not isinstance(data, dict):
            raise UserError(f"{path}:1: the config file must be a mapping of setting: value")
        # files named in the config are relative to the config file, not to where audit runs
        base = Path(path).resolve().parent
        for key in ("models", "probes"):
            values = data.get(key)
            if isinstance(values, str):
                values = [values]
            if isinstance(values, list):
                data[key] = [
                    str(base / v)
                    if isinstance(v, str) and not Path(v).is_absolute() and (base / v).exists()
                    else v
                    for v in values
                ]
        if isinstance(data.get("out"), str) and not Path(data["out"]).is_absolute():
            data["out"] = str(base / data["out"])
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.build(data, source=str(path))

    @classmethod
    def build(cls, data: dict[str, Any], source: str = "command line") -> AuditConfig:
        try:
            return cls(**data)
        except ValidationError as error:
            known = ", ".join(cls.model_fields)
            lines = []
            for e in error.errors():
                key = ".".join(str(p) for p in e["loc"])
                hint = f" (settings: {known})" if e["type"] == "extra_forbidden" else ""
                flag = f" (--{key.replace('_', '-')})" if source == "command line" else ""
                lines.append(f"{source}: {key}{flag}: {e['msg']}{hint}")
            raise UserError("\n".join(lines)) from None
