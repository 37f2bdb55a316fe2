"""SB3's ``stable_baselines3.sac``: the estimator and its policies, at the same import path."""

from easyrl.algorithms import SAC
from easyrl.sac.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, SACPolicy

__all__ = ["SAC", "CnnPolicy", "MlpPolicy", "MultiInputPolicy", "SACPolicy"]
