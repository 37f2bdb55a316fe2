"""easyrl: fast, safe, scikit-learn-style deep RL for continuous control."""

__version__ = "0.1.0"

from easyrl.algorithms import DDPG, SAC, TD3, OffPolicyAlgorithm
from easyrl.algorithms.checkpoint import load
from easyrl.evaluation import evaluate_policy

__all__ = ["DDPG", "SAC", "TD3", "OffPolicyAlgorithm", "__version__", "evaluate_policy", "load"]
