"""Callbacks: code the training loop calls at fixed points, able to stop training.

Subclass :class:`BaseCallback` and override its hooks (``_on_step() -> bool``: False stops
training), or use the ready-made ones: evaluation with early stopping, checkpoints, a progress
bar. ``learn(callback=...)`` takes a callback, a list of them, or a function
``(locals, globals) -> bool``. The current step's data is ``self.step`` (:class:`StepData`);
``self.locals`` is a read-only SB3-style view of it.

``base`` holds the base classes and the :class:`TrainingModel` protocol callbacks see the model
through; ``evaluation`` the evaluation callback and the stops that read it; ``training`` the rest.
"""

from easyrl.callbacks.base import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
    EventCallback,
    StepData,
    TrainingModel,
)
from easyrl.callbacks.evaluation import (
    EvalCallback,
    StopTrainingOnNoModelImprovement,
    StopTrainingOnRewardThreshold,
)
from easyrl.callbacks.training import (
    CallbackLike,
    CheckpointCallback,
    EveryNTimesteps,
    LogEveryNTimesteps,
    ProgressBarCallback,
    StopTrainingOnMaxEpisodes,
    make_callback,
)

__all__ = [
    "BaseCallback",
    "CallbackLike",
    "CallbackList",
    "CheckpointCallback",
    "ConvertCallback",
    "EvalCallback",
    "EventCallback",
    "EveryNTimesteps",
    "LogEveryNTimesteps",
    "ProgressBarCallback",
    "StepData",
    "StopTrainingOnMaxEpisodes",
    "StopTrainingOnNoModelImprovement",
    "StopTrainingOnRewardThreshold",
    "TrainingModel",
    "make_callback",
]
