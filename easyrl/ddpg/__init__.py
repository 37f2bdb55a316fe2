"""SB3's ``stable_baselines3.ddpg``: the estimator and its policies (TD3's), at the same import path."""

from easyrl.algorithms import DDPG
from easyrl.ddpg.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["DDPG", "CnnPolicy", "MlpPolicy", "MultiInputPolicy"]
