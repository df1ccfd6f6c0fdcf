"""Token attributions (Captum) behind one Attributor interface and a registry of methods.

    attribute_examples(forward, embedding_layer, examples, output_index, method, ...) -> [TokenAttribution]
    attribution_rows(...) -> the ``attributions`` table for several methods at once

    sentence_segments(text, key_spans, max_segments) / segment_attribution_rows(...) -> the
    ``segment_attributions`` table for long inputs (segment ablation, forward passes only)

Methods: "integrated_gradients" (baseline: pad tokens, special tokens kept; convergence delta
recorded) and "gradient_x_input" (one backward pass). Add one with ``@register_method(name)``.
"""

from audit.attribution import methods as _methods  # noqa: F401  (registers the built-in methods)
from audit.attribution.base import (
    AttributionSettings,
    Attributor,
    BatchAttribution,
    TokenAttribution,
    get_method,
    list_methods,
    register_method,
)
from audit.attribution.batches import EncodedExample, TokenizedText, focus_token_mask
from audit.attribution.driver import (
    attribute_examples,
    attribution_frame,
    attribution_rows,
    baseline_token_of,
)
from audit.attribution.segments import segment_attribution_rows, sentence_segments

__all__ = [
    "AttributionSettings",
    "Attributor",
    "BatchAttribution",
    "EncodedExample",
    "TokenAttribution",
    "TokenizedText",
    "attribute_examples",
    "attribution_frame",
    "attribution_rows",
    "baseline_token_of",
    "focus_token_mask",
    "get_method",
    "list_methods",
    "register_method",
    "segment_attribution_rows",
    "sentence_segments",
]
