"""The tasks a model can be audited for: one row per task, the only list of them.

Every layer reads this table: the model loader (``--task`` values, the transformers auto class,
task detection from ``config.architectures``), the target adapters (``audit.targets.build_target``),
the probe-set check (which ``tasks:`` a model runs) and the config (``--task``'s choices, which the
CLI lists). It imports neither torch nor transformers, so the CLI starts without them: a row names its
adapter class by its import path, and ``audit.targets`` imports it when a target is built.

A new task is one row here and its adapter, ``audit/targets/<task>.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskInfo:
    """One task: what ``--task NAME`` loads, how it is recognised, and which adapter scores it."""

    name: str
    target: str
    """The adapter: ``module:Class`` of its ``audit.targets.base.Target`` subclass, whose
    ``from_loaded(loaded, device)`` builds it."""
    model_class: str | None = None
    """The transformers auto class the model loads with; None: not a transformers model."""
    architecture_suffixes: tuple[str, ...] = ()
    """``config.architectures`` names ending in one of these are models of this task."""
    also_runs: tuple[str, ...] = ()
    """The probe sets' ``tasks:`` values it runs besides its own name."""

    @property
    def probe_set_tasks(self) -> tuple[str, ...]:
        """The ``tasks:`` values of the probe sets a model of this task can run."""
        return (self.name, *self.also_runs)


TASKS: dict[str, TaskInfo] = {
    info.name: info
    for info in (
        TaskInfo(
            "text-classification",
            "audit.targets.classification:ClassificationTarget",
            "AutoModelForSequenceClassification",
            ("ForSequenceClassification",),
        ),
        TaskInfo(
            "embedding",
            "audit.targets.embedding:EmbeddingTarget",
            "AutoModel",
        ),
        TaskInfo(
            "masked-lm",
            "audit.targets.masked_lm:MaskedLMTarget",
            "AutoModelForMaskedLM",
            ("ForMaskedLM",),
        ),
        TaskInfo(
            "causal-lm",
            "audit.targets.causal_lm:CausalLMTarget",
            "AutoModelForCausalLM",
            ("ForCausalLM", "LMHeadModel"),  # GPT2LMHeadModel, GPTJ..., CTRLLMHeadModel
        ),
        TaskInfo(
            "seq2seq",
            "audit.targets.seq2seq:Seq2SeqTarget",
            "AutoModelForSeq2SeqLM",
            ("MTModel",),  # MarianMTModel
        ),
        TaskInfo(
            "token-classification",
            "audit.targets.token_classification:TokenClassificationTarget",
            "AutoModelForTokenClassification",
            ("ForTokenClassification",),
        ),
        TaskInfo(
            "question-answering",
            "audit.targets.question_answering:QuestionAnsweringTarget",
            "AutoModelForQuestionAnswering",
            ("ForQuestionAnswering",),
        ),
        TaskInfo(
            "module",
            "audit.targets.module:ModuleTarget",
            also_runs=("text-classification",),  # a plain module is a classifier
        ),
    )
}
"""The tasks a model can be loaded for (``--task``, besides ``auto``, which reads the model's config)."""


def _is_language_model_head(info: TaskInfo) -> bool:
    return (info.model_class or "").endswith("LM")


ARCHITECTURE_SUFFIXES: tuple[tuple[str, str], ...] = tuple(
    (suffix, info.name)
    for info in sorted(TASKS.values(), key=_is_language_model_head)
    for suffix in info.architecture_suffixes
)
"""``(suffix, task)`` in the order ``detect_task`` checks them: task heads (classification, token
classification, question answering) before language-model heads, so that a config listing both
is read as the task head."""


def probe_set_tasks(task: str) -> tuple[str, ...]:
    """The ``tasks:`` values of the probe sets a model of this task can run."""
    info = TASKS.get(task)
    return info.probe_set_tasks if info is not None else (task,)
