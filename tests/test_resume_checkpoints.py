"""Exact resume from a checkpoint that ``CheckpointCallback`` wrote inside ``learn()``.

The callback saves in the middle of a rollout, after the step it counts and before the training
phase that follows it; the model file records how far the rollout had gone, so the resumed run
finishes that rollout and trains exactly as the uninterrupted run did (tests/test_resume.py checks
``save()`` after ``learn()``; exactness is the same comparison).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from easyrl import SAC, TD3
from easyrl.callbacks import CheckpointCallback
from tests.test_resume import assert_same_learner, settings


def resume_from_checkpoint(
    estimator: type[Any], tmp_path: Path, total: int, at: int, **extra: Any
) -> tuple[Any, Any]:
    """A trains ``total`` steps with a checkpoint at ``at``; B resumes from it and trains the rest."""
    kwargs = settings(estimator, **extra)
    n_envs = kwargs.get("n_envs", 1)
    checkpoints = CheckpointCallback(at // n_envs, tmp_path, save_replay_buffer=True)
    a = estimator("Pendulum-v1", **kwargs).learn(total, callback=checkpoints)
    b = estimator.load(tmp_path / f"rl_model_{at}_steps.zip", device="cpu")
    b.load_replay_buffer(tmp_path / f"rl_model_replay_buffer_{at}_steps.zip")
    assert b.num_timesteps == at
    b.learn(total - at, reset_num_timesteps=False)
    return a, b


def test_checkpoint_between_episodes_resumes_exactly(estimator: type[Any], tmp_path: Path) -> None:
    # Pendulum's episodes last 200 steps: the checkpoint at step 400 falls between episodes.
    a, b = resume_from_checkpoint(estimator, tmp_path, 600, 400)
    assert a._n_updates == b._n_updates == 600 - 50  # every step after learning_starts trained, in both
    assert_same_learner(a, b)


def test_checkpoint_with_several_envs_resumes_exactly(tmp_path: Path) -> None:
    a, b = resume_from_checkpoint(SAC, tmp_path, 600, 400, n_envs=2)
    assert_same_learner(a, b)


@pytest.mark.parametrize("train_freq", [3, (1, "episode")])
def test_checkpoint_inside_a_longer_rollout_resumes_exactly(tmp_path: Path, train_freq: Any) -> None:
    # Every 3 steps, step 400 is the first step of a rollout; in episodes, the rollout has just ended.
    a, b = resume_from_checkpoint(TD3, tmp_path, 700, 400, train_freq=train_freq, gradient_steps=2)
    assert_same_learner(a, b)


def test_checkpoint_written_before_this_fix_still_loads(tmp_path: Path) -> None:
    # A file without the rollout entry (older easyrl) loads as a checkpoint taken between rollouts.
    import json
    import zipfile

    model = SAC("Pendulum-v1", **settings(SAC)).learn(60)
    model.save(tmp_path / "new.zip")
    with zipfile.ZipFile(tmp_path / "new.zip") as source, zipfile.ZipFile(tmp_path / "old.zip", "w") as old:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                del metadata["training_state"]["rollout"], metadata["training_state"]["skipped_updates"]
                data = json.dumps(metadata).encode()
            old.writestr(info, data)
    loaded = SAC.load(tmp_path / "old.zip", device="cpu")
    assert (loaded.training_state.rollout_steps, loaded.training_state.skipped_updates) == (0, 0)
    loaded.learn(10, reset_num_timesteps=False)
