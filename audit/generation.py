"""Generation bias as numbers: continue every variant with the causal LM, score the continuations
with a second model, compare the scores across variants.

``audit run --model LM --generate N [--generation-scorer MODEL]`` samples N continuations of each
variant of every counterfactual set (the same prompt with different identity terms, BOLD /
HolisticBias style). The scorer (any model the loader takes whose score reads one text on its
own: a text classifier, an embedding model with associations, a causal LM) scores each
continuation; each of its outputs becomes a per-variant output ``gen:<output>`` (e.g.
``gen:prob:positive``), the mean over the N samples, which the paired statistics compare like
any other output. The scorer sees the generated continuation only, never the prompt, so its own
reaction to the identity terms in the prompt does not enter the score.

Randomness: sample k of an instance is drawn with one seed (from ``--seed``, the probe set, the
instance id and k), the same for all its variants, by quantile sampling (``QuantileSampler``):
common random numbers, so the variants' continuations differ only where the model's
distributions do. Each row draws from its own stream, so a continuation does not depend on the
rows generated with it: many variants are generated together (the decoder's weights are read
once per step for the whole batch, which is what a CPU's time goes into) and a run is reproducible.

Without a scorer the continuations are stored (table ``generations``) but not scored; the
manifest says so. Only causal LMs generate here; the module is kept apart so that other
generating tasks (seq2seq) can reuse it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from audit.batching import collate, encode_texts, run_with_backoff, token_budget_batches
from audit.errors import UserError
from audit.models import describe_model, load_model
from audit.tables import TABLES
from audit.targets import ScoreHead, Target, build_target
from audit.targets.causal_lm import trailing_special_tokens
from probes.schema import ProbeSet

PREFIX = "gen:"
"""Per-variant outputs from generated texts are named ``gen:<the scorer's output>``."""
GENERATING_TASKS: tuple[str, ...] = ("causal-lm",)
SCORER_TASKS: tuple[str, ...] = ("text-classification", "embedding", "causal-lm")
"""Tasks whose score reads one text on its own (a masked LM, seq2seq, NER or QA head needs more)."""
TEMPERATURE = 1.0
TOP_P = 0.95
"""Sampling: the model's distribution at temperature 1, cut to its top 95% of probability mass
(nucleus sampling, Holtzman et al. 2020), which keeps samples close to what the model says
without its long tail of unlikely tokens."""


@dataclass(frozen=True)
class GenerationSettings:
    n_samples: int
    sample: bool
    max_new_tokens: int
    seed: int
    temperature: float = TEMPERATURE
    top_p: float = TOP_P

    def describe(self) -> dict[str, Any]:
        return {
            "n_samples": self.n_samples,
            "decoding": "sample" if self.sample else "greedy",
            "temperature": self.temperature if self.sample else None,
            "top_p": self.top_p if self.sample else None,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
        }


@dataclass
class GenerationPlan:
    """What ``plan_generation`` checked before the run folder exists: the settings and the scorer."""

    settings: GenerationSettings
    scorer: Target | None = None
    scorer_model: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class GenerationResult:
    table: pd.DataFrame
    """The ``generations`` table: one row per variant x sample."""
    predictions: pd.DataFrame
    """Per variant, the mean of each scorer output over its samples (outputs ``gen:*``)."""
    tested_outputs: list[str]
    manifest: dict[str, Any]
    warnings: list[str]


