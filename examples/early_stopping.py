"""Early stopping: train SAC on Pendulum-v1 until an evaluation reaches a mean return of -200.

Every 1,000 steps, EvalCallback plays 5 evaluation episodes with deterministic actions. When their
mean return is a new best, it runs StopTrainingOnRewardThreshold, which stops training as soon as
that best reaches the threshold -- usually well within the 20,000-step budget.

    python examples/early_stopping.py                        # console only
    python examples/early_stopping.py --log-dir logs/pendulum  # also evaluations.npz, best_model.zip
"""

from __future__ import annotations

import argparse

from easyrl import SAC
from easyrl.callbacks import EvalCallback, StopTrainingOnRewardThreshold


def main() -> None:
    parser = argparse.ArgumentParser(description="Train SAC on Pendulum-v1 until it reaches a mean return.")
    parser.add_argument("--threshold", type=float, default=-200.0, help="mean evaluation return to stop at")
    parser.add_argument("--timesteps", type=int, default=20_000, help="the most env steps to train for")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-dir", default=None, help="folder for evaluations.npz and best_model.zip")
    args = parser.parse_args()

    model = SAC("Pendulum-v1", seed=args.seed, verbose=1)
    evaluation = EvalCallback(
        "Pendulum-v1",
        callback_on_new_best=StopTrainingOnRewardThreshold(args.threshold, verbose=1),
        eval_freq=1_000,
        n_eval_episodes=5,
        log_path=args.log_dir,
        best_model_save_path=args.log_dir,
    )
    # log_interval=5 episodes of 200 steps: a training table every 1,000 steps, beside each evaluation's.
    model.learn(args.timesteps, callback=evaluation, log_interval=5)

    if model.num_timesteps < args.timesteps:
        print(
            f"Stopped at step {model.num_timesteps:,} of {args.timesteps:,}: the best mean evaluation return, "
            f"{evaluation.best_mean_reward:.1f}, reached the threshold {args.threshold:g}."
        )
    else:
        print(
            f"Trained all {args.timesteps:,} steps; best mean evaluation return {evaluation.best_mean_reward:.1f}."
        )
    print("Evaluations (step: mean return):")
    for step, returns in zip(evaluation.evaluations_timesteps, evaluation.evaluations_results, strict=True):
        print(f"  {step:>6,}: {sum(returns) / len(returns):8.1f}")


if __name__ == "__main__":
    main()
