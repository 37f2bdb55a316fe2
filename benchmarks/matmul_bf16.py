"""What bf16 buys one matrix product on this CPU: the layer shapes of easyrl's updates in fp32 and bf16.

    python benchmarks/matmul_bf16.py                  # 2 torch threads
    python benchmarks/matmul_bf16.py --threads 1 --repeats 200

Each row is one product ``(m x k) @ (k x n)`` at a shape that an update runs: a TD3 hidden layer, a
CrossQ-width critic layer, an input layer, a width-1 critic output. Both precisions are timed
alternately, block by block, so that the machine's drift hits both alike; a row gives the median time
per product and its rate. bf16 products run at full speed only on matrix units: AMX-BF16 on Intel Xeon,
AVX-512 BF16 on AMD Zen 4 (the flags line says which this CPU has). Narrow products (an input layer
of a few dozen features, a width-1 output) are often slower in bf16: casting and packing cost more
than the product, which is why ``precision="bf16"`` pays on wide networks (docs/precision.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import cpu_flags, cpu_model  # this folder's machine description

SHAPES = {
    "TD3 hidden layer": (256, 400, 300),
    "SAC hidden layer": (256, 256, 256),
    "CrossQ critic layer (joint batch)": (512, 1024, 1024),
    "input layer (HalfCheetah obs + action)": (256, 23, 400),
    "width-1 critic output": (256, 300, 1),
}


def time_product(a: torch.Tensor, b: torch.Tensor, repeats: int) -> float:
    """Seconds per ``a @ b``, the mean over ``repeats`` back-to-back products."""
    out = torch.empty(a.shape[0], b.shape[1], dtype=a.dtype)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b, out=out)
    return (time.perf_counter() - start) / repeats


def measure(m: int, k: int, n: int, repeats: int, blocks: int) -> dict[str, float]:
    """Median seconds per product in each precision, the precisions alternating block by block."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
    pairs = {"fp32": (a, b), "bf16": (a.bfloat16(), b.bfloat16())}
    times: dict[str, list[float]] = {name: [] for name in pairs}
    for x, y in pairs.values():
        time_product(x, y, repeats)  # warm-up: the kernels' first call picks and packs
    for _ in range(blocks):
        for name, (x, y) in pairs.items():
            times[name].append(time_product(x, y, repeats))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50, help="products per timed block")
    parser.add_argument("--blocks", type=int, default=11, help="timed blocks per precision")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    units = [
        name for name, flag in (("AMX-BF16", "amx_bf16"), ("AVX-512 BF16", "avx512_bf16")) if flag in flags
    ]
    print(f"{cpu_model()}, torch {torch.__version__}, {args.threads} thread(s)")
    print(f"bf16 matrix instructions: {', '.join(units) or 'none (bf16 is emulated: expect it slower)'}")
    print(
        f"{'product':40} {'m x k x n':>16} {'fp32 us':>9} {'GFLOP/s':>8} {'bf16 us':>9} {'GFLOP/s':>8} {'fp32/bf16':>9}"
    )
    for label, (m, k, n) in SHAPES.items():
        seconds = measure(m, k, n, args.repeats, args.blocks)
        flop = 2 * m * k * n
        fp32, bf16 = seconds["fp32"], seconds["bf16"]
        print(
            f"{label:40} {f'{m}x{k}x{n}':>16} {fp32 * 1e6:9.1f} {flop / fp32 / 1e9:8.1f} "
            f"{bf16 * 1e6:9.1f} {flop / bf16 / 1e9:8.1f} {fp32 / bf16:8.2f}x"
        )


if __name__ == "__main__":
    main()
