"""n-step windows: which stored steps a sampled transition's n-step return sums, read from the columns.

A column of the replay buffer holds one env's steps in time order, so the window of a transition at row
t is rows t, t+1, ..., t+n-1 of its column, cut after the first step that ended an episode and before
the first slot that cannot be sampled yet.
"""

from __future__ import annotations

import torch


def n_step_window(
    ended: torch.Tensor,
    rewards: torch.Tensor,
    rows_per_env: int,
    n_envs: int,
    row: torch.Tensor,
    env: torch.Tensor | int,
    available: torch.Tensor,
    gamma: float,
    n_steps: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For windows starting at ``row`` of column ``env``: the flat index of their last slot,
    their discounted reward sums and γ^length.

    ``ended`` and ``rewards`` are the buffer's flat views (index = row * n_envs + env). ``available``
    (B,) is the number of sampleable slots from ``row`` on in each column; a window takes at most that
    many steps, and stops after the first step that ended an episode.
    """
    device = row.device
    step = torch.arange(n_steps, device=device)
    rows = (row[:, None] + step) % rows_per_env  # (B, n): the window's slots, in time order
    slots = rows * n_envs + (env[:, None] if isinstance(env, torch.Tensor) else env)
    inside = step < available[:, None]
    window_ended = ended[slots] & inside
    ended_before = window_ended.cumsum(dim=1) - window_ended.long()  # episode ends strictly before each step
    included = inside & (ended_before == 0)
    length = included.sum(dim=1)  # >= 1: the first step is always sampleable
    powers = torch.tensor([gamma**k for k in range(n_steps + 1)], dtype=torch.float32, device=device)
    # Slots outside the window may be stale or never written: select, never multiply by 0.
    window_rewards = torch.where(included, rewards[slots] * powers[:n_steps], 0.0)
    last = slots.gather(1, (length - 1)[:, None]).squeeze(1)
    return last, window_rewards.sum(dim=1), powers[length]
