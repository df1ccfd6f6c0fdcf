"""AuditConfig: every setting of an audit run, from CLI flags or an audit.yaml file."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from audit.errors import UserError
from audit.metrics.options import TestOptions
from audit.tasks import TASKS

DEFAULT_MODELS = ("minilm-sentiment", "minilm")
DEFAULT_MIN_EFFECT = 0.02
"""Practical threshold for mean paired differences: 2 points of probability (or of association
score, a difference of cosine similarities). Smaller shifts are reported but never 'significant'."""

TASK_CHOICES: tuple[str, ...] = ("auto", *TASKS)
"""``task``: auto (read from the model's config) or a task of ``audit.tasks.TASKS``."""
if TYPE_CHECKING:
    Task = str
else:  # the table's names as choices: pydantic checks them, the CLI lists them (audit/cli_settings.py)
    Task = Literal[TASK_CHOICES]
Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class Flag:
    """How a setting reads on `audit run`'s command line, where that differs from what its field
    implies (`--field-name`, `--field-name/--no-field-name` for a boolean, its default shown in
    --help). Attach it with `Annotated[type, Flag(...)]`."""

    name: str | None = None
    """The long flag; default `--` and the field's name with dashes."""
    short: str | None = None
    """A one-letter alias such as `-m`."""
    off: str | None = None
    """A boolean's second flag, which turns it off; default `--no-` and the long flag's name."""
    shown_default: str | None = None
    """The default in --help words, for a field whose default value says nothing (None, empty)."""
    on_command_line: bool = True
    """False: the setting is read from audit.yaml only."""


CONFIG_FILE_ONLY = Flag(on_command_line=False)


class AuditConfig(BaseModel):
    """Every setting of an audit run, each written once: its type, default and description here; its
    flag on `audit run` derived from the field (audit/cli_settings.py), with a `Flag` where the
    command line names or shows it differently."""

    model_config = ConfigDict(extra="forbid")

    models: Annotated[list[str], Flag("--model", "-m")] = Field(
        default_factory=lambda: list(DEFAULT_MODELS),
        description="Bundled short name, local folder or hub id; repeat for several.",
    )
    probes: Annotated[list[str], Flag(short="-p", shown_default="the built-ins for the model's task")] = (
        Field(default_factory=list, description="Built-in probe set name or probe file; repeat.")
    )
    probe_mapping: Annotated[dict[str, str], Flag("--probe-map", shown_default="none")] = Field(
        default_factory=dict,
        description="Probe files/datasets: OUR_COLUMN=FILE_COLUMN, e.g. text_a=sent_more; repeat.",
    )
    probe_defaults: Annotated[dict[str, str], Flag("--probe-default", shown_default="none")] = Field(
        default_factory=dict,
        description="Probe files/datasets: COLUMN=VALUE for a column the file lacks; repeat.",
    )
    probe_split: Annotated[str | None, Flag(shown_default="the dataset's only split")] = Field(
        default=None, description="Split of a probe dataset."
    )
    associations: Annotated[list[str], Flag(shown_default="none")] = Field(
        default_factory=list,
        description="For embedding audits of probe sets without associations: a YAML 'associations:' file or "
        "a built-in set name; repeat.",
    )
    task: Task = Field(default="auto", description="The model's task; auto reads it from the model's config.")
    out: Path = Field(default=Path("runs"), description="Folder that holds runs.")
    name: Annotated[str | None, Flag(shown_default="<timestamp>-<model>")] = Field(
        default=None, description="Run folder name, inside --out."
    )
    overwrite: bool = Field(default=False, description="Replace an existing run folder of the same name.")
    device: Device = Field(default="auto", description="Where the model runs; auto: cuda when there is one.")
    revision: Annotated[str | None, Flag(shown_default="main")] = Field(
        default=None, description="Hub revision (branch, tag or commit) to load."
    )
    allow_pickle: bool = Field(
        default=False, description="Allow pickle (.bin) weights; unsafe for untrusted models."
    )
    max_length: Annotated[int | None, Flag(shown_default="the model's maximum")] = Field(
        default=None,
        ge=8,
        description="Cap tokens per model input (longer texts are cut and flagged, or windowed).",
    )
    batch_tokens: int = Field(default=8192, ge=64, description="Padded tokens per batch.")
    max_instances: Annotated[int | None, Flag(shown_default="all")] = Field(
        default=None,
        ge=1,
        description="Use N instances of each set, spread evenly over it (a quick look); for long-document "
        "sets, N keys and N swaps, each built at every length.",
    )
    seed: int = Field(default=0, description="Random seed.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="False discovery rate for q-values.")
    min_effect: float = Field(
        default=DEFAULT_MIN_EFFECT, gt=0, description="Practical threshold on |mean paired difference|."
    )
    confidence: Annotated[float, Flag(on_command_line=False, shown_default="1 - alpha")] = Field(
        default=0.95,
        gt=0,
        lt=1,
        description="Confidence level of the findings' intervals. Left out, it follows alpha (1 - alpha), so "
        "that a tested row's interval excludes its no-difference value exactly when its p-value is at most "
        "alpha; set apart from alpha, the run warns that the two answer different questions.",
    )
    n_resamples: Annotated[int, CONFIG_FILE_ONLY] = Field(
        default=2000, ge=100, description="Bootstrap resamples per confidence interval."
    )
    n_permutations: Annotated[int, CONFIG_FILE_ONLY] = Field(
        default=10000, ge=100, description="Sign-flip permutations per test."
    )
    attributions: bool = Field(default=True, description="Compute attributions.")
    attribute_top: int | Literal["all"] = Field(
        default=10, description="Attribute the K instances with the largest effects per set, or 'all'."
    )
    attribution_methods: Annotated[list[str], CONFIG_FILE_ONLY] = Field(
        default_factory=lambda: ["integrated_gradients", "gradient_x_input"],
        description="Attribution methods to run.",
    )
    ig_steps: int = Field(
        default=32, ge=2, description="Integrated Gradients steps of the first round (per example)."
    )
    ig_max_steps: int = Field(
        default=1024,
        ge=2,
        description="Integrated Gradients: at most this many steps per example while its attributions "
        "miss --ig-tolerance; an example still off is flagged (converged = false).",
    )
    ig_tolerance: float = Field(
        default=0.05,
        gt=0,
        description="Integrated Gradients completeness tolerance: |sum of attributions - (f(x) - "
        "f(baseline))| at most this share of |f(x) - f(baseline)|.",
    )
    ig_rule: Literal["trapezoid", "gausslegendre"] = Field(
        default="trapezoid",
        description="Integrated Gradients quadrature: trapezoid (refined where the path needs it) or "
        "gausslegendre (all nodes doubled).",
    )
    attention: bool = Field(default=True, description="Compute attention statistics.")
    patching: bool = Field(
        default=False,
        description="Activation patching of the attributed pairs (--attribute-top) whose variants have the same "
        "number of tokens: per layer and token, the share of the pair's difference restored by patching b's "
        "activation into a's run (tables patching, patching_effects).",
    )
    long_inputs: Literal["truncate", "window"] = Field(
        default="truncate",
        description="Inputs longer than the model's maximum: truncate (flagged 'truncated') or window "
        "(sliding windows, nothing dropped).",
    )
    window_stride: Annotated[int | None, Flag(shown_default="half a window")] = Field(
        default=None, ge=1, description="Window strategy: tokens between window starts."
    )
    window_aggregate: Annotated[Literal["mean", "max"] | None, Flag(shown_default="mean")] = Field(
        default=None, description="Window strategy: how the window scores combine into the text's score."
    )
    max_doc_tokens: Annotated[int | None, Flag(shown_default="the set's own, 32768")] = Field(
        default=None, ge=16, description="Long-document sets: longest document built."
    )
    long_attribute_top: int = Field(
        default=3, ge=0, description="Long-document sets: keys given segment attributions."
    )
    long_token_attributions: bool = Field(
        default=False, description="Long-document sets: also store token-level attributions (large)."
    )
    unknown_rate_limit: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Parallel sets: a language whose tokens are this share unknown or more is flagged "
        "unreadable, and its differences are not bias findings.",
    )
    start_token: str = Field(
        default="bos",
        min_length=1,
        description="Causal LMs: the token every text is conditioned on, so that its first token is scored "
        "too: bos (the tokenizer's BOS, else EOS, as lm-evaluation-harness), eos, none (no start token: the "
        "first token is not scored), or one token of the vocabulary.",
    )
    generate: int = Field(
        default=0,
        ge=0,
        description="Causal LMs: generate N continuations of every variant (stored in the generations table); "
        "with --generation-scorer their scores are compared across variants (0: none).",
    )
    sample: Annotated[bool, Flag(off="--greedy")] = Field(
        default=True,
        description="Generation: sample (temperature 1, top-p 0.95, seeded by --seed) or greedy.",
    )
    max_new_tokens: int = Field(default=20, ge=1, description="Generation: most tokens per continuation.")
    generation_scorer: Annotated[str | None, Flag(shown_default="none")] = Field(
        default=None,
        description="Generation: a model that scores each continuation (a classifier such as "
        "minilm-sentiment, an embedding model with associations, or a causal LM); its outputs become gen:* "
        "outputs.",
    )

    @model_validator(mode="before")
    @classmethod
    def _confidence_follows_alpha(cls, data: Any) -> Any:
        """``confidence`` not given: 1 - alpha (alpha's own checks run after; a bad alpha is left to them)."""
        if isinstance(data, dict) and data.get("confidence") is None and "alpha" in data:
            try:
                alpha = float(data["alpha"])
            except (TypeError, ValueError):
                return data
            if 0 < alpha < 1:
                return {**data, "confidence": round(1.0 - alpha, 12)}
        return data

    def interval_level_note(self) -> str | None:
        """A warning when ``confidence`` was set apart from alpha (None when confidence = 1 - alpha)."""
        if abs(self.confidence - (1.0 - self.alpha)) < 1e-9:
            return None
        return (
            f"confidence = {self.confidence} is not 1 - alpha = {round(1.0 - self.alpha, 12)}: an interval "
            f"excludes the no-difference value exactly when its p-value is at most {round(1.0 - self.confidence, 12)}, "
            f"while significance asks q < alpha = {self.alpha}, so a significant row may hold 0 in its interval, "
            "or an interval may exclude 0 on a row that is not; leave confidence out of the config file to tie it "
            "to alpha"
        )

    @field_validator("models", "probes", "associations", "attribution_methods", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def test_options(self) -> TestOptions:
        """The statistics settings every findings builder takes (audit/metrics/*)."""
        return TestOptions(
            alpha=self.alpha,
            min_effect=self.min_effect,
            confidence=self.confidence,
            n_resamples=self.n_resamples,
            n_permutations=self.n_permutations,
            seed=self.seed,
        )

    @property
    def aggregate(self) -> Literal["mean", "max"]:
        """How window scores combine (a text with one input is the same either way)."""
        return self.window_aggregate or "mean"

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

    @model_validator(mode="after")
    def _ig_steps(self) -> AuditConfig:
        if self.ig_max_steps < self.ig_steps:
            raise ValueError(
                f"--ig-max-steps ({self.ig_max_steps}) must be at least --ig-steps ({self.ig_steps})"
            )
        return self

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
                field = str(e["loc"][0]) if e["loc"] else ""
                on_command_line = source == "command line" and field in cls.model_fields
                flag = f" ({setting_flag(cls, field).name})" if on_command_line else ""
                lines.append(f"{source}: {key}{flag}: {e['msg']}{hint}")
            raise UserError("\n".join(lines)) from None


def setting_flag(model: type[BaseModel], field_name: str) -> Flag:
    """The command-line flag of one of `model`'s fields, its long name filled in."""
    flag = next((m for m in model.model_fields[field_name].metadata if isinstance(m, Flag)), Flag())
    return replace(flag, name=flag.name or "--" + field_name.replace("_", "-"))