def plan_generation(
    config: Any, target: Target, probe_sets: Sequence[ProbeSet], device: torch.device
) -> GenerationPlan | None:
    """Check the generation settings against the model and load the scorer (None: no generation).

    Raises UserError for a model that does not generate, or a scorer that cannot score the texts.
    """
    if not config.generate:
        if config.generation_scorer:
            raise UserError(
                "--generation-scorer scores generated continuations; add --generate N (continuations per variant)"
            )
        return None
    if target.task not in GENERATING_TASKS:
        raise UserError(
            f"--generate continues texts with a causal language model; this model is {target.task}. "
            "Leave --generate out, or audit a causal LM (e.g. --model smollm2)"
        )
    sample = bool(config.sample)
    warnings = []
    n_samples = int(config.generate)
    if not sample and n_samples > 1:
        warnings.append(
            f"--greedy decoding gives one continuation per variant: --generate {n_samples} makes 1 (use "
            "--sample for several)"
        )
        n_samples = 1
    settings = GenerationSettings(n_samples, sample, int(config.max_new_tokens), int(config.seed))
    if not any(s.kind == "counterfactual" for s in probe_sets):
        raise UserError(
            "--generate continues the variants of counterfactual probe sets, and this run has none"
        )
    if not config.generation_scorer:
        warnings.append(
            "generated texts are stored (table generations) but not scored: no --generation-scorer was given"
        )
        return GenerationPlan(settings, warnings=warnings)
    loaded = load_model(
        config.generation_scorer,
        allow_pickle=config.allow_pickle,
        device=str(device),
        start_token=config.start_token,
    )
    if loaded.task not in SCORER_TASKS:
        raise UserError(
            f"--generation-scorer {config.generation_scorer} is a {loaded.task} model, whose score does not read "
            f"one text on its own; use a {', '.join(SCORER_TASKS)} model (e.g. minilm-sentiment)"
        )
    scorer = build_target(loaded, device)
    if loaded.task == "embedding":
        missing = [s.name for s in probe_sets if s.kind == "counterfactual" and not s.associations]
        if missing:
            raise UserError(
                f"the embedding scorer {config.generation_scorer} scores texts against associations, which "
                f"probe set(s) {', '.join(missing)} lack; add --associations, or use a classifier as scorer"
            )
    return GenerationPlan(settings, scorer, describe_model(loaded), warnings + list(loaded.warnings))


def generate_all(
    plan: GenerationPlan,
    probe_sets: Sequence[tuple[ProbeSet, Sequence[str]]],
    target: Target,
    batch_tokens: int = 8192,
    on_done: Callable[[int], None] | None = None,
) -> GenerationResult:
    """Continuations of every variant of these (probe set, example ids) and, with a scorer, their scores."""
    settings = plan.settings
    frames, predictions = [], []
    tested: list[str] = []
    outputs: list[str] = []
    n_empty = n_cut = 0
    for probe_set, example_ids in probe_sets:
        continuations, cut = generate_variants(target, probe_set, settings, batch_tokens, on_done)
        n_cut += cut
        texts = [c.text for per_variant in continuations for c in per_variant]
        n_empty += sum(not t.strip() for t in texts)
        scores = np.zeros((len(texts), 0))
        if plan.scorer is not None:
            head = plan.scorer.head(probe_set.model_copy(update={"continuations": ()}))
            outputs = [PREFIX + o for o in head.outputs]
            tested = [PREFIX + o for o in head.tested_outputs]
            scores = score_texts(plan.scorer, head, texts, batch_tokens)
        rows = []
        k = 0
        for example_id, per_variant in zip(example_ids, continuations, strict=True):
            for sample, continuation in enumerate(per_variant):
                row: dict[str, Any] = {
                    "example_id": example_id,
                    "sample": sample,
                    "text": continuation.text,
                    "n_new_tokens": continuation.n_new_tokens,
                    "stopped": continuation.stopped,
                }
                row.update({name: float(scores[k, j]) for j, name in enumerate(outputs)})
                rows.append(row)
                k += 1
        frame = pd.DataFrame(rows, columns=[*TABLES["generations"], *outputs])
        frames.append(frame)
        if outputs:
            means = frame.groupby("example_id", sort=False)[outputs].mean()
            long = means.reset_index().melt(id_vars="example_id", var_name="output", value_name="score")
            long["label"] = None
            predictions.append(long[TABLES["predictions"]])
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TABLES["generations"])
    scored = (
        pd.concat(predictions, ignore_index=True)
        if predictions
        else pd.DataFrame(columns=TABLES["predictions"])
    )
    warnings = list(plan.warnings)
    if n_empty:
        warnings.append(
            f"{n_empty} of {len(table)} generated continuations are empty (the model ended the text at once); "
            "they have no scores and are left out of their variant's mean"
        )
    if n_cut:
        warnings.append(
            f"{n_cut} prompt(s) were longer than the model's maximum less --max-new-tokens: only their end was "
            "continued"
        )
    manifest = {
        **settings.describe(),
        "scorer": plan.scorer_model,
        "scored": plan.scorer is not None,
        "scored_text": "the generated continuation only (the scorer never sees the prompt)",
        "outputs": outputs,
        "n_generated": len(table),
        "n_empty": n_empty,
        "note": None
        if plan.scorer is not None
        else "generated texts are stored but not scored: no --generation-scorer was given",
    }
    return GenerationResult(table, scored, tested, manifest, warnings)


