"""Attribute many examples in length-sorted batches, and turn the results into ``attributions`` rows.

Offsets in the table: ``char_start``/``char_end`` index the example's text ([start, end)); special
tokens ([CLS], [SEP], <s>, ...) have null offsets (no characters), never the tokenizer's (0, 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from audit.attribution.base import AttributionSettings, ScoreFunction, TokenAttribution, get_method
from audit.attribution.batches import (
    EncodedExample,
    check_example,
    focus_token_mask,
)
from audit.attribution.integrated import IntegrationSettings
from audit.batching import pad_right, run_in_length_batches
from audit.errors import UserError
from audit.tables import TABLES


def _device_of(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def attribute_examples(
    forward: ScoreFunction,
    embedding_layer: nn.Module,
    examples: Sequence[EncodedExample],
    output_index: Sequence[int],
    method: str,
    *,
    baseline_token_id: int,
    n_steps: int = 32,
    max_steps: int = 1024,
    tolerance: float = 0.05,
    rule: str = "trapezoid",
    internal_batch_size: int = 64,
    batch_tokens: int = 4096,
    device: torch.device | None = None,
    on_done: Callable[[int], None] | None = None,
    variant_indices: Sequence[int] | None = None,
) -> list[TokenAttribution]:
    """Explain column ``output_index[i]`` of ``forward`` for every example, in the examples' order.

    Examples of similar length are attributed together: batches hold at most ``batch_tokens``
    padded tokens and ``internal_batch_size`` examples; integrated gradients runs at most
    ``internal_batch_size`` rows (path points) per pass, from ``n_steps`` steps per example up to
    ``max_steps`` until its completeness error is within ``tolerance`` (audit.attribution.integrated).
    A batch that runs out of memory is split in half. ``on_done(n)`` is called after each batch with its number of examples.
    ``variant_indices[i]``, when given, is passed to ``forward`` as example i's variant index.
    """
    if len(output_index) != len(examples):
        raise ValueError(f"{len(examples)} examples but {len(output_index)} output indices")
    for position, example in enumerate(examples):
        check_example(example, position)
    settings = AttributionSettings(
        IntegrationSettings(
            n_steps=n_steps,
            max_steps=max_steps,
            tolerance=tolerance,
            rule=rule,
            internal_batch_size=internal_batch_size,
        ),
        baseline_token_id=baseline_token_id,
    )
    attributor = get_method(method)(forward, embedding_layer, settings)
    device = device if device is not None else _device_of(embedding_layer)

    def run(batch: list[int]) -> list[TokenAttribution]:
        chosen = [examples[i] for i in batch]
        ids = pad_right([e.input_ids for e in chosen], baseline_token_id, device)
        mask = pad_right([[1] * len(e.input_ids) for e in chosen], 0, device)
        special = pad_right([[int(s) for s in e.special] for e in chosen], 1, device).bool()
        targets = torch.tensor([output_index[i] for i in batch], dtype=torch.long, device=device)
        variants = (
            None
            if variant_indices is None
            else torch.tensor([variant_indices[i] for i in batch], dtype=torch.long, device=device)
        )
        result = attributor.attribute(ids, mask, special, targets, variants)
        out = []
        for row, example in enumerate(chosen):
            n = len(example.input_ids)
            out.append(
                TokenAttribution(
                    method=method,
                    output_index=int(targets[row]),
                    input_ids=np.asarray(example.input_ids, dtype=np.int64),
                    attributions=result.attributions[row, :n].cpu().numpy().astype(np.float64),
                    score=float(result.scores[row]),
                    baseline_score=None
                    if result.baseline_scores is None
                    else float(result.baseline_scores[row]),
                    convergence_delta=None
                    if result.convergence_delta is None
                    else float(result.convergence_delta[row]),
                    n_steps=None if result.n_steps is None else int(result.n_steps[row]),
                    completeness_error=None
                    if result.completeness_error is None
                    else float(result.completeness_error[row]),
                    converged=None if result.converged is None else bool(result.converged[row]),
                )
            )
        return out

    lengths = [len(e.input_ids) for e in examples]
    return run_in_length_batches(
        lengths, batch_tokens, run, max_batch_size=internal_batch_size, on_done=on_done
    )


def attribution_frame(
    results: Sequence[TokenAttribution],
    examples: Sequence[EncodedExample],
    *,
    example_ids: Sequence[str],
    outputs: Sequence[str],
    focus: Sequence[Sequence[tuple[int, int]]],
    tokenizer: Any,
) -> pd.DataFrame:
    """Rows of the ``attributions`` table: one per token of each attributed example.

    ``outputs[i]`` names the explained output; ``focus[i]`` holds the example's focus character
    spans (a token is focus when its span overlaps one).
    """
    n = len(results)
    if not (len(examples) == len(example_ids) == len(outputs) == len(focus) == n):
        raise ValueError(
            f"results, examples, example_ids, outputs and focus must have one entry per example "
            f"(got {n}, {len(examples)}, {len(example_ids)}, {len(outputs)}, {len(focus)})"
        )
    columns: dict[str, list[Any]] = {name: [] for name in TABLES["attributions"]}
    for result, example, example_id, output, spans in zip(
        results, examples, example_ids, outputs, focus, strict=True
    ):
        if len(result.attributions) != len(example.input_ids):
            raise ValueError(
                f"example {example_id!r}: {len(result.attributions)} attributions for {len(example.input_ids)} tokens"
            )
        tokens = tokenizer.convert_ids_to_tokens([int(i) for i in example.input_ids])
        is_focus = focus_token_mask(example, spans)
        for index, token in enumerate(tokens):
            special = bool(example.special[index])
            start, end = example.offsets[index]
            columns["example_id"].append(example_id)
            columns["method"].append(result.method)
            columns["output"].append(output)
            columns["token_index"].append(index)
            columns["token"].append(str(token))
            columns["char_start"].append(pd.NA if special else int(start))
            columns["char_end"].append(pd.NA if special else int(end))
            columns["attribution"].append(float(result.attributions[index]))
            columns["is_focus"].append(is_focus[index])
            columns["convergence_delta"].append(
                pd.NA if result.convergence_delta is None else result.convergence_delta
            )
            columns["n_steps"].append(pd.NA if result.n_steps is None else result.n_steps)
            columns["completeness_error"].append(
                pd.NA if result.completeness_error is None else result.completeness_error
            )
            columns["converged"].append(pd.NA if result.converged is None else result.converged)
    return pd.DataFrame(
        {
            "example_id": pd.Series(columns["example_id"], dtype="string"),
            "method": pd.Series(columns["method"], dtype="string"),
            "output": pd.Series(columns["output"], dtype="string"),
            "token_index": pd.Series(columns["token_index"], dtype="int64"),
            "token": pd.Series(columns["token"], dtype="string"),
            "char_start": pd.Series(columns["char_start"], dtype="Int64"),
            "char_end": pd.Series(columns["char_end"], dtype="Int64"),
            "attribution": pd.Series(columns["attribution"], dtype="float64"),
            "is_focus": pd.Series(columns["is_focus"], dtype="bool"),
            "convergence_delta": pd.Series(columns["convergence_delta"], dtype="Float64"),
            "n_steps": pd.Series(columns["n_steps"], dtype="Int64"),
            "completeness_error": pd.Series(columns["completeness_error"], dtype="Float64"),
            "converged": pd.Series(columns["converged"], dtype="boolean"),
        }
    )


def baseline_token_of(tokenizer: Any) -> int:
    """The pad token id (integrated gradients' baseline token), else the end-of-sequence token."""
    for name in ("pad_token_id", "eos_token_id"):
        token_id = getattr(tokenizer, name, None)
        if isinstance(token_id, int):
            return token_id
    raise UserError(
        "the tokenizer has neither a pad nor an end-of-sequence token to build the attribution baseline"
    )


def attribution_rows(
    *,
    forward: ScoreFunction,
    embedding_layer: nn.Module,
    examples: Sequence[EncodedExample],
    example_ids: Sequence[str],
    texts: Sequence[str],
    focus: Sequence[Sequence[tuple[int, int]]],
    outputs: Sequence[str],
    output_names: Sequence[str],
    methods: Sequence[str],
    tokenizer: Any,
    device: torch.device | None = None,
    n_steps: int = 32,
    max_steps: int = 1024,
    tolerance: float = 0.05,
    rule: str = "trapezoid",
    internal_batch_size: int = 64,
    batch_tokens: int = 4096,
    on_done: Callable[[int], None] | None = None,
    variant_indices: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Attribute every example with every method: the ``attributions`` table.

    ``outputs[i]`` is the name of the output explained for example i, one of ``output_names``
    (the score head's outputs, in column order). ``texts`` are checked against the offsets.
    """
    for method in methods:
        get_method(method)
    if not (len(examples) == len(example_ids) == len(texts) == len(focus) == len(outputs)):
        raise ValueError(
            f"examples, example_ids, texts, focus and outputs must have one entry per example "
            f"(got {len(examples)}, {len(example_ids)}, {len(texts)}, {len(focus)}, {len(outputs)})"
        )
    names = list(output_names)
    unknown = sorted({o for o in outputs if o not in names})
    if unknown:
        raise ValueError(f"output(s) {unknown} are not among the score head's outputs {names}")
    for example, example_id, text in zip(examples, example_ids, texts, strict=True):
        if any(end > len(text) for start, end in example.offsets):
            raise ValueError(f"example {example_id!r}: token offsets run past the end of its text")
    frames = []
    for method in methods:
        results = attribute_examples(
            forward,
            embedding_layer,
            examples,
            [names.index(o) for o in outputs],
            method,
            baseline_token_id=baseline_token_of(tokenizer),
            n_steps=n_steps,
            max_steps=max_steps,
            tolerance=tolerance,
            rule=rule,
            internal_batch_size=internal_batch_size,
            batch_tokens=batch_tokens,
            device=device,
            on_done=on_done,
            variant_indices=variant_indices,
        )
        frames.append(
            attribution_frame(
                results, examples, example_ids=example_ids, outputs=outputs, focus=focus, tokenizer=tokenizer
            )
        )
    if not frames:
        return attribution_frame([], [], example_ids=[], outputs=[], focus=[], tokenizer=tokenizer)
    return pd.concat(frames, ignore_index=True)
