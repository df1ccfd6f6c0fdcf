"""Token attributions of chosen variants of one probe set's inputs (``ProbeInputs``; Captum on the
set's score head); a text scored as several windows is attributed window by window and combined
(audit/windows.py). Used by the explain stage (top instances) and by the long-document kind.

Not exported by ``audit.attribution``: it reads the targets and the run's settings, which the
attribution methods below it do not."""

from __future__ import annotations

from functools import partial

import pandas as pd
from rich.progress import Progress

from audit.attribution.driver import attribution_rows
from audit.config import AuditConfig
from audit.probe_inputs import ProbeInputs, SetScores
from audit.targets import Target
from audit.windows import combine_token_attributions


def token_attributions(
    item: ProbeInputs,
    scores: SetScores,
    selected: list[int],
    output_names: list[str],
    target: Target,
    config: AuditConfig,
    bars: Progress,
) -> pd.DataFrame:
    """Token attributions of these variants (``output_names[i]`` explained for ``selected[i]``)."""
    windows, owners = item.windows(selected)
    if len(windows) == len(selected):  # one input per text: the rows are the text's
        window_ids = [item.example_ids[i] for i in selected]
    else:  # windows are named by their position, then combined into their texts
        window_ids = [str(k) for k in range(len(windows))]
    position = {variant: k for k, variant in enumerate(selected)}
    variants = item.probe_set.variants
    task = bars.add_task(
        f"attribute {item.probe_set.name}", total=len(windows) * len(config.attribution_methods)
    )
    tokens = attribution_rows(
        forward=item.head.forward,
        embedding_layer=target.embedding_layer(),
        examples=windows,
        example_ids=window_ids,
        texts=[variants[i].text for i in owners],
        focus=[[(s.start, s.end) for s in variants[i].focus] for i in owners],
        outputs=[output_names[position[i]] for i in owners],
        output_names=item.head.outputs,
        methods=config.attribution_methods,
        tokenizer=target.tokenizer,
        device=target.device,
        n_steps=config.ig_steps,
        max_steps=config.ig_max_steps,
        tolerance=config.ig_tolerance,
        rule=config.ig_rule,
        batch_tokens=config.batch_tokens,
        on_done=partial(bars.advance, task),
        variant_indices=owners,
    )
    if len(windows) == len(selected):
        return tokens
    return combine_token_attributions(
        tokens,
        windows,
        [position[i] for i in owners],
        [item.example_ids[i] for i in selected],
        config.aggregate,
        [scores.window_scores[i] for i in selected],
        [item.head.outputs.index(name) for name in output_names],
    )
