"""Peak memory and wall time of attention on long inputs: plain SDPA, naive maps, our chunked statistics.

    .venv/bin/python bench/bench_long_attention.py [--lengths 2048 8192 32768] [--layers 2]
        [--device cpu|cuda] [--dtype float32|bfloat16] [--modes plain naive chunked] [--append FILE]

The model is the Qwen2.5-0.5B decoder shape (hidden 896, 14 query heads sharing 2 key/value heads,
head_dim 64, MLP 4864, rotary theta 1e6, vocabulary 151936, max positions 32768), random init,
eval mode, without its language-model head (``Qwen2Model``: 32k positions x 151936 logits would
be 18.5 GiB of float32 that no attention method needs). One unpadded sequence per run, so
transformers passes no mask and SDPA runs causal. Three ways to run it:

- ``plain``: the model's forward with ``attn_implementation="sdpa"``, no statistics (the floor);
- ``naive``: ``attn_implementation="eager"`` with ``output_attentions=True``: every layer's
  (heads x n x n) map is kept, the usual way to read attention;
- ``chunked``: ``audit.attention.attention_statistics``: the five statistics per layer and head,
  computed in query chunks inside the forward.

``--layers N`` builds only the first N of the 24 layers (default 2 on CPU: all 24 at 32k tokens
take far too long on a small CPU). Per-layer memory is what matters: the table also gives the
24-layer estimate, peak + (24 - N) x (one layer's weights, plus, for ``naive``, one layer's kept
maps), and time x 24 / N. Each configuration runs in its own process: peak = that process's max
RSS during the forward pass (``resource.getrusage``, after resetting the
high-water mark with /proc/self/clear_refs, so model building does not count), and with ``--device cuda`` also ``torch.cuda.max_memory_allocated``.
A ``naive`` run whose kept maps plus one layer's transient scores and probabilities would exceed
70% of the memory available when it starts is not run; its estimate is recorded instead.

With ``--append FILE`` the table goes to FILE under "## Long inputs: attention memory" (with the
machine facts), as well as to stdout. The GPU proof is ``--device cuda --layers 24``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

GIB = 1 << 30
HEADS = 14
FULL_LAYERS = 24
QWEN25_05B: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_attention_heads": HEADS,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": 32768,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "use_sliding_window": False,
}
MODES = ("plain", "naive", "chunked")


def map_bytes(length: int, layers: int, dtype_bytes: int) -> int:
    """Bytes of the attention maps ``output_attentions`` keeps: layers x heads x n x n."""
    return layers * HEADS * length * length * dtype_bytes


def naive_estimate(length: int, layers: int, dtype_bytes: int) -> int:
    """Kept maps plus one layer's transient scores and probabilities (eager makes both)."""
    return map_bytes(length, layers, dtype_bytes) + 2 * map_bytes(length, 1, dtype_bytes)


def available_bytes(device: str) -> int:
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read MemAvailable from /proc/meminfo")


