"""SB3's ``stable_baselines3.sac.policies``: SAC's policy classes, by the names SB3 scripts import.

``SAC(MlpPolicy, env)`` is ``SAC("MlpPolicy", env)``; ``MlpPolicy.load("policy.zip")`` reads a file of
``model.policy.save`` (see :class:`easyrl.algorithms.policies.BasePolicy`). As in SB3, ``MlpPolicy`` is
``SACPolicy`` itself, and the other two are subclasses that differ only in the features extractor they
stand for. A model file records the policy by its name (``"CnnPolicy"``), never as a pickled class.
"""

from easyrl.algorithms.sac import SACPolicy

MlpPolicy = SACPolicy
"""SAC's policy reading observations flattened (SB3's ``MlpPolicy``)."""


class CnnPolicy(SACPolicy):
    """SAC's policy reading image observations through NatureCNN (SB3's ``CnnPolicy``)."""

    policy_name = "CnnPolicy"


class MultiInputPolicy(SACPolicy):
    """SAC's policy reading Dict observations, a CNN per image entry, the others flattened."""

    policy_name = "MultiInputPolicy"


__all__ = ["CnnPolicy", "MlpPolicy", "MultiInputPolicy", "SACPolicy"]
