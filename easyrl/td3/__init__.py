"""SB3's ``stable_baselines3.td3``: the estimator and its policies, at the same import path."""

from easyrl.algorithms import TD3
from easyrl.td3.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, TD3Policy

__all__ = ["TD3", "CnnPolicy", "MlpPolicy", "MultiInputPolicy", "TD3Policy"]
