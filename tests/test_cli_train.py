"""`easyrl train` run as a user runs it (a subprocess) on Pendulum-v1 with small budgets: the run folder it
writes, what the files hold, resuming, the progress output, and the one-line errors for bad input."""

from __future__ import annotations

import csv
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import easyrl
from easyrl.callbacks import BaseCallback
from easyrl.experiment import train
from tests.cli_run import ROOT, assert_usage_error, run_cli

SMALL = ("--steps", "400", "--eval-freq", "200", "--save-freq", "200", "--eval-episodes", "2")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One 400-step SAC run: evaluations and checkpoints at steps 200 and 400."""
    output = tmp_path_factory.mktemp("runs")
    result = run_cli("train", "sac", "Pendulum-v1", *SMALL, "--seed", "3", "--output", str(output))
    assert result.returncode == 0, result.stderr[-3000:]
    return output / "sac" / "Pendulum-v1" / "seed3", result


def test_train_writes_one_folder_per_run(run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    folder, result = run
    names = {path.relative_to(folder).as_posix() for path in folder.rglob("*")}
    assert names == {
        "config.yml", "progress.csv", "evaluations.npz", "best_model.zip", "final_model.zip", "checkpoints",
        "checkpoints/rl_model_200_steps.zip", "checkpoints/rl_model_400_steps.zip",
        "checkpoints/rl_model_replay_buffer_400_steps.zip",  # only the newest replay buffer is kept
    }  # fmt: skip
    assert "Training SAC on Pendulum-v1 (seed 3)" in result.stdout
    assert re.search(
        r"Last evaluation \(step 400\): return -?\d+\.\d ± \d+\.\d over 2 episodes", result.stdout
    )
    # Not a terminal: plain progress lines, the last at 100%.
    assert re.search(r"^step 400/400 \(100%\)  [\d,]+ steps/s  eta 0:00:00", result.stdout, re.MULTILINE)


def test_the_run_folder_holds_the_config_curves_and_models(
    run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    folder, _ = run
    config = yaml.safe_load((folder / "config.yml").read_text())
    assert config["algorithm"] == "sac" and config["env"] == "Pendulum-v1" and config["seed"] == 3
    assert config["hyperparams"] == {"n_timesteps": 400, "policy": "MlpPolicy", "learning_rate": 0.001}
    assert config["run"] == {
        "eval_freq": 200,
        "eval_episodes": 2,
        "save_freq": 200,
        "device": "auto",
        "tensorboard": False,
    }
    with np.load(folder / "evaluations.npz") as evaluations:
        assert evaluations["timesteps"].tolist() == [200, 400]
        assert evaluations["results"].shape == evaluations["ep_lengths"].shape == (2, 2)
        assert (evaluations["ep_lengths"] == 200).all()
        assert np.all(np.diff(evaluations["walltime"]) > 0)
    with open(folder / "progress.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["time/total_timesteps"] for row in rows if row["eval/mean_reward"]] == ["200", "400"]
    final = easyrl.load(folder / "final_model.zip", device="cpu")
    assert final.num_timesteps == 400 and final.learning_rate == 0.001 and final.seed == 3
    assert easyrl.load(folder / "checkpoints/rl_model_200_steps.zip").num_timesteps == 200


def test_an_existing_run_is_kept_and_resume_is_offered(
    run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    folder, _ = run
    before = (folder / "final_model.zip").read_bytes()
    result = run_cli("train", "sac", "Pendulum-v1", *SMALL, "--seed", "3", "--output", str(folder.parents[2]))
    assert_usage_error(result, f"The run folder {folder} exists already", "--resume", "--force")
    assert (folder / "final_model.zip").read_bytes() == before
    finished = run_cli(
        "train", "sac", "Pendulum-v1", "--seed", "3", "--output", str(folder.parents[2]), "--resume"
    )
    assert_usage_error(finished, "has trained 400 of its 400 steps: pass --steps N with more than 400")


def test_resume_extends_a_run_from_its_newest_checkpoint(
    run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    folder, _ = run
    result = run_cli(
        "train",
        "sac",
        "Pendulum-v1",
        "--seed",
        "3",
        "--output",
        str(folder.parents[2]),
        "--resume",
        "--steps",
        "600",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming SAC on Pendulum-v1" in result.stdout
    assert easyrl.load(folder / "final_model.zip").num_timesteps == 600
    assert yaml.safe_load((folder / "config.yml").read_text())["hyperparams"]["n_timesteps"] == 600
    with np.load(folder / "evaluations.npz") as evaluations:
        assert evaluations["timesteps"].tolist() == [200, 400, 600]
        assert len(evaluations["walltime"]) == 3 and np.all(np.diff(evaluations["walltime"]) > 0)
    assert sorted(p.name for p in (folder / "checkpoints").glob("*replay_buffer*")) == [
        "rl_model_replay_buffer_600_steps.zip"
    ]


class Interrupt(BaseCallback):
    """Raises KeyboardInterrupt (Ctrl-C) at a step."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.at:
            raise KeyboardInterrupt
        return True


