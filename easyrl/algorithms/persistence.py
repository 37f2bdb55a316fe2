"""Saving and loading, as methods of every estimator (the work is in checkpoint.py and replay_io.py)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

import torch

from easyrl.algorithms import checkpoint, replay_io
from easyrl.envs import EnvLike

if TYPE_CHECKING:
    from easyrl.algorithms.base import OffPolicyAlgorithm


class SaveLoadMixin:
    """``save``/``load`` and friends; the format is described in docs/model-format.md."""

    def save(self, path: str | os.PathLike[str] | IO[bytes]) -> Path | None:
        """Write the model to one zip file, atomically; returns its path (``.zip`` is added if missing).

        The file holds the parameters as JSON and the weights, optimizer states, counters and random
        generators needed to continue training exactly; loading it runs no code from it. The env
        object and the replay buffer (``save_replay_buffer``) are not in it. Given an open binary
        file instead of a path, writes to it and returns None.
        """
        return checkpoint.save_model(self._model, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | IO[bytes],
        env: EnvLike | None = None,
        device: str | torch.device = "auto",
        custom_objects: Mapping[str, Any] | None = None,
        trusted_pickles: Iterable[str] | bool = (),
        **overrides: Any,
    ) -> Self:
        """A model saved by ``save``, on ``device``, ready to predict and to continue training.

        Args:
            env: the env to continue training on; by default the env id saved with the model (a model
                built from an env object must be given one here or with ``set_env`` to train).
            custom_objects: replacements for parameters, by name; the way to supply a value the file
                holds only as a pickle (a callable schedule, say) without unpickling it.
            trusted_pickles: names of pickled parameters to unpickle (or True for all): only for
                files you trust, since unpickling can run any code.
            overrides: constructor parameters to change, e.g. ``learning_starts=0``.
        """
        # The mixin is only used by OffPolicyAlgorithm, so cls is always an estimator class.
        return checkpoint.load_model(cls, path, env, device, custom_objects, trusted_pickles, overrides)  # type: ignore[type-var]

    def get_parameters(self) -> dict[str, dict[str, Any]]:
        """The state dicts of the policy (``"policy"``), each optimizer and learned variables, by name."""
        return checkpoint.get_parameters(self._model)

    def set_parameters(
        self,
        load_path_or_dict: str | os.PathLike[str] | IO[bytes] | Mapping[str, Any],
        exact_match: bool = True,
    ) -> None:
        """Load state dicts from ``get_parameters()`` or from a saved model file (its weights only).

        With ``exact_match=False`` a subset of the groups, and of the policy's entries, may be given.
        """
        checkpoint.set_parameters(self._model, load_path_or_dict, exact_match)

    def save_replay_buffer(self, path: str | os.PathLike[str] | IO[bytes]) -> Path | None:
        """Write the replay buffer to its own zip of ``.npy`` arrays (no pickles), atomically; returns its path."""
        return replay_io.save_replay_buffer(self._model, path)

    def load_replay_buffer(self, path: str | os.PathLike[str] | IO[bytes]) -> None:
        """Fill the replay buffer from a file of ``save_replay_buffer`` (same buffer_size and spaces)."""
        replay_io.load_replay_buffer(self._model, path)

    def set_env(self, env: EnvLike) -> None:
        """Train on ``env`` from now on (same spaces and number of envs); its episodes start afresh."""
        checkpoint.set_env(self._model, env)

    @property
    def _model(self) -> OffPolicyAlgorithm:
        return self  # type: ignore[return-value]  # the mixin is only used by OffPolicyAlgorithm
