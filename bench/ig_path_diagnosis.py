"""Integrated gradients on a causal LM: the integrand along the path, measured through the tool's
own score head (audit.targets.causal_lm text_head), with and without a start token.

    python bench/ig_path_diagnosis.py [--model smollm2] [--points 2000] [--text "..."]

For each setting it prints f(x) - f(baseline), the trapezoid integral of dF/dalpha over ``points``
points (the reference), Captum's sums at 32/64/128/256 steps, and where |dF/dalpha| peaks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients

from audit.attribution.methods import integrated_gradients_baseline
from audit.models import load_model
from audit.targets import build_target
from probes.schema import Instance, ProbeSet, Variant


def probe_set(text: str) -> ProbeSet:
    variants = tuple(
        Variant(instance_id="i", variant=v, attribute="gender", text=t)
        for v, t in (("a", text), ("b", text + " "))
    )
    return ProbeSet(
        name="diag", instances=(Instance(instance_id="i", attribute="gender", variants=variants),)
    )


def integrand(forward, layer, ids, base, mask, vi, alphas, chunk=50):
    """F(alpha) and dF/dalpha = grad_e F . (e_x - e_b) at each alpha (embedding-path interpolation)."""
    with torch.no_grad():
        ex, eb = layer(ids), layer(base)
    values, slopes = [], []
    for start in range(0, len(alphas), chunk):
        a = torch.tensor(alphas[start : start + chunk], dtype=ex.dtype)[:, None, None]
        path = (eb + a * (ex - eb)).detach().requires_grad_(True)
        handle = layer.register_forward_hook(lambda m, i, o, p=path: p)
        try:
            n = len(a)
            out = forward(ids.expand(n, -1), mask.expand(n, -1), vi.expand(n))[:, 0]
        finally:
            handle.remove()
        (grad,) = torch.autograd.grad(out.sum(), path)
        values.append(out.detach())
        slopes.append((grad * (ex - eb)).sum(dim=(1, 2)).detach())
    return torch.cat(values).double().numpy(), torch.cat(slopes).double().numpy()


def run(model_name: str, text: str, points: int, start_token: int | None) -> None:
    loaded = load_model(model_name)
    target = build_target(loaded, torch.device("cpu"))
    tok = loaded.tokenizer
    # the head encodes the variant texts itself; to test a start token, prepend it to the text's ids
    head = target.head(probe_set(text))
    ids = tok(text, add_special_tokens=True)["input_ids"]
    special = [0] * len(ids)
    if start_token is not None:
        ids = [start_token] + ids
        special = [1] + special
        # the head's per-variant targets are its own encoding: give it the prepended ids too
        original = target.tokenizer

        class Prepending:
            def __call__(self, texts, **kw):
                out = original(texts, **kw)
                out["input_ids"] = [[start_token] + x for x in out["input_ids"]]
                return out

            def __getattr__(self, name):
                return getattr(original, name)

        target.tokenizer = Prepending()
        head = target.head(probe_set(text))
        target.tokenizer = original
    ids_t = torch.tensor([ids])
    mask = torch.ones_like(ids_t)
    spec = torch.tensor([special]).bool()
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    base = integrated_gradients_baseline(ids_t, mask, spec, pad)
    vi = torch.tensor([0])
    layer = target.embedding_layer()
    fwd = head.forward
    with torch.no_grad():
        fx = float(fwd(ids_t, mask, vi)[0, 0])
        fb = float(fwd(base, mask, vi)[0, 0])
    label = "none" if start_token is None else tok.convert_ids_to_tokens(start_token)
    print(f"\n== start token {label}: tokens {tok.convert_ids_to_tokens(ids)}")
    print(f"f(x) = {fx:.3f}  f(baseline) = {fb:.3f}  f(x)-f(b) = {fx - fb:.3f}")
    t0 = time.time()
    alphas = np.linspace(0.0, 1.0, points)
    values, slopes = integrand(fwd, layer, ids_t, base, mask, vi, alphas)
    trap = float(np.trapezoid(slopes, alphas))
    print(
        f"{points}-point trapezoid of dF/dalpha = {trap:.3f} (rel. err {abs(trap - (fx - fb)) / abs(fx - fb):.2%}); "
        f"F(0)={values[0]:.3f} F(1)={values[-1]:.3f}; {time.time() - t0:.0f}s"
    )
    big = np.argsort(-np.abs(slopes))[:5]
    print("largest |dF/dalpha|:", ", ".join(f"a={alphas[k]:.4f}: {slopes[k]:.1f}" for k in sorted(big)))
    jumps = np.abs(np.diff(values))
    k = int(jumps.argmax())
    print(
        f"largest step of F between neighbours: {jumps[k]:.3f} at a={alphas[k]:.4f}; median {np.median(jumps):.2e}"
    )
    fine_ig = np.cumsum(np.r_[0, (slopes[1:] + slopes[:-1]) / 2 * np.diff(alphas)])
    print(
        "F(a)-F(0) vs integral of slope at a=0.1,0.25,0.5,0.75,1:",
        [
            (round(float(values[i] - values[0]), 2), round(float(fine_ig[i]), 2))
            for i in (points // 10, points // 4, points // 2, 3 * points // 4, points - 1)
        ],
    )
    np.savez(f"/tmp/ig_path_{label.strip('<>|')}.npz", alphas=alphas, values=values, slopes=slopes)
    method = LayerIntegratedGradients(fwd, layer)
    for steps in (32, 64, 128, 256):
        for rule in ("gausslegendre", "riemann_trapezoid"):
            attr, delta = method.attribute(
                ids_t,
                base,
                target=0,
                additional_forward_args=(mask, vi),
                n_steps=steps,
                method=rule,
                internal_batch_size=steps,
                return_convergence_delta=True,
            )
            total = float(attr.sum())
            print(
                f"  captum {rule:18s} {steps:4d} steps: sum {total:8.3f}  rel. err {abs(total - (fx - fb)) / abs(fx - fb):.2%}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--text", default="The secretary said that she would be late today.")
    parser.add_argument("--start", default="none,eos", help="comma list: none, bos, eos")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tok = load_model(args.model).tokenizer
    for choice in args.start.split(","):
        token = None if choice == "none" else getattr(tok, f"{choice}_token_id")
        run(args.model, args.text, args.points, token)


if __name__ == "__main__":
    main()