def total_ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def reset_peak_rss() -> bool:
    """Start the process's peak RSS afresh (Linux: clear_refs 5), so the peak is the forward's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def current_rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def one(
    mode: str, length: int, layers: int, device_name: str, dtype_name: str, threads: int
) -> dict[str, Any]:
    """Build the model, run one forward pass the chosen way, report memory and time (in this process)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from transformers import Qwen2Config, Qwen2Model

    from audit.attention import STATISTICS, attention_statistics

    device = torch.device(device_name)
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)
    config = Qwen2Config(**QWEN25_05B, num_hidden_layers=layers)
    config._attn_implementation = "eager" if mode == "naive" else "sdpa"
    model = Qwen2Model(config).eval()
    model.to(device=device, dtype=dtype)  # type: ignore[call-arg]  # transformers' wrapper confuses mypy
    layer_bytes = sum(p.numel() * p.element_size() for p in model.layers[0].parameters())
    ids = torch.randint(3, config.vocab_size, (1, length), device=device)
    mask = torch.ones_like(ids)
    focus = torch.zeros_like(ids)
    focus[0, length // 2 : length // 2 + 40] = 1  # a 40-token "key sentence" in the middle
    special = torch.zeros_like(ids)
    special[0, 0] = 1
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    peak_reset = reset_peak_rss()
    before_rss = current_rss()
    before_gpu = torch.cuda.memory_allocated() if device.type == "cuda" else 0
    started = time.perf_counter()
    with torch.no_grad():
        if mode == "plain":
            model(input_ids=ids, attention_mask=mask, use_cache=False)
        elif mode == "naive":
            out = model(input_ids=ids, attention_mask=mask, use_cache=False, output_attentions=True)
            assert len(out.attentions) == layers and out.attentions[0].shape == (1, HEADS, length, length)
        else:
            values = attention_statistics(model, ids, mask, focus, special)
            assert values.shape == (1, layers, HEADS, len(STATISTICS))
        if device.type == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result: dict[str, Any] = {
        "mode": mode,
        "tokens": length,
        "layers": layers,
        "seconds": round(seconds, 2),
        "peak_rss_gib": round(peak_rss / GIB, 2),
        "forward_extra_rss_gib": round(max(0, peak_rss - before_rss) / GIB, 2),
        "layer_weights_gib": layer_bytes / GIB,
        "peak_reset": peak_reset,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        peak_gpu = torch.cuda.max_memory_allocated()
        result["peak_gpu_gib"] = round(peak_gpu / GIB, 2)
        result["forward_extra_gpu_gib"] = round((peak_gpu - before_gpu) / GIB, 2)
    return result


def estimate_full(row: dict[str, Any], dtype_bytes: int, key: str) -> float:
    """The peak of the same run with all 24 layers: more layer weights, and more kept maps for naive."""
    more = FULL_LAYERS - row["layers"]
    extra = more * row["layer_weights_gib"]
    if row["mode"] == "naive":
        extra += map_bytes(row["tokens"], more, dtype_bytes) / GIB
    return round(row[key] + extra, 1)


def fmt_gib(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def table(rows: list[dict[str, Any]], device: str, dtype_bytes: int) -> str:
    memory = "peak GPU GiB" if device == "cuda" else "peak RSS GiB"
    key = "peak_gpu_gib" if device == "cuda" else "peak_rss_gib"
    extra_key = "forward_extra_gpu_gib" if device == "cuda" else "forward_extra_rss_gib"
    lines = [
        f"| tokens | way | layers run | {memory} | forward's extra GiB | wall s | "
        f"24-layer peak GiB (est.) | 24-layer wall s (est.) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.get("skipped"):
            lines.append(
                f"| {row['tokens']} | {row['mode']} | {row['layers']} | not run: estimated "
                f"{row['estimate_gib']:.1f} GiB > 70% of the {row['available_gib']:.1f} GiB available | | | "
                f"{map_bytes(row['tokens'], FULL_LAYERS, dtype_bytes) / GIB:.0f}+ | |"
            )
            continue
        lines.append(
            f"| {row['tokens']} | {row['mode']} | {row['layers']} | {fmt_gib(row[key])} | "
            f"{fmt_gib(row[extra_key])} | {row['seconds']:.1f} | {estimate_full(row, dtype_bytes, key)} | "
            f"{row['seconds'] * FULL_LAYERS / row['layers']:.0f} |"
        )
    return "\n".join(lines)


def machine(device: str, dtype: str) -> str:
    import torch
    import transformers

    facts = (
        f"`{platform.platform()}, {os.cpu_count()} CPUs, {total_ram() / GIB:.0f} GiB RAM, "
        f"Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}`"
    )
    if device == "cuda":
        facts += f"; GPU: {torch.cuda.get_device_name()}"
    return f"{facts}; {dtype}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192, 32768])
    parser.add_argument(
        "--layers", type=int, default=None, help="layers to build (default: 2 on CPU, 24 on GPU)"
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (default: torch's own choice)"
    )
    parser.add_argument("--append", type=Path, default=None, help="append the section to this markdown file")
    parser.add_argument("--note", default="", help="a line about the run (e.g. what else was running)")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    layers = args.layers or (FULL_LAYERS if args.device == "cuda" else 2)
    dtype_bytes = 2 if args.dtype == "bfloat16" else 4
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), layers, args.device, args.dtype, args.threads)))
        return
    root = Path(__file__).resolve().parents[1]
    rows: list[dict[str, Any]] = []
    for length in args.lengths:
        for mode in args.modes:
            if mode == "naive":
                estimate = naive_estimate(length, layers, dtype_bytes)
                available = available_bytes(args.device)
                if estimate > 0.7 * available:
                    rows.append(
                        {
                            "mode": mode,
                            "tokens": length,
                            "layers": layers,
                            "skipped": True,
                            "estimate_gib": estimate / GIB,
                            "available_gib": available / GIB,
                        }
                    )
                    print(f"{mode} {length}: skipped (estimated {estimate / GIB:.1f} GiB)", file=sys.stderr)
                    continue
            load = os.getloadavg()[0]
            cmd = [
                sys.executable,
                __file__,
                "--one",
                mode,
                str(length),
                "--layers",
                str(layers),
                "--device",
                args.device,
                "--dtype",
                args.dtype,
                "--threads",
                str(args.threads),
            ]
            env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{mode} at {length} tokens failed (exit {done.returncode})")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["load_before"] = load
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    section = "\n".join(
        [
            "## Long inputs: attention memory",
            "",
            f"### {date.today().isoformat()}, {args.device}: {machine(args.device, args.dtype)}",
            "",
            f"`bench/bench_long_attention.py --layers {layers} --device {args.device} --dtype {args.dtype}"
            + (f" --threads {args.threads}" if args.threads else "")
            + "`: "
            f"Qwen2.5-0.5B shape, {layers} of its 24 layers built, one unpadded sequence, no LM head. "
            "Peak = the process's max RSS"
            + (" / torch.cuda.max_memory_allocated" if args.device == "cuda" else "")
            + " (model weights included); forward's extra = peak minus the memory held just before the "
            f"forward pass. torch threads: {next((r['threads'] for r in rows if 'threads' in r), '?')}. "
            "1-minute load average before each run: "
            + ", ".join(
                f"{row['mode']}@{row['tokens']} {row['load_before']:.1f}"
                for row in rows
                if "load_before" in row
            )
            + ".",
            *([f"\n{args.note}"] if args.note else []),
            "",
            table(rows, args.device, dtype_bytes),
            "",
        ]
    )
    print(section)
    if args.append:
        with args.append.open("a") as handle:
            handle.write("\n" + section)


if __name__ == "__main__":
    main()
