"""Many runs on a real local Ray session (``run_many``, ``easyrl sweep``), with tiny budgets: a grid, a trial
whose worker is killed, an interrupted sweep resumed, a trial that raises; and the missing-extra error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from easyrl import SAC
from easyrl.callbacks import BaseCallback
from easyrl.experiment import run_many
from easyrl.trial_report import TRIAL, run_trial
from tests.cli_run import ROOT, assert_usage_error, block_module, run_cli

ray = pytest.importorskip("ray")  # the ray extra is in dev: CI always has it

SMALL: dict[str, Any] = dict(
    learning_starts=50, batch_size=32, buffer_size=2_000, policy_kwargs=dict(net_arch=[32, 32]), device="cpu"
)
RUN = dict(eval_freq=200, n_eval_episodes=1, save_freq=200)


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    os.environ["OMP_NUM_THREADS"] = "1"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def test_a_2x2_grid_gives_a_row_per_trial_a_csv_and_a_plot(tmp_path: Path) -> None:
    configs = [{"learning_rate": 1e-3}, {"learning_rate": 3e-4}]
    table = run_many(SAC("Pendulum-v1", **SMALL), configs, seeds=(0, 1), total_timesteps=400,
                     output_dir=tmp_path, **RUN)  # fmt: skip
    assert len(table) == 4
    assert sorted(zip(table["learning_rate"], table["seed"], strict=True)) == [
        (3e-4, 0), (3e-4, 1), (1e-3, 0), (1e-3, 1)
    ]  # fmt: skip
    assert (table["status"] == "done").all(), table["error"].tolist()
    assert table["final_return"].notna().all() and (table["best_return"] >= table["final_return"]).all()
    assert (table["steps_per_s"] > 0).all()
    for model in table["model"]:
        assert Path(model).is_file() and Path(model).name == "final_model.zip"
    folder = Path(table["folder"][0])
    assert folder.relative_to(tmp_path).parts[1:] == ("sac", "Pendulum-v1", f"seed{table['seed'][0]}")
    assert {"config.yml", "evaluations.npz", "progress.csv", "best_model.zip", TRIAL} <= {
        p.name for p in folder.iterdir()
    }
    saved = pd.read_csv(tmp_path / "results.csv")
    assert len(saved) == 4 and list(saved["status"]) == ["done"] * 4
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_a_trial_that_raises_is_in_the_table_with_its_error(tmp_path: Path) -> None:
    class Explodes(BaseCallback):  # raises in the trial with gamma 0.9, as an env failing mid-run would
        def _on_step(self) -> bool:
            if self.model.gamma == 0.9 and self.n_calls == 100:
                raise RuntimeError("the env exploded")
            return True

    table = run_many(SAC("Pendulum-v1", **SMALL), [{"gamma": 0.99}, {"gamma": 0.9}], total_timesteps=200,
                     output_dir=tmp_path, callback=Explodes(), **RUN)  # fmt: skip
    rows = {row["gamma"]: row for row in table.to_dict("records")}
    assert rows[0.99]["status"] == "done"
    assert rows[0.99]["error"] in ("", None) or pd.isna(rows[0.99]["error"])
    assert rows[0.9]["status"] == "error"
    assert rows[0.9]["error"] == "RuntimeError: the env exploded"


def _weights(path: str | Path) -> dict[str, torch.Tensor]:
    return SAC.load(path, device="cpu").policy.state_dict()


def test_a_killed_worker_is_retried_from_its_checkpoint_and_ends_as_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pid"

    class WaitForKill(BaseCallback):  # defined here, so Ray sends it by value
        def _on_step(self) -> bool:
            if self.n_calls == 300 and not pid_file.exists():
                pid_file.write_text(str(os.getpid()))
                time.sleep(120)  # the test kills this process now
            return True

    def kill() -> None:
        deadline = time.monotonic() + 120
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    estimator = SAC("Pendulum-v1", **SMALL)
    table = run_many(estimator, seeds=(3,), total_timesteps=600, output_dir=tmp_path / "sweep",
                     max_failures=1, callback=WaitForKill(), **RUN)  # fmt: skip
    killer.join(5)
    killed = int(pid_file.read_text())
    assert not Path(f"/proc/{killed}").exists() or "zombie" in Path(f"/proc/{killed}/status").read_text()
    row = table.to_dict("records")[0]
    assert row["status"] == "done", row["error"]
    # The same seed in this process, uninterrupted, at the same thread count (1): the same weights.
    reference = tmp_path / "reference"
    options = {"total_timesteps": 600, "eval_freq": 200, "n_eval_episodes": 1, "save_freq": 200}
    run_trial(estimator, {}, 3, reference, options)
    ours, theirs = _weights(row["model"]), _weights(reference / "final_model.zip")
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name


INTERRUPTED = """
import ray, sys
ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
from easyrl import SAC
from easyrl.experiment import run_many
run_many(SAC("Pendulum-v1", **{small!r}), seeds=(0, 1, 2), total_timesteps=400, output_dir={out!r},
         resources_per_trial={{"cpu": 2}}, eval_freq=200, n_eval_episodes=1, save_freq=200)
