"""Algorithms register themselves by name, and loading finds the class a file names in the registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

import easyrl
from easyrl import DDPG, SAC, TD3
from easyrl.algorithms.registry import algorithm_class, algorithm_names, register
from easyrl.algorithms.training_state import TrainingState
from tests.conftest import FAST


@dataclass(kw_only=True, repr=False, eq=False)
class SlowTargetSAC(SAC):
    """A new algorithm defined outside easyrl: SAC whose targets move every second update."""

    target_update_interval: int = 2
    algorithm_name: ClassVar[str] = "SlowTargetSAC"


@dataclass(kw_only=True, repr=False, eq=False)
class UsersSAC(SAC):
    """A user's subclass that keeps SAC's name: files it writes load as SAC."""


def test_the_built_in_algorithms_are_registered() -> None:
    assert [algorithm_class(name) for name in ("SAC", "TD3", "DDPG")] == [SAC, TD3, DDPG]
    assert algorithm_class("os.system") is None
    assert algorithm_class(["SAC"]) is None


def test_a_new_algorithm_is_found_by_easyrl_load(tmp_path: Path) -> None:
    assert "SlowTargetSAC" in algorithm_names()
    model = SlowTargetSAC("Pendulum-v1", seed=0, **FAST).learn(60)
    model.save(tmp_path / "model.zip")
    loaded = easyrl.load(tmp_path / "model.zip", device="cpu")
    assert type(loaded) is SlowTargetSAC
    assert loaded.target_update_interval == 2
    with pytest.raises(ValueError, match="holds a SlowTargetSAC model, not a SAC one"):
        SAC.load(tmp_path / "model.zip", device="cpu")


def test_a_subclass_without_a_name_of_its_own_is_not_registered(tmp_path: Path) -> None:
    assert algorithm_class("SAC") is SAC
    UsersSAC("Pendulum-v1", seed=0, **FAST).save(tmp_path / "model.zip")
    assert type(easyrl.load(tmp_path / "model.zip", device="cpu")) is SAC


def test_two_algorithms_cannot_share_a_name() -> None:
    with pytest.raises(ValueError, match="Two algorithms are named 'SAC'"):
        register(UsersSAC, "SAC")


def test_the_training_state_round_trips_as_a_whole(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", seed=3, n_envs=2, **FAST).learn(90)
    state = model.training_state
    metadata, tensors = state.to_file(model._device)
    fresh, _ = TrainingState.create(None, model._device, 2, None, model.stats_window_size)
    fresh.noise = None if state.noise is None else type(state.noise)(state.noise.base, 2, 0)
    fresh.restore(metadata, tensors, 2, model.observation_space, model._device)
    again, again_tensors = fresh.to_file(model._device)
    assert again == metadata
    assert all((again_tensors[name] == tensors[name]).all() for name in tensors)
    assert (fresh.num_timesteps, fresh.n_updates, fresh.episode_num) == (
        90,
        state.n_updates,
        state.episode_num,
    )