def test_a_resumed_run_ends_as_the_uninterrupted_run(tmp_path: Path) -> None:
    # Checkpoints are taken between a training phase and the next rollout, at an episode boundary here
    # (Pendulum's episodes last 200 steps), so resuming from one continues bit for bit on the CPU. Ctrl-C
    # writes a last checkpoint where it stopped (issue 19); stopped at a boundary, that one is exact too
    # (mid-episode, the envs cannot be put back where they were: docs/model-format.md).
    options = dict(steps=400, eval_freq=200, save_freq=200, eval_episodes=1, progress=False,
                   overrides={"learning_starts": 100}, device="cpu")  # fmt: skip
    whole, _ = train("td3", "Pendulum-v1", output=tmp_path / "a", **options)
    with pytest.raises(KeyboardInterrupt):
        train("td3", "Pendulum-v1", output=tmp_path / "b", callback=Interrupt(200), **options)
    resumed, folder = train("td3", "Pendulum-v1", output=tmp_path / "b", resume=True, progress=False)
    assert resumed.num_timesteps == whole.num_timesteps == 400
    assert resumed._n_updates == whole._n_updates
    for name, state in whole.get_parameters()["policy"].items():
        assert torch.equal(state, resumed.get_parameters()["policy"][name]), name
    with np.load(folder / "evaluations.npz") as evaluations:
        assert evaluations["timesteps"].tolist() == [200, 400]


