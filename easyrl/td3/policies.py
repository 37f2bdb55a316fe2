"""SB3's ``stable_baselines3.td3.policies``: TD3's (and DDPG's) policy classes, by the names SB3 scripts import.

``TD3(MlpPolicy, env)`` is ``TD3("MlpPolicy", env)``; ``MlpPolicy.load("policy.zip")`` reads a file of
``model.policy.save``. As in SB3, ``MlpPolicy`` is ``TD3Policy`` itself, and the other two are subclasses
that differ only in the features extractor they stand for; DDPG uses these too.
"""

from easyrl.algorithms.td3 import TD3Policy

MlpPolicy = TD3Policy
"""TD3's policy reading observations flattened (SB3's ``MlpPolicy``)."""


class CnnPolicy(TD3Policy):
    """TD3's policy reading image observations through NatureCNN (SB3's ``CnnPolicy``)."""

    policy_name = "CnnPolicy"


class MultiInputPolicy(TD3Policy):
    """TD3's policy reading Dict observations, a CNN per image entry, the others flattened."""

    policy_name = "MultiInputPolicy"


__all__ = ["CnnPolicy", "MlpPolicy", "MultiInputPolicy", "TD3Policy"]
