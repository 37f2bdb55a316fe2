"""easyrl: fast, safe, scikit-learn-style deep RL for continuous control."""

from easyrl.algorithms import DDPG, SAC, TD3, TQC, CrossQ, OffPolicyAlgorithm
from easyrl.buffers import HerReplayBuffer, ReplayBuffer
from easyrl.evaluation import evaluate_policy, evaluate_success_rate
from easyrl.version import __version__

load = OffPolicyAlgorithm.load
"""Load a model of any algorithm: the file names it (the arguments are those of ``SAC.load``)."""
import_sb3 = OffPolicyAlgorithm.load_sb3
"""Import a Stable-Baselines3 SAC, TD3 or DDPG zip without unpickling (the arguments are those of ``SAC.load_sb3``)."""

__all__ = [
    "DDPG",
    "SAC",
    "TD3",
    "TQC",
    "CrossQ",
    "HerReplayBuffer",
    "OffPolicyAlgorithm",
    "ReplayBuffer",
    "__version__",
    "evaluate_policy",
    "evaluate_success_rate",
    "import_sb3",
    "load",
]