def test_print_hyperparams_shows_the_merged_settings(tmp_path: Path) -> None:
    (tmp_path / "mine.yml").write_text("Pendulum-v1:\n  batch_size: 128\n  gamma: 0.95\n")
    result = run_cli("train", "--print-hyperparams", "td3", "Pendulum-v1", "--hyperparams", "mine.yml",
                     "-p", "gamma=0.9", "-p", "learning_rate=lin_1e-3", "--n-envs", "2", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout.split("# run options")[0])
    assert shown == {
        "n_timesteps": 20000, "policy": "MlpPolicy", "gamma": 0.9, "buffer_size": 200000, "learning_starts": 10000,
        "noise_type": "normal", "noise_std": 0.1, "gradient_steps": -1, "train_freq": [1, "episode"],
        "learning_rate": "lin_1e-3", "policy_kwargs": "dict(net_arch=[400, 300])", "batch_size": 128, "n_envs": 2,
    }  # fmt: skip
    assert "eval_freq: 1000" in result.stdout and "save_freq: 2000" in result.stdout
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "file", "fragments"),
    [
        (["sax", "Pendulum-v1"], None, ["Unknown algorithm 'sax' (did you mean 'sac'?)"]),
        (["sac", "Pendulum-v9"], None, ["Unknown env id 'Pendulum-v9' (did you mean 'Pendulum-v1'"]),
        (
            ["sac", "Pendulum-v1", "-p", "learnin_rate=1e-3"],
            None,
            ["Unknown hyperparameter 'learnin_rate' for SAC", "did you mean 'learning_rate'"],
        ),
        (
            ["sac", "Pendulum-v1", "-p", "net_arch=[64,"],
            None,
            ["Cannot read the override 'net_arch=[64,'", "is neither a Python literal nor a plain word"],
        ),
        (
            ["sac", "InvertedPendulum-v4"],
            None,
            ["no tuned sac settings for InvertedPendulum-v4", "pass --steps N"],
        ),
        (
            ["sac", "Pendulum-v1"],
            "Pendulum-v1:\n  batch_sizes: 64\n",
            ["Unknown hyperparameter 'batch_sizes' for SAC"],
        ),
        (["sac", "Pendulum-v1"], "Pendulum-v1:\n  tau: [1, 2]\n", ["tau=[1, 2] is invalid"]),
        (
            ["sac", "Pendulum-v1"],
            "Pendulum-v1:\n  tau: 0.1\n gamma: 1\n",
            ["h.yml is not valid YAML (line 3)"],
        ),
        (
            ["sac", "Pendulum-v1"],
            "env_wrapper: gymnasium.wrappers.TimeLimit\n",
            ["The key 'env_wrapper' is not supported"],
        ),
        (
            ["td3", "Pendulum-v1"],
            "noise_type: uniform\n",
            ["noise_type='uniform' is invalid: use 'normal' or 'ornstein-uhlenbeck'"],
        ),
        (
            ["sac", "Pendulum-v1"],
            "policy_kwargs: \"dict(net_arch=__import__('os'))\"\n",
            ["policy_kwargs=", "cannot be read"],
        ),
        (["sac", "Pendulum-v1", "--resume"], None, ["Cannot resume", "holds no config.yml"]),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    tmp_path: Path, args: list[str], file: str | None, fragments: list[str]
) -> None:
    if file is not None:
        (tmp_path / "h.yml").write_text(file)
        args = [*args, "--hyperparams", "h.yml"]
    result = run_cli("train", *args, "--eval-freq", "0", cwd=tmp_path)
    assert_usage_error(result, *fragments)
    assert not any((tmp_path / "runs").rglob("*.zip"))


def test_the_progress_bar_fits_an_80_column_terminal(tmp_path: Path) -> None:
    # Issue 16: at 80 columns the bar cut the step count ("5,000/5,0…") and wrapped the rate.
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm", "PYTHONPATH": str(ROOT)}
    environment.pop("COLUMNS", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "easyrl",
            "train",
            "sac",
            "Pendulum-v1",
            "--steps",
            "20000",
            "--eval-freq",
            "0",
            "--save-freq",
            "0",
            "--progress-bar",
            "-p",
            "learning_starts=20000",
        ],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=tmp_path,
        env=environment,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=600) == 0
    os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    lines = [line for line in re.split(r"[\r\n]", text) if "steps/s" in line]
    assert lines, text[-2000:]
    assert all(len(line.rstrip()) <= 80 for line in lines), lines
    assert any("20,000/20,000" in line and "steps/s" in line for line in lines), lines[-3:]


@pytest.mark.parametrize("algo", ["tqc", "crossq"])
def test_train_runs_the_newer_algorithms_with_rl_zoos_settings(algo: str, tmp_path: Path) -> None:
    """rl-zoo's Pendulum entry (CrossQ's: [256, 256] networks, policy_delay 2), shrunk to 300 steps."""
    result = run_cli(
        "train", algo, "Pendulum-v1", "--steps", "300", "--eval-freq", "300", "--eval-episodes", "1",
        "-p", "learning_starts=100", "--output", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    model = easyrl.load(tmp_path / algo / "Pendulum-v1" / "seed0" / "final_model.zip")
    assert type(model).__name__ == {"tqc": "TQC", "crossq": "CrossQ"}[algo] and model.num_timesteps == 300
    if algo == "crossq":
        assert model.policy_delay == 2 and model.policy.critic.layers[0].weight.shape[-1] == 256
    else:  # rl-zoo's TQC Pendulum: gSDE, 64 updates every 64 steps
        assert model.use_sde and (model.train_freq, model.gradient_steps) == (64, 64)