def generate_variants(
    target: Target,
    probe_set: ProbeSet,
    settings: GenerationSettings,
    batch_tokens: int,
    on_done: Callable[[int], None] | None = None,
) -> tuple[list[list[Continuation]], int]:
    """Per variant, its ``n_samples`` continuations; and how many prompts were cut. Rows (variant x
    sample) of similar prompt length are generated together, at most ``batch_tokens`` prompt and
    new tokens (and ``MAX_ROWS`` rows) at a time."""
    variants = probe_set.variants
    prompts = [prompt_ids(target, v.text, settings.max_new_tokens) for v in variants]
    rows = [(i, k) for i in range(len(variants)) for k in range(settings.n_samples)]
    lengths = [len(prompts[i][0]) + settings.max_new_tokens for i, _ in rows]
    results: dict[tuple[int, int], Continuation] = {}
    for batch in token_budget_batches(lengths, batch_tokens, max_batch_size=MAX_ROWS):
        chosen = [rows[j] for j in batch]
        seeds = [row_seed(settings.seed, probe_set.name, variants[i].instance_id, k) for i, k in chosen]
        generated = generate_rows(target, [prompts[i][0] for i, _ in chosen], seeds, settings)
        results.update(zip(chosen, generated, strict=True))
        if on_done is not None:
            on_done(len(chosen))
    per_variant = [[results[(i, k)] for k in range(settings.n_samples)] for i in range(len(variants))]
    return per_variant, sum(cut for _, cut in prompts)


@dataclass(frozen=True)
class Continuation:
    text: str
    """The generated text only (special tokens removed, surrounding white space stripped)."""
    n_new_tokens: int
    """Tokens generated before the end-of-text token (or max_new_tokens)."""
    stopped: bool
    """The model ended the text (end-of-sequence) before max_new_tokens."""


MAX_ROWS = 256
"""At most this many continuations are generated together (one batch of ``generate``)."""


def prompt_ids(target: Target, text: str, max_new_tokens: int) -> tuple[list[int], bool]:
    """A variant's token ids as a prompt (an appended end-of-text token removed: it would end the
    text before it continues), cut to its end when the room left for new tokens is too small, its
    start token (audit/start_token.py) kept in front; and whether it was cut."""
    tokenizer = target.tokenizer
    encoded = tokenizer(text, add_special_tokens=True, return_special_tokens_mask=True)
    ids = list(encoded["input_ids"])
    special = list(encoded["special_tokens_mask"])
    trailing = trailing_special_tokens(tokenizer)
    if trailing:
        ids = ids[:-trailing]
    room = max(1, target.max_length - max_new_tokens)
    if len(ids) <= room:
        return ids, False
    lead = 0
    while lead < min(len(ids), room - 1) and special[lead]:
        lead += 1
    return ids[:lead] + ids[len(ids) - (room - lead) :], True


def instance_seed(seed: int, probe_set: str, instance_id: str) -> int:
    """One seed per instance, the same for all its variants and stable across runs (seq2seq
    translations draw from it; audit/metrics/translation.py)."""
    return zlib.crc32(f"{seed}/{probe_set}/{instance_id}".encode())


def row_seed(seed: int, probe_set: str, instance_id: str, sample: int) -> int:
    """The seed of one continuation: sample k of every variant of an instance shares it."""
    return zlib.crc32(f"{seed}/{probe_set}/{instance_id}/{sample}".encode())


