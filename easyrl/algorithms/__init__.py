"""The estimators and the base class they share."""

from typing import TYPE_CHECKING

from easyrl.algorithms.base import OffPolicyAlgorithm
from easyrl.algorithms.crossq import CrossQ
from easyrl.algorithms.ddpg import DDPG
from easyrl.algorithms.sac import SAC
from easyrl.algorithms.td3 import TD3
from easyrl.algorithms.tqc import TQC

if TYPE_CHECKING:  # mypy checks that callbacks can see every estimator through their protocol
    from easyrl.callbacks import TrainingModel

    def _seen_by_callbacks(model: SAC | TD3 | DDPG | TQC | CrossQ) -> TrainingModel:
        return model


__all__ = ["DDPG", "SAC", "TD3", "TQC", "CrossQ", "OffPolicyAlgorithm"]
