"""generate (when asked): a causal LM's continuations of the counterfactual variants (--generate,
scored by --generation-scorer into gen:* outputs compared like the others: audit/generation.py), or
a seq2seq model's translations of every variant (audit/metrics/translation.py).

``plan_outputs`` runs before the run folder exists: it refuses models that do not generate and
loads the scorer."""

from __future__ import annotations

from functools import partial

import pandas as pd
from rich.console import Console

from audit.config import AuditConfig
from audit.generation import generate_all, plan_generation
from audit.metrics.translation import plan_translations, translate_all
from audit.stages.progress import Timer, progress
from audit.stages.state import Encoding, Generated, OutputPlans, Prepared, Scored


def plan_outputs(config: AuditConfig, prepared: Prepared, timer: Timer) -> OutputPlans:
    with timer.stage("load"):  # --generate: refused for models that do not generate; the scorer loads here
        # seq2seq models translate every variant instead (audit/metrics/translation.py)
        translation = plan_translations(config, prepared.target)
        generation = (
            plan_generation(config, prepared.target, prepared.probe_sets, prepared.device)
            if translation is None
            else None
        )
    return OutputPlans(generation, translation)


def generate(
    plans: OutputPlans,
    encoding: Encoding,
    scored: Scored,
    prepared: Prepared,
    config: AuditConfig,
    console: Console,
    timer: Timer,
) -> Generated:
    target = prepared.target
    if plans.generation is not None:  # continuations of every variant of the counterfactual sets
        plan = plans.generation
        chosen = [item for item in encoding.sets if item.probe_set.kind == "counterfactual"]
        n_rows = sum(len(item.example_ids) for item in chosen) * plan.settings.n_samples
        with progress(console) as bars, timer.stage("generate"):
            task = bars.add_task(f"generate x{plan.settings.n_samples}", total=n_rows)
            made = generate_all(
                plan,
                [(item.probe_set, item.example_ids) for item in chosen],
                target,
                batch_tokens=config.batch_tokens,
                on_done=partial(bars.advance, task),
            )
        predictions = pd.concat([scored.predictions, made.predictions], ignore_index=True)
        return Generated(predictions, generation=made)
    if plans.translation is not None:  # seq2seq: the model's own translations and the forms they use
        with progress(console) as bars, timer.stage("generate"):
            translated = translate_all(
                encoding.sets,
                target,  # type: ignore[arg-type]  # plan_translations made a plan for Seq2SeqTarget only
                plans.translation,
                config.batch_tokens,
                lambda name, total: partial(bars.advance, bars.add_task(name, total=total)),
            )
        return Generated(scored.predictions, translation=translated)
    return Generated(scored.predictions)
