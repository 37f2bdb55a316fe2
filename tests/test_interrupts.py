"""An interrupted ``learn()``: a real SIGINT or SIGTERM sent to a training process, and what survives.

The child trains SAC with a ``CheckpointCallback`` and ``save_on_interrupt``; the parent waits until
it is training, sends the signal at a random moment, and checks: the KeyboardInterrupt reached the
script, the model was consistent (counters match the transitions stored, no update stopped half-way),
the logger was closed with complete rows, callbacks' ``on_training_end`` ran, both final checkpoints
were written, and a new process resumes training from them.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from easyrl import SAC, TD3
from easyrl.algorithms.faults import DeferredInterrupts
from easyrl.algorithms.loop import replay_buffer_path
from tests.conftest import FAST

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (see python_sigint below)
from pathlib import Path
import torch
torch.set_num_threads(1)
from easyrl import SAC
from easyrl.callbacks import BaseCallback, CheckpointCallback

folder = Path(sys.argv[1])

class Marks(BaseCallback):
    def _on_step(self):
        if self.num_timesteps == 300:
            print("TRAINING", flush=True)
        return True
    def _on_training_end(self):
        (folder / "training_end_ran").write_text(str(self.num_timesteps))

model = SAC("Pendulum-v1", learning_starts=50, batch_size=32, buffer_size=100_000,
            policy_kwargs=dict(net_arch=[32, 32]), device="cpu", seed=0, tensorboard_log=str(folder / "logs"))
checkpoints = CheckpointCallback(10**9, folder / "checkpoints", save_replay_buffer=True)
try:
    model.learn(10**7, callback=[Marks(), checkpoints], log_interval=1, save_on_interrupt=folder / "interrupted.zip")
except KeyboardInterrupt as error:
    state = model.training_state
    report = dict(message=str(error), interrupted=model.interrupted, num_timesteps=model.num_timesteps,
                  stored=len(model.replay_buffer), n_updates=state.n_updates,
                  logger_closed=model.logger.output_formats == [])
    model.learn(100, reset_num_timesteps=False)  # the same model trains on
    report["after"] = model.num_timesteps
    (folder / "report.json").write_text(json.dumps(report))
    sys.exit(3)
sys.exit(1)
"""


@pytest.fixture(autouse=True)
def python_sigint():
    """Python's own SIGINT handler, as in a terminal, for this test and the children it starts.

    A shell starts a background job with SIGINT ignored, and Python then keeps it ignored; easyrl leaves
    a handler the program chose alone, so under ``pytest &`` the Ctrl-C tests would wait for nothing.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_learn_leaves_a_consistent_model_and_checkpoints(tmp_path: Path, signum: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "TRAINING", child.stderr.read() if child.stderr else ""
    time.sleep(random.uniform(0.0, 0.5))  # somewhere in a step, an update or a log write
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 3, stderr

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["interrupted"] and signal.Signals(signum).name in report["message"]
    assert report["num_timesteps"] == report["stored"] >= 300  # counters match the transitions stored
    # Whole training phases only (one update each here, from step 51 on): the signal is acted on between two
    # steps, after the last step's phase, or between the last step and its phase (it is then not run).
    phases = report["n_updates"]
    assert phases in (report["num_timesteps"] - 50, report["num_timesteps"] - 51), report
    assert report["logger_closed"] and report["after"] == report["num_timesteps"] + 100
    assert (tmp_path / "training_end_ran").read_text() == str(report["num_timesteps"])
    rows = list(csv.DictReader((next((tmp_path / "logs").glob("SAC_*")) / "progress.csv").open()))
    assert rows and all(None not in row.values() and None not in row for row in rows)  # complete rows only

    steps = report["num_timesteps"]
    for model_path, buffer_path in (
        (tmp_path / "interrupted.zip", replay_buffer_path(tmp_path / "interrupted.zip")),
        (
            tmp_path / f"checkpoints/rl_model_{steps}_steps.zip",
            tmp_path / f"checkpoints/rl_model_replay_buffer_{steps}_steps.zip",
        ),
    ):
        resumed = SAC.load(model_path, device="cpu")
        resumed.load_replay_buffer(buffer_path)
        assert resumed.num_timesteps == len(resumed.replay_buffer) == steps
        assert resumed._n_updates == phases
        resumed.learn(60, reset_num_timesteps=False)
        assert resumed.num_timesteps == steps + 60 and resumed._n_updates == phases + 60


def test_interrupt_inside_learn_in_process_keeps_counters_and_buffer_together(tmp_path: Path) -> None:
    # The deferred handler at work in this process: a SIGINT from a callback, mid-rollout.
    from easyrl.callbacks import BaseCallback

    class Interrupt(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == 120:
                os.kill(os.getpid(), signal.SIGINT)  # acted on at the next safe point, not here
            return True

    model = TD3("Pendulum-v1", **FAST, seed=0, train_freq=4, gradient_steps=3)
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        model.learn(1_000, callback=Interrupt(), save_on_interrupt=tmp_path / "model")
    assert model.interrupted and model.num_timesteps == len(model.replay_buffer) == 120
    assert model._n_updates == 3 * ((120 - 50) // 4)  # only the whole training phases before the signal
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    loaded = TD3.load(tmp_path / "model.zip", device="cpu")
    loaded.load_replay_buffer(tmp_path / "model_replay_buffer.zip")
    assert loaded.num_timesteps == len(loaded.replay_buffer) == 120
    model.learn(40, reset_num_timesteps=False)
    assert not model.interrupted and model.num_timesteps == 160


def test_a_second_signal_interrupts_at_once() -> None:
    with DeferredInterrupts() as interrupts:
        os.kill(os.getpid(), signal.SIGTERM)
        assert interrupts.pending == signal.SIGTERM  # the first waits for a safe point
        with pytest.raises(KeyboardInterrupt, match="again"):
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs before kill returns
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_handler_the_program_set_is_left_alone() -> None:
    calls: list[Any] = []
    previous = signal.signal(signal.SIGTERM, lambda *args: calls.append(args))
    try:
        model = SAC("Pendulum-v1", **FAST, seed=0)

        class Terminate:
            def __call__(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> bool:
                if locals_["self"].num_timesteps == 10:
                    os.kill(os.getpid(), signal.SIGTERM)
                return True

        model.learn(20, callback=Terminate())
        assert len(calls) == 1 and model.num_timesteps == 20 and not model.interrupted
    finally:
        signal.signal(signal.SIGTERM, previous)
