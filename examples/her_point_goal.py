"""Train SAC with hindsight experience replay (HER) on easyrl's PointGoal env, and evaluate it.

    python examples/her_point_goal.py [--steps 3000] [--seed 0]

Shows HER on a goal-conditioned env (a Dict observation with ``observation``, ``achieved_goal``
and ``desired_goal``): a point on the plane must reach a goal, and the reward is -1 at every step
until it is there. Random actions almost never get there, so without HER the replay buffer holds
nearly no reward to learn from; HER relabels stored transitions with goals reached later in the
same episode. Needs nothing beyond easyrl (the env is ``easyrl.envs.PointGoalEnv``, registered as
``"easyrl/PointGoal-v0"``). Takes well under a minute on 2 CPU cores; the success rate over 20
deterministic episodes should reach about 0.8 or more (random actions: under 0.1).
"""

from __future__ import annotations

import argparse

from easyrl import SAC, HerReplayBuffer, evaluate_success_rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = SAC(
        "MultiInputPolicy",
        "easyrl/PointGoal-v0",
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        gamma=0.95,
        learning_rate=1e-3,
        learning_starts=500,
        policy_kwargs=dict(net_arch=[64, 64]),
        seed=args.seed,
        device="cpu",
    )
    model.learn(args.steps, progress_bar=True)
    rate = evaluate_success_rate(model, "easyrl/PointGoal-v0", n_eval_episodes=20, seed=10_000)
    print(f"Success rate over 20 deterministic episodes: {rate:.2f}")


if __name__ == "__main__":
    main()
