"""Refactor guards: the same seed trains the same parameters as the recorded code, and its files still load.

``tests/data/make_fixtures.py`` recorded, on the code before the package layout changed, the hash
of each estimator's parameters after a short fixed-seed run, and saved that model and its replay
buffer. Here the current code must train to the same hash, load those files, act as they did, and
resume from them to the same parameters as the recorded code did.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.data.make_fixtures import CASES, HERE, OBSERVATIONS, build, parameter_hash

RECORD = json.loads((HERE / "snapshot.json").read_text())
HINT = (
    f"recorded on {RECORD['recorded_on']} at commit {RECORD['commit'][:10]}; on another CPU kind, rerun "
    "tests/data/make_fixtures.py at that commit first"
)


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def loaded(name: str) -> Any:
    estimator = CASES[name][0]
    return estimator.load(HERE / f"{name}.zip", device="cpu")


def test_same_seed_trains_the_recorded_parameters(case: str) -> None:
    model = build(case).learn(RECORD["steps"])
    assert parameter_hash(model) == RECORD["cases"][case]["after_training"], HINT


def test_a_recorded_model_file_loads_and_acts_as_it_did(case: str) -> None:
    model = loaded(case)
    assert parameter_hash(model) == RECORD["cases"][case]["after_training"]
    assert model.num_timesteps == RECORD["steps"]
    actions, _ = model.predict(OBSERVATIONS, deterministic=True)
    np.testing.assert_allclose(actions, np.array(RECORD["cases"][case]["actions"]), rtol=0, atol=1e-6)


def test_a_recorded_model_and_buffer_resume_to_the_recorded_parameters(case: str) -> None:
    model = loaded(case)
    model.load_replay_buffer(HERE / f"{case}_replay.zip")
    assert len(model.replay_buffer) == RECORD["steps"]
    model.learn(RECORD["then"], reset_num_timesteps=False)
    assert parameter_hash(model) == RECORD["cases"][case]["after_resume"], HINT
