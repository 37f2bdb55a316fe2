"""The estimators and the base class they share."""

from easyrl.algorithms.base import OffPolicyAlgorithm
from easyrl.algorithms.sac import SAC

__all__ = ["SAC", "OffPolicyAlgorithm"]
