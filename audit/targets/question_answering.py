"""Extractive question answering on BBQ-style multiple-choice sets: which answer span does the model
point at?

A multiple-choice instance (probes/formats/bbq.py) has three variants, one per answer (the stereotyped
group, the other group, "unknown"), sharing one input: the question, the tokenizer's pair separator
and the passage (the context, then a sentence listing the answers, so every answer is a span).
``prepare`` writes that separator into the texts before anything is encoded, spaced when the text
then encodes exactly as the pair ``(q, c)`` does (BERT: ``q [SEP] c``), else unspaced (RoBERTa's
byte-level BPE: ``q</s></s>c``), so the examples table holds what the model read and offsets stay
offsets into one stored text. Where the model uses segment ids
(BERT), ``forward`` derives ``token_type_ids`` from the first separator: 1 after it, 0 up to it.

Score of a variant: its answer span's probability under the model's start and end logits,
``P(start = first span token) * P(end = last span token)``, each a softmax over every token of the
input (padding excluded), as SQuAD-style models are trained; ``prob:answer`` and its log
``logprob:answer``. The findings renormalise over the instance's three candidates (a softmax of the
log-probabilities restricted to the candidates, audit/metrics/multiple_choice.py): the model
chooses among the answers it is offered, whatever span it would pick on its own. Attributions
explain ``prob:answer``.

Texts must fit the model's maximum length (a span of a sliding window would be another token).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from audit.attribution.batches import focus_token_mask
from audit.batching import encode_texts
from audit.targets.base import ScoreHead, Target
from probes.schema import Instance, ProbeSet, Span

PROB_ANSWER = "prob:answer"
LOGPROB_ANSWER = "logprob:answer"


def pair_separator(tokenizer: Any) -> tuple[str, list[int], bool]:
    """What the tokenizer puts between the two texts of a pair: its special tokens as text
    (``[SEP]``, ``</s></s>``; empty when none), their ids, and whether the pair gets segment ids
    (token_type_ids 0 then 1)."""
    encoding = tokenizer("question", "context", add_special_tokens=True)
    ids = list(encoding["input_ids"])
    sequence = encoding.sequence_ids()
    last_question = max(i for i, s in enumerate(sequence) if s == 0)
    first_context = min(i for i, s in enumerate(sequence) if s == 1)
    between = ids[last_question + 1 : first_context]
    segments = "token_type_ids" in encoding and any(encoding["token_type_ids"])
    return "".join(tokenizer.convert_ids_to_tokens(between)), between, bool(segments)


def choose_separator(tokenizer: Any, separator: str, pairs: list[tuple[str, str]]) -> tuple[str, bool]:
    """The text to write between question and passage: the separator with a space either side when
    the texts then encode exactly as the pairs do (WordPiece), else without (byte-level BPE reads a
    space as a token of its own); and whether the encodings match."""
    candidates = [f" {separator} ", separator] if separator else [" "]
    for candidate in candidates:
        if all(
            tokenizer(q + candidate + p, verbose=False)["input_ids"]
            == tokenizer(q, p, verbose=False)["input_ids"]
            for q, p in pairs
        ):
            return candidate, True
    return candidates[-1], False


class QuestionAnsweringTarget(Target):
    task = "question-answering"
    windows_supported = False  # the span is found once per variant, in its one input

    def __init__(self, model: nn.Module, tokenizer: Any, device: torch.device, max_length: int) -> None:
        super().__init__(model, tokenizer, device, max_length)
        self.separator_tokens, self.separator_ids, segments = pair_separator(tokenizer)
        type_vocab = int(getattr(getattr(model, "config", None), "type_vocab_size", 0) or 0)
        self.uses_segments = segments and type_vocab >= 2 and bool(self.separator_ids)
        self.separator: str | None = None
        """The text between question and passage, chosen on the first multiple-choice set prepared."""
        self.pair_encoding_matches = True

    def prepare(self, probe_set: ProbeSet) -> ProbeSet:
        """Multiple-choice texts as this model reads them: question, its pair separator, passage."""
        if probe_set.kind != "multiple_choice":
            return probe_set
        if self.separator is None:
            samples = [
                (i.choice.question, i.choice.passage) for i in probe_set.instances[:8] if i.choice is not None
            ]
            self.separator, self.pair_encoding_matches = choose_separator(
                self.tokenizer, self.separator_tokens, samples
            )
        return probe_set.model_copy(
            update={"instances": tuple(self._with_separator(i) for i in probe_set.instances)}
        )

    def _with_separator(self, instance: Instance) -> Instance:
        choice = instance.choice
        assert choice is not None and self.separator is not None
        text = choice.question + self.separator + choice.passage
        variants = []
        for variant in instance.variants:
            shift = len(text) - len(variant.text)  # the passage (and every answer span) moves this far
            focus = tuple(Span(start=s.start + shift, end=s.end + shift) for s in variant.focus)
            variants.append(variant.model_copy(update={"text": text, "focus": focus}))
        return instance.model_copy(update={"variants": tuple(variants)})

    def check_probe_set(self, probe_set: ProbeSet) -> list[str]:
        if probe_set.kind != "multiple_choice":
            return [
                f"probe set {probe_set.name!r} is a {probe_set.kind} set; question-answering audits use "
                "multiple-choice (BBQ-style) sets, e.g. the built-in bbq-mini or a BBQ .jsonl file"
            ]
        problems = []
        texts = [i.variants[0].text for i in probe_set.instances]
        lengths = [
            len(ids) for ids in self.tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]
        ]
        for instance, n_tokens in zip(probe_set.instances, lengths, strict=True):
            if n_tokens > self.max_length:
                problems.append(
                    f"probe set {probe_set.name!r}, instance {instance.instance_id}: {n_tokens} tokens, more than "
                    f"the model's {self.max_length}; the answers are spans of one input, so shorten its context"
                )
            if len(problems) >= 10:
                problems.append("(more problems of the same kind left out)")
                break
        return problems

    def head(self, probe_set: ProbeSet) -> ScoreHead:
        variants = probe_set.variants
        encoded = encode_texts(self.tokenizer, [v.text for v in variants], self.max_length)
        starts = torch.zeros(len(variants), dtype=torch.long)
        ends = torch.zeros(len(variants), dtype=torch.long)
        for row, (variant, example) in enumerate(zip(variants, encoded, strict=True)):
            mask = focus_token_mask(example, [(s.start, s.end) for s in variant.focus])
            if any(mask):
                starts[row] = mask.index(True)
                ends[row] = len(mask) - 1 - mask[::-1].index(True)
        starts = starts.to(self.device)
        ends = ends.to(self.device)
        separator = self.separator_ids[0] if self.separator_ids else -1
        uses_segments = self.uses_segments

        def forward(
            input_ids: torch.Tensor, attention_mask: torch.Tensor, variant_index: torch.Tensor | None = None
        ) -> torch.Tensor:
            if variant_index is None:
                raise ValueError("question-answering scores need each row's variant_index")
            extra: dict[str, torch.Tensor] = {}
            if uses_segments:
                is_separator = torch.eq(input_ids, separator).long()
                after_first = (torch.cumsum(is_separator, dim=1) - is_separator) > 0
                extra["token_type_ids"] = after_first.long() * attention_mask.long()
            output = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
            padding = attention_mask == 0
            start = torch.log_softmax(output.start_logits.float().masked_fill(padding, float("-inf")), dim=-1)
            end = torch.log_softmax(output.end_logits.float().masked_fill(padding, float("-inf")), dim=-1)
            log_probability = start.gather(1, starts[variant_index][:, None]) + end.gather(
                1, ends[variant_index][:, None]
            )
            return torch.cat([log_probability.exp(), log_probability], dim=1)

        def predict_labels(scores: np.ndarray) -> list[str | None]:
            return [None] * len(scores)  # the chosen answer is per instance: audit/metrics/multiple_choice.py

        def attribution_output(expected: list[str | None], scores: np.ndarray) -> str:
            return PROB_ANSWER

        return ScoreHead(
            [PROB_ANSWER, LOGPROB_ANSWER],
            forward,
            predict_labels,
            attribution_output,
            compared_outputs=[PROB_ANSWER],
            notes={
                "pair_separator": self.separator,
                "token_type_ids": uses_segments,
                "pair_encoding_matches": self.pair_encoding_matches,
            },
        )
