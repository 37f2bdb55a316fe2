"""Deep Deterministic Policy Gradient.

Lillicrap et al. 2015, "Continuous control with deep reinforcement learning".

DDPG is TD3 without TD3's three additions: one critic, regressing to
y = r + γ (1 − terminated) Q̄(s', π̄(s')), no target policy smoothing, and the actor and the
target networks updated at every step. It is therefore TD3 with other settings, not other code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from easyrl.algorithms.td3 import TD3


@dataclass(kw_only=True, repr=False, eq=False)
class DDPG(TD3):
    """Deep Deterministic Policy Gradient.

    The parameters are TD3's (see :class:`easyrl.TD3`) with DDPG's defaults: ``policy_delay=1``,
    ``target_policy_noise=0.0``, ``target_noise_clip=0.0`` and one critic (``n_critics`` in
    ``policy_kwargs``). Other defaults follow SB3: learning_rate 1e-3, buffer_size 1M,
    learning_starts 100, batch_size 256, tau 0.005, gamma 0.99, net_arch [400, 300].

    The paper's own setup::

        DDPG(env, tau=0.001, actor_learning_rate=1e-4, critic_learning_rate=1e-3,
             action_noise=OrnsteinUhlenbeckActionNoise(np.zeros(n), 0.2 * np.ones(n), theta=0.15))
    """

    policy_delay: int = 1
    target_policy_noise: float = 0.0
    target_noise_clip: float = 0.0

    algorithm_name: ClassVar[str] = "DDPG"
    default_n_critics: ClassVar[int] = 1