"""


def test_an_interrupted_sweep_resumed_does_not_run_finished_trials_again(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    script = INTERRUPTED.format(small=SMALL, out=str(out))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=environment,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 180
    while not list(out.glob(f"*/sac/Pendulum-v1/seed*/{TRIAL}")) and time.monotonic() < deadline:
        assert driver.poll() is None, driver.stderr.read() if driver.stderr else ""
        time.sleep(0.1)
    driver.send_signal(signal.SIGINT)  # Ctrl-C: Ray Tune stops the sweep
    driver.wait(120)
    finished = {
        p.parent: (p.read_text(), p.stat().st_mtime_ns) for p in out.glob(f"*/sac/Pendulum-v1/seed*/{TRIAL}")
    }
    assert 1 <= len(finished) < 3
    models = {folder: (folder / "final_model.zip").stat().st_mtime_ns for folder in finished}
    with pytest.raises(ValueError, match="resume"):
        run_many(SAC("Pendulum-v1", **SMALL), seeds=(0, 1, 2), total_timesteps=400, output_dir=out, **RUN)
    table = run_many(SAC("Pendulum-v1", **SMALL), seeds=(0, 1, 2), total_timesteps=400, output_dir=out,
                     resume=True, **RUN)  # fmt: skip
    assert sorted(table["seed"]) == [0, 1, 2] and (table["status"] == "done").all(), table["error"].tolist()
    for folder, (text, mtime) in finished.items():
        assert ((folder / TRIAL).read_text(), (folder / TRIAL).stat().st_mtime_ns) == (text, mtime)
        assert (folder / "final_model.zip").stat().st_mtime_ns == models[folder]
        assert json.loads(text)["status"] == "done"


def test_easyrl_sweep_runs_a_grid_from_the_command_line(tmp_path: Path) -> None:
    result = run_cli("sweep", "sac", "Pendulum-v1", "-p", "learning_rate=1e-3,3e-4", "-p", "batch_size=32",
                     "--seeds", "0", "--steps", "200", "--eval-freq", "100", "--eval-episodes", "1",
                     "--output", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results.csv")
    assert sorted(table["learning_rate"]) == [3e-4, 1e-3] and list(table["status"]) == ["done", "done"]
    assert "final_return" in result.stdout and "results.csv" in result.stdout


def test_bad_sweep_input_and_a_missing_extra_are_one_line_errors(tmp_path: Path) -> None:
    assert_usage_error(run_cli("sweep", "sac", "Pendulum-v1", "--seeds", "4-1"), "--seeds", "0-4")
    assert_usage_error(run_cli("sweep", "sac", "Pendulum-v1", "-p", "learning_rate"), "KEY=V1,V2")
    assert_usage_error(run_cli("sweep", "sac", "Pendulum-v1", "-p", "no_such_key=1,2"), "no_such_key")
    blocked = run_cli("sweep", "sac", "Pendulum-v1", "--steps", "100", "--output", str(tmp_path),
                      env=block_module(tmp_path, "ray"))  # fmt: skip
    assert_usage_error(blocked, 'pip install "easyrl[ray]"')


# ---------------------------------------------------------------------------------------------- tuning
def small_space(trial: Any) -> dict[str, Any]:
    """A cheap search space in rl-zoo's form (the shipped ones train networks of up to 400x300)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.98]),
        "learning_starts": 100, "batch_size": 32, "policy_kwargs": "dict(net_arch=[32, 32])",
    }  # fmt: skip


