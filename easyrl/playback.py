"""Playing a saved model: ``easyrl eval`` (returns, lengths, success rate) and ``easyrl video``.

Both read the model file with the safe loader (``easyrl.load``: weights only, no pickles) and play on the
env id the file names, or another one given as ``env``. Videos are rendered headless
(``render_mode="rgb_array"``) and written with imageio (the ``video`` extra; mp4 through imageio-ffmpeg,
whose wheel carries its own ffmpeg).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from easyrl import algorithms
from easyrl.envs.vector import to_vector_env
from easyrl.evaluation import run_episodes
from easyrl.extras import require
from easyrl.hyperparams import HyperparameterError, check_env
from easyrl.serialization import ModelFileError, read_metadata

VIDEO_FORMATS = (".mp4", ".gif")


class PlaybackError(ValueError):
    """A model, env or output that cannot be played or written; the message names the fix."""


@dataclass(frozen=True)
class EvaluationReport:
    """The episodes ``evaluate_file`` played: each one's return and length, and the success flags where the
    env reports ``info["is_success"]`` (else empty)."""

    env_id: str
    returns: list[float]
    lengths: list[int]
    successes: list[float]

    def lines(self, deterministic: bool) -> list[str]:
        """The report as the lines ``easyrl eval`` prints."""
        kind = "deterministic" if deterministic else "stochastic"
        lines = [
            f"{self.env_id}: {len(self.returns)} {kind} episodes",
            f"  return          {np.mean(self.returns):.2f} ± {np.std(self.returns):.2f}"
            f"  (min {np.min(self.returns):.2f}, max {np.max(self.returns):.2f})",
            f"  episode length  {np.mean(self.lengths):.1f} ± {np.std(self.lengths):.1f}",
        ]
        if self.successes:
            lines.append(f"  success rate    {100 * np.mean(self.successes):.1f}%")
        return lines


def load_model(path: str | os.PathLike[str], env: str | None = None) -> tuple[Any, str]:
    """The model in ``path`` (on the CPU) and the env id to play it on: ``env``, else the one the file names."""
    try:
        metadata = read_metadata(path)
    except FileNotFoundError:
        raise PlaybackError(
            f"{os.fspath(path)}: no such file; give a model file written by model.save()."
        ) from None
    except IsADirectoryError:
        raise PlaybackError(
            f"{os.fspath(path)} is a folder; give a model file such as {os.path.join(path, 'best_model.zip')}."
        ) from None
    env_id = env or _saved_env_id(metadata)
    if env_id is None:
        raise PlaybackError(
            f"{os.fspath(path)} names no env id (the model was trained on an env object): pass --env ID."
        )
    try:
        check_env(env_id)
    except HyperparameterError as error:
        raise PlaybackError(str(error)) from None
    model: Any = algorithms.OffPolicyAlgorithm.load(path, device="cpu")
    return model, env_id


def _saved_env_id(metadata: dict[str, Any]) -> str | None:
    params = metadata.get("params")
    env = params.get("env") if isinstance(params, dict) else None
    env_id = env if isinstance(env, str) else metadata.get("env_id")
    return env_id if isinstance(env_id, str) else None


def evaluate_file(
    path: str | os.PathLike[str],
    episodes: int = 10,
    deterministic: bool = True,
    env: str | None = None,
    seed: int = 0,
) -> EvaluationReport:
    """Play ``episodes`` episodes of the model in ``path`` (seeded from ``seed``)."""
    if episodes < 1:
        raise PlaybackError(f"--episodes {episodes} is invalid: give 1 or more.")
    model, env_id = load_model(path, env)
    vec_env = to_vector_env(env_id, 1)
    try:
        _check_spaces(model, vec_env.single_observation_space, env_id)
        returns, lengths, successes = run_episodes(model, vec_env, episodes, deterministic, False, seed)
    finally:
        vec_env.close()
    return EvaluationReport(env_id, returns, lengths, successes)


def _check_spaces(model: Any, space: gym.Space[Any], env_id: str) -> None:
    if space.shape != model.observation_space.shape:
        raise PlaybackError(
            f"{env_id}'s observations have shape {space.shape}, but the model takes {model.observation_space.shape}: "
            "pass the env it was trained on with --env."
        )


@dataclass(frozen=True)
class VideoReport:
    """What ``record_video`` wrote."""

    path: Path
    env_id: str
    frames: int
    fps: int
    returns: list[float]


def record_video(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    episodes: int = 1,
    deterministic: bool = True,
    env: str | None = None,
    seed: int = 0,
    fps: int | None = None,
) -> VideoReport:
    """Render ``episodes`` episodes of the model in ``path`` and write them to ``output`` (.mp4 or .gif)."""
    output = Path(output)
    if output.suffix.lower() not in VIDEO_FORMATS:
        raise PlaybackError(f"Cannot write {output}: name an .mp4 or a .gif file, e.g. -o out.mp4.")
    if episodes < 1:
        raise PlaybackError(f"--episodes {episodes} is invalid: give 1 or more.")
    imageio = require("imageio.v2", "video", "easyrl video")
    if output.suffix.lower() == ".mp4":
        require("imageio_ffmpeg", "video", "Writing .mp4")
    model, env_id = load_model(path, env)
    if not os.environ.get("DISPLAY"):  # headless: GLFW and SDL's video need a display
        os.environ.setdefault("MUJOCO_GL", "egl")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off-screen for rgb_array anyway
    play_env = _render_env(env_id)
    try:
        _check_spaces(model, play_env.observation_space, env_id)
        frames, returns = _play(model, play_env, episodes, deterministic, seed, env_id)
        rate = fps or int(play_env.metadata.get("render_fps") or 30)
    finally:
        play_env.close()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial{output.suffix}")
    if output.suffix.lower() == ".gif":
        imageio.mimsave(partial, frames, duration=1000 / rate, loop=0)
    else:
        imageio.mimsave(partial, [_even(frame) for frame in frames], fps=rate, macro_block_size=1)
    os.replace(partial, output)
    return VideoReport(output, env_id, len(frames), rate, returns)


def _render_env(env_id: str) -> gym.Env[Any, Any]:
    try:
        return gym.make(env_id, render_mode="rgb_array")
    except gym.error.DependencyNotInstalled as error:
        raise PlaybackError(
            f"{env_id} cannot render: {' '.join(str(error).split())} "
            '(for the classic-control envs: pip install "easyrl[pixels]")'
        ) from None
    except (TypeError, ValueError) as error:
        raise PlaybackError(f"{env_id} cannot render to images: {' '.join(str(error).split())}") from None


def _play(
    model: Any, env: gym.Env[Any, Any], episodes: int, deterministic: bool, seed: int, env_id: str
) -> tuple[list[np.ndarray], list[float]]:
    frames: list[np.ndarray] = []
    returns: list[float] = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        frames.append(_frame(env, env_id))
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = bool(terminated or truncated)
            frames.append(_frame(env, env_id))
        returns.append(total)
    return frames, returns


def _frame(env: gym.Env[Any, Any], env_id: str) -> np.ndarray:
    try:
        frame = env.render()
    except Exception as error:  # each renderer fails its own way (OpenGL, SDL, EGL): report any as one line
        text = " ".join(str(error).split()) or type(error).__name__
        raise PlaybackError(
            f"{env_id} cannot render here ({type(error).__name__}: {text[:200]}); MuJoCo envs need OpenGL "
            "without a display: set MUJOCO_GL=egl (with a GPU) or MUJOCO_GL=osmesa (apt-get install libosmesa6)."
        ) from None
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise PlaybackError(f"{env_id} does not render RGB images (render() gave {type(frame).__name__}).")
    return frame


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad to even height and width (H.264's yuv420p needs them)."""
    height, width = frame.shape[:2]
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


__all__ = ["ModelFileError", "PlaybackError", "evaluate_file", "load_model", "record_video"]
