"""The estimators and the base class they share."""

from easyrl.algorithms.base import OffPolicyAlgorithm
from easyrl.algorithms.ddpg import DDPG
from easyrl.algorithms.sac import SAC
from easyrl.algorithms.td3 import TD3

__all__ = ["DDPG", "SAC", "TD3", "OffPolicyAlgorithm"]