def assert_train_accepts(best_file: Path, tmp_path: Path) -> None:
    result = run_cli("train", "sac", "Pendulum-v1", "--hyperparams", str(best_file), "--steps", "150",
                     "--eval-freq", "0", "--save-freq", "0", "--output", str(tmp_path / "runs"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "runs" / "sac" / "Pendulum-v1" / "seed0" / "final_model.zip").is_file()


def test_an_optuna_study_prunes_resumes_and_writes_settings_easyrl_train_accepts(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    from easyrl.tuning import tune

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    options = dict(steps=600, storage=storage, n_evaluations=3, eval_episodes=1, n_startup_trials=1,
                   n_warmup_evaluations=0, output=tmp_path / "tuning", search_space=small_space)  # fmt: skip
    result = tune("sac", "Pendulum-v1", n_trials=3, **options)
    trials = result.study.trials
    assert len(trials) == 3
    states = {t.state for t in trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    for trial in trials:  # every evaluation reached the pruner; a pruned trial stopped at one
        assert trial.intermediate_values, trial.number
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert len(trial.intermediate_values) < 3
    best = result.study.best_trial
    assert result.best_settings["learning_rate"] == best.params["learning_rate"]
    text = result.best_file.read_text()
    assert "Pendulum-v1:" in text and "learning_rate" in text
    assert_train_accepts(result.best_file, tmp_path)
    # Run again with the same storage: the study continues (3 more trials), it does not start over.
    again = tune("sac", "Pendulum-v1", n_trials=1, **options)
    assert len(again.study.trials) == 4 and again.study.trials[0].params == trials[0].params


def test_the_shipped_search_spaces_give_settings_a_model_accepts() -> None:
    optuna = pytest.importorskip("optuna")
    from easyrl import experiment
    from easyrl.tuning import SEARCH_SPACES

    for algo, sample in SEARCH_SPACES.items():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(5):
            settings = sample(study.ask())
            config = experiment.run_config(algo, "Pendulum-v1", overrides=settings)
            model = experiment._build(config, verbose=0)
            model.policy  # noqa: B018  (every setting is checked when the model is built)


def test_tuning_on_ray_runs_the_trials_as_ray_tune_trials(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    from easyrl.tuning import tune

    # small_space lives in this test module, which Ray's workers cannot import: they get the settings only.
    result = tune("sac", "Pendulum-v1", n_trials=2, steps=300, n_evaluations=2, eval_episodes=1,
                  n_startup_trials=1, output=tmp_path / "tuning", search_space=small_space, on_ray=True)  # fmt: skip
    assert len(result.study.trials) == 2
    assert any(t.state.name == "COMPLETE" for t in result.study.trials)
    assert (tmp_path / "tuning" / "ray").is_dir()  # Ray Tune's own records of the trials
    assert len(list((tmp_path / "tuning").glob("trial_*/sac/Pendulum-v1/seed0/evaluations.npz"))) == 2
    assert_train_accepts(result.best_file, tmp_path)


def test_easyrl_tune_from_the_command_line(tmp_path: Path) -> None:
    result = run_cli("tune", "sac", "Pendulum-v1", "--n-trials", "1", "--steps", "200", "--n-evaluations", "1",
                     "--eval-episodes", "1", "--output", str(tmp_path), "--storage", f"sqlite:///{tmp_path}/s.db")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "best_hyperparams.yml" in result.stdout and (tmp_path / "best_hyperparams.yml").is_file()
    blocked = run_cli("tune", "sac", "Pendulum-v1", "--n-trials", "1", "--steps", "100",
                      env=block_module(tmp_path, "optuna"))  # fmt: skip
    assert_usage_error(blocked, 'pip install "easyrl[tune]"')
