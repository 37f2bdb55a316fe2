"""What one gradient update costs with each newer algorithm and critic option, on this CPU.

    python benchmarks/critic_options_cost.py                    # HalfCheetah-v4, 1 torch thread
    python benchmarks/critic_options_cost.py --threads 2 --rounds 30
    python benchmarks/critic_options_cost.py --configs CrossQ SAC --precision fp32 bf16 --threads 2

Every configuration is built at its published size (SAC's [256, 256] networks with the option added;
REDQ's 10 critics; SimBa's 2 residual blocks of width 256; TQC's 2x25 quantiles; CrossQ's [1024, 1024]
critics), its buffer filled with 1,000 random transitions, and then timed one gradient update at a time
(``_train(1)``: sampling, losses, backward, Adam), the configurations interleaved round by round so that
the machine's drift hits all alike. A row gives the median ms per update and its ratio to SAC's (in
the same precision). With ``--precision fp32 bf16`` each configuration is built in both precisions,
all interleaved, and each bf16 row also gives its time as a ratio to the same configuration in fp32.

The cost per env step is this times the update-to-data ratio (``gradient_steps``), which DroQ and REDQ
raise to 20 in their papers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from machine import cpu_model  # this folder's machine description

from easyrl import SAC, TD3, TQC, CrossQ

CONFIGS: dict[str, tuple[type[Any], dict[str, Any]]] = {
    "SAC": (SAC, {}),
    "SAC layer_norm": (SAC, dict(layer_norm=True)),
    "SAC DroQ (dropout 0.01 + LN)": (SAC, dict(dropout_rate=0.01, layer_norm=True)),
    "SAC REDQ (10 critics, subset 2)": (SAC, dict(n_critics=10, critic_subset=2)),
    "SAC SimBa [256, 256]": (SAC, dict(net_type="simba")),
    "TQC (2 x 25 quantiles)": (TQC, {}),
    "TD3": (TD3, {}),
    "TD3 layer_norm": (TD3, dict(layer_norm=True)),
    "CrossQ": (CrossQ, {}),
}


def build(estimator: type[Any], options: dict[str, Any], env: str, precision: str) -> Any:
    model = estimator(
        env, policy_kwargs=options or None, learning_starts=1_000, seed=0, device="cpu", precision=precision
    )
    model.learn(1_000)  # fills the buffer with warm-up transitions; no update yet
    model.learn(2, reset_num_timesteps=False)  # first updates: allocations and Adam's state
    return model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="HalfCheetah-v4")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {
        (name, precision): build(*CONFIGS[name], args.env, precision)
        for precision in args.precision
        for name in args.configs
    }
    times: dict[tuple[str, str], list[float]] = {key: [] for key in models}
    for _ in range(args.rounds):
        for key, model in models.items():
            start = time.perf_counter()
            for _ in range(5):
                model._train(1)
            times[key].append((time.perf_counter() - start) / 5)
    print(f"{cpu_model()}, torch {torch.__version__}, {args.threads} thread(s); {args.env}, batch 256, "
          f"median of {args.rounds} rounds of 5 updates")  # fmt: skip
    medians = {key: statistics.median(values) for key, values in times.items()}
    print(f"{'configuration':34s} {'precision':>9s} {'ms/update':>10s} {'x SAC':>7s} {'x fp32':>7s}")
    for (name, precision), median in medians.items():
        sac, fp32 = medians.get(("SAC", precision)), medians.get((name, "fp32"))
        to_sac = f"{median / sac:7.2f}" if sac else "      -"
        to_fp32 = f"{median / fp32:7.2f}" if fp32 and precision != "fp32" else "      -"
        print(f"{name:34s} {precision:>9s} {1000 * median:10.2f} {to_sac} {to_fp32}")


if __name__ == "__main__":
    main()
