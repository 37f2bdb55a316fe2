"""easyrl: fast, safe, scikit-learn-style deep RL for continuous control."""

__version__ = "0.1.0"

from easyrl.algorithms import SAC, OffPolicyAlgorithm  # noqa: E402

__all__ = ["SAC", "OffPolicyAlgorithm", "__version__"]
