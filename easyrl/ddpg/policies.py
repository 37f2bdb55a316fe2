"""SB3's ``stable_baselines3.ddpg.policies``: DDPG is TD3 with other settings, so its policies are TD3's."""

from easyrl.td3.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["CnnPolicy", "MlpPolicy", "MultiInputPolicy"]