@torch.no_grad()
def generate_rows(
    target: Target, prompts: Sequence[Sequence[int]], seeds: Sequence[int], settings: GenerationSettings
) -> list[Continuation]:
    """One continuation per prompt, generated together (left-padded).

    Sampling draws row by row from the row's own seeded stream (``QuantileSampler``), so a row's
    continuation depends on its prompt and seed only, never on the rows batched with it; greedy
    decoding ignores the seeds.
    """
    from transformers import GenerationConfig, LogitsProcessorList

    tokenizer = target.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):  # left padding: every row continues at the same column
        ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    eos = _eos_ids(target)
    config = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=False,  # sampling, when asked for, is done by QuantileSampler; argmax then picks its token
        num_beams=1,
        pad_token_id=pad,
        eos_token_id=eos or None,
    )
    processors = LogitsProcessorList()
    if settings.sample:
        uniforms = torch.stack(
            [torch.rand(settings.max_new_tokens, generator=torch.Generator().manual_seed(s)) for s in seeds]
        )
        processors.append(
            QuantileSampler(uniforms.to(target.device), width, settings.temperature, settings.top_p)
        )
    output = target.model.generate(
        input_ids=ids.to(target.device),
        attention_mask=mask.to(target.device),
        generation_config=config,
        logits_processor=processors,
    )
    results = []
    for row in output[:, width:].tolist():
        stop = next((i for i, token in enumerate(row) if token in eos), None)
        tokens = row if stop is None else row[:stop]
        text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
        results.append(Continuation(text, len(tokens), stop is not None))
    return results


def generate(
    target: Target, prompt: str, settings: GenerationSettings, seed: int
) -> tuple[list[Continuation], bool]:
    """``settings.n_samples`` continuations of one prompt (sample k seeded by ``seed`` and k), and
    whether the prompt had to be cut."""
    ids, cut = prompt_ids(target, prompt, settings.max_new_tokens)
    seeds = [zlib.crc32(f"{seed}/{k}".encode()) for k in range(settings.n_samples)]
    return generate_rows(target, [ids] * settings.n_samples, seeds, settings), cut


class QuantileSampler:
    """Nucleus sampling at a temperature with one uniform number per row and step, drawn in
    advance from the row's own seed: the token is where the uniform falls in the nucleus's
    cumulative probabilities, most probable token first. Rows that share a seed (sample k of the
    variants of one instance) share their uniforms, so two variants whose next-token distributions
    agree pick the same token (common random numbers: their continuations differ only where the
    model's distributions do). Returns scores that are -inf except at the chosen token, for
    ``generate``'s greedy step to pick."""

    def __init__(self, uniforms: torch.Tensor, start: int, temperature: float, top_p: float) -> None:
        self.uniforms = uniforms  # (rows, max_new_tokens)
        self.start = start
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.start
        u = self.uniforms[:, min(step, self.uniforms.shape[1] - 1)]
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        ordered, order = probs.sort(dim=-1, descending=True)
        before = ordered.cumsum(dim=-1) - ordered
        ordered = ordered * (before < self.top_p)  # the nucleus: the most probable token always stays
        cumulative = ordered.cumsum(dim=-1)
        threshold = (u * cumulative[:, -1])[:, None]
        pick = torch.searchsorted(cumulative, threshold, right=True).clamp(max=ordered.shape[-1] - 1)
        chosen = order.gather(1, pick)
        out = torch.full_like(scores, -math.inf)
        return out.scatter(1, chosen, 0.0)


def _eos_ids(target: Target) -> list[int]:
    """The tokens that end a text: the model's generation config's, else the tokenizer's."""
    configured = getattr(getattr(target.model, "generation_config", None), "eos_token_id", None)
    if configured is None:
        configured = target.tokenizer.eos_token_id
    values = configured if isinstance(configured, list) else [configured]
    return [int(v) for v in values if v is not None]


@torch.no_grad()
def score_texts(scorer: Target, head: ScoreHead, texts: Sequence[str], batch_tokens: int) -> np.ndarray:
    """(texts, outputs) scores of the scorer's head; an empty text scores NaN."""
    scores = np.full((len(texts), len(head.outputs)), math.nan)
    present = [i for i, text in enumerate(texts) if text.strip()]
    if not present:
        return scores
    encoded = encode_texts(scorer.tokenizer, [texts[i] for i in present], scorer.max_length)
    pad = scorer.tokenizer.pad_token_id

    def step(batch: list[int]) -> np.ndarray:
        ids, mask = collate([encoded[i] for i in batch], pad, scorer.device)
        return head.forward(ids, mask).detach().cpu().double().numpy()

    for batch in token_budget_batches([e.n_tokens for e in encoded], batch_tokens):
        for done, values in run_with_backoff(batch, step):
            scores[[present[i] for i in done]] = values
    return scores
