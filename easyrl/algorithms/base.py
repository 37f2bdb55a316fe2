"""The off-policy base class: hyperparameters, building, the training loop and ``predict``.

An algorithm subclass adds its own hyperparameters (dataclass fields) and supplies three
things: ``_build_policy`` (its networks), ``_build_optimizers`` and ``_update(batch)`` (one
gradient step, returning statistics as tensors). Everything else -- env handling, replay,
exploration, callbacks, and (through the mixins in persistence.py and reporting.py) saving,
scoring and logging -- lives here once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from easyrl import _validation as v
from easyrl.algorithms.checks import check_spaces, parse_train_freq, resolve_device, valid_device
from easyrl.algorithms.estimator import BuiltFrom, Estimator
from easyrl.algorithms.persistence import SaveLoadMixin
from easyrl.algorithms.reporting import ReportingMixin
from easyrl.buffers import ReplayBatch, ReplayBuffer
from easyrl.callbacks import BaseCallback, CallbackLike, StepData, make_callback
from easyrl.envs import EnvLike, EnvStepper, env_id_of, make_vec_env
from easyrl.logger import Logger, configure
from easyrl.networks import Policy
from easyrl.noise import ActionNoise, VectorizedActionNoise
from easyrl.schedules import Schedule, make_schedule

POLICY_NAMES = ("MlpPolicy",)
"""SB3 policy names accepted as the ``policy`` argument (easyrl infers the policy anyway)."""


@dataclass(repr=False, eq=False)
class OffPolicyAlgorithm(Estimator, SaveLoadMixin, ReportingMixin):
    """Base class of SAC, TD3 and DDPG; see each one's docstring for its parameters.

    Common parameters (SB3's names and defaults):
        env: env id, ``gymnasium.Env``, vector env, or a function returning an env.
        policy: optional; ``"MlpPolicy"`` is accepted for SB3 compatibility (``SAC("MlpPolicy", env)``).
        learning_rate: Adam learning rate, a float, a function of the remaining progress (1 → 0),
            or rl-zoo's ``"lin_<value>"`` for a linear decay to 0.
        actor_learning_rate, critic_learning_rate: the actor's and the critics' own learning rates
            (same forms); None follows ``learning_rate``. DDPG's paper uses 1e-4 and 1e-3.
        buffer_size: replay capacity in transitions.
        learning_starts: env steps of uniform random actions before training starts.
        batch_size: transitions per gradient step.
        tau: Polyak coefficient of the target networks, in (0, 1].
        gamma: discount factor, in [0, 1].
        n_steps: length n of the n-step returns the critics regress to (1: one-step targets, SB3's
            ``n_steps``): r_t + γ r_{t+1} + ... + γ^(k-1) r_{t+k-1} + γ^k (1 − terminated) V(s_{t+k}),
            k = n, or fewer where the episode ends (terminated or truncated) inside the window.
        train_freq: train every ``n`` env steps, or ``(n, "step" | "episode")``.
        gradient_steps: gradient steps per env step of each env (-1: as many as steps collected).
        action_noise: exploration noise added to actions (see ``easyrl.noise``).
        policy_kwargs: ``net_arch`` (list, or ``dict(pi=..., qf=...)``), ``activation_fn``, ``n_critics``.
        n_envs: number of parallel envs built from ``env`` (ignored for a vector env).
        stats_window_size: episodes averaged in ``rollout/ep_rew_mean``.
        tensorboard_log: folder for TensorBoard (and CSV/JSON) logs; None for console only.
        seed: seed of every random generator the model owns; same seed, same run on CPU.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        verbose: 0 silent, 1 training tables, 2 debug messages.
        compile_update: compile the networks with ``torch.compile`` (CUDA graphs on a GPU). Off by
            default: on CPU it measured slower than eager; see benchmarks/README.md.
    """

    # A descriptor default is how dataclasses support "argument in, built object out" fields.
    env: BuiltFrom[EnvLike | None, VectorEnv] = BuiltFrom()  # noqa: RUF009
    policy: BuiltFrom[str | None, Policy] = BuiltFrom()  # noqa: RUF009
    _: KW_ONLY
    learning_rate: float | str | Callable[[float], float] = 3e-4
    actor_learning_rate: float | str | Callable[[float], float] | None = None
    critic_learning_rate: float | str | Callable[[float], float] | None = None
    buffer_size: int = 1_000_000
    learning_starts: int = 100
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.99
    n_steps: int = 1
    train_freq: int | tuple[int, str] = 1
    gradient_steps: int = 1
    action_noise: ActionNoise | None = None
    policy_kwargs: dict[str, Any] | None = None
    n_envs: int = 1
    stats_window_size: int = 100
    tensorboard_log: str | None = None
    seed: int | None = None
    device: str | torch.device = "auto"
    verbose: int = 0
    compile_update: bool = False

    algorithm_name: ClassVar[str] = "OffPolicyAlgorithm"
    default_net_arch: ClassVar[list[int]] = [256, 256]
    policy_kwargs_keys: ClassVar[frozenset[str]] = frozenset({"net_arch", "activation_fn", "n_critics"})
    _setup_params: ClassVar[frozenset[str]] = frozenset(
        {"env", "policy", "buffer_size", "policy_kwargs", "n_envs", "seed", "device", "compile_update"}
    )

    def __post_init__(self) -> None:
        # SB3's positional form SAC("MlpPolicy", env): the first argument names a policy.
        env_arg, policy_arg = self._param("env"), self._param("policy")
        if isinstance(env_arg, str) and env_arg in POLICY_NAMES and policy_arg not in POLICY_NAMES:
            self.env, self.policy = policy_arg, env_arg
        self.num_timesteps = 0
        self.logger: Logger = configure(format_strings=())

    # ------------------------------------------------------------------ building
    def _constraints(self) -> dict[str, v.Constraint]:
        """Allowed values of each hyperparameter; subclasses add theirs."""
        schedule = v.AnyOf(
            (
                v.Interval(0, None, low_closed=False),
                v.Satisfies(callable, "a callable"),
                v.Satisfies(lambda s: s.startswith("lin_") and float(s[4:]) > 0, "'lin_<value>'"),
            )
        )
        follow_learning_rate = v.Satisfies(lambda rate: rate is None, "None (to follow learning_rate)")
        return {
            "learning_rate": schedule,
            "actor_learning_rate": v.AnyOf((schedule, follow_learning_rate)),
            "critic_learning_rate": v.AnyOf((schedule, follow_learning_rate)),
            "buffer_size": v.positive_int(),
            "learning_starts": v.non_negative_int(),
            "batch_size": v.positive_int(),
            "tau": v.Interval(0, 1, low_closed=False),
            "gamma": v.Interval(0, 1),
            "n_steps": v.positive_int(),
            "gradient_steps": v.AnyOf((v.non_negative_int(), v.Options((-1,)))),
            "n_envs": v.positive_int(),
            "stats_window_size": v.positive_int(),
            "verbose": v.Options((0, 1, 2)),
            "compile_update": v.Options((False, True)),
            "device": v.Satisfies(valid_device, "'auto', 'cpu', 'cuda', 'cuda:<index>' or a torch.device"),
        }

    def _validate_params(self) -> None:
        v.check_params(self.get_params(), self._constraints())
        self._check_combinations()
        parse_train_freq(self.train_freq)

    def _check_combinations(self) -> None:
        """Raise ValueError for settings that are valid alone but not together; subclasses add theirs."""

    def _setup(self) -> None:
        """Validate the parameters and build env, networks, buffer and generators (once)."""
        if self._is_setup:
            return
        self._validate_params()
        if self._param("policy") not in (None, *POLICY_NAMES):
            raise ValueError(
                f"policy={self._param('policy')!r} is not supported; leave it out (easyrl infers the policy) "
                f"or pass one of {POLICY_NAMES}."
            )
        v.check_keys((self.policy_kwargs or {}).keys(), self.policy_kwargs_keys, "policy_kwargs")
        self._device = resolve_device(self.device)
        env_arg = self._param("env")
        if env_arg is None:
            raise ValueError(
                f"{self.algorithm_name} needs an env: pass an env id, a gymnasium.Env or a factory."
            )
        vec_env = make_vec_env(env_arg, self.n_envs, autoreset=False)  # EnvStepper resets, from seeds
        self.observation_space, self.action_space = check_spaces(vec_env, self.algorithm_name)
        self.env_id = env_id_of(env_arg)
        self.num_envs = vec_env.num_envs
        self._stepper = EnvStepper(vec_env)

        seeds = np.random.SeedSequence(self.seed).generate_state(5)
        self._seed_used = self.seed if self.seed is not None else int(seeds[0])
        self._np_rng = np.random.default_rng(seeds[1])
        self._torch_rng = torch.Generator(device=self._device).manual_seed(int(seeds[2]))
        self._predict_rng = torch.Generator(device=self._device).manual_seed(int(seeds[3]))
        self._env_seed: int | None = int(seeds[4])
        self._noise = (
            VectorizedActionNoise(self.action_noise, self.num_envs, int(seeds[4]))
            if self.action_noise is not None else None
        )  # fmt: skip
        if self._noise is not None and self._noise.base.shape != self.action_space.shape:
            raise ValueError(
                f"action_noise has shape {self._noise.base.shape}, but the action space needs noise of shape "
                f"{self.action_space.shape}: create it with mean and sigma of that shape, e.g. "
                f"NormalActionNoise(np.zeros({self.action_space.shape}), 0.1 * np.ones({self.action_space.shape}))."
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seeds[0]))
            policy = self._build_policy(self.obs_dim, self.action_dim, dict(self.policy_kwargs or {}))
        self.__dict__["_built_policy"] = policy.to(self._device)
        self.__dict__["_built_env"] = vec_env
        self._build_optimizers()
        if self.compile_update:
            self._compile_networks()
        self.replay_buffer = ReplayBuffer(
            self.buffer_size, self.observation_space, self.action_dim, self.num_envs, self._device
        )
        self._n_updates = 0
        self._episode_num = 0
        self._last_obs: np.ndarray | None = None
        self._total_timesteps = 0
        self.ep_info_buffer: deque[tuple[float, int]] = deque(maxlen=self.stats_window_size)
        self._is_setup = True

    def _compile_networks(self) -> None:
        """The one place the speed-up switch acts: compile every network of the policy in place.

        Each network is compiled on its own (``nn.Module.compile``), so parameter names, the
        optimizers and the Python control flow of the updates (delays, intervals) are unchanged;
        on a GPU, ``mode="reduce-overhead"`` replays the compiled kernels as CUDA graphs.
        """
        mode = "reduce-overhead" if self._device.type == "cuda" else None
        for network in self._built_policy_module.children():
            network.compile(mode=mode)

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.observation_space.shape))

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.action_space.shape))

    def _net_arch(self, kwargs: Mapping[str, Any], part: str) -> list[int]:
        """Hidden layer widths for ``part`` ("pi" or "qf") from ``policy_kwargs["net_arch"]``."""
        arch = kwargs.get("net_arch", self.default_net_arch)
        if isinstance(arch, dict):
            v.check_keys(arch.keys(), {"pi", "qf"}, "policy_kwargs['net_arch']")
            arch = arch.get(part, self.default_net_arch)
        if not (isinstance(arch, (list, tuple)) and all(isinstance(w, int) and w > 0 for w in arch)):
            raise ValueError(
                f"policy_kwargs['net_arch']={kwargs.get('net_arch')!r} is invalid: use a list of positive layer "
                "widths such as [256, 256], or dict(pi=[...], qf=[...])."
            )
        return list(arch)

    def _build_policy(self, obs_dim: int, action_dim: int, policy_kwargs: dict[str, Any]) -> Policy:
        raise NotImplementedError

    def _build_optimizers(self) -> None:
        """Create the optimizers; the actor's is ``actor_optimizer``, the critics' ``critic_optimizer``."""
        raise NotImplementedError

    def _update(self, batch: ReplayBatch) -> dict[str, torch.Tensor]:
        """One gradient step on ``batch``; returns statistics as (device) tensors."""
        raise NotImplementedError

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        """Every optimizer, each of whose learning rates ``_train`` sets from its schedule."""
        raise NotImplementedError

    def _learning_rate_schedules(self) -> dict[torch.optim.Optimizer, Schedule]:
        """Each optimizer's schedule: ``learning_rate``, unless the actor's or critics' own rate is set."""
        schedules = dict.fromkeys(self._optimizers(), make_schedule(self.learning_rate))
        for name, rate in (
            ("actor_optimizer", self.actor_learning_rate),
            ("critic_optimizer", self.critic_learning_rate),
        ):
            if rate is not None:
                schedules[getattr(self, name)] = make_schedule(rate)
        return schedules

    # ------------------------------------------------------------------ acting
    def _check_observation(self, observation: Any) -> tuple[np.ndarray, bool]:
        obs = np.asarray(observation)
        shape = tuple(self.observation_space.shape)
        if obs.shape == shape:
            return obs[None], True
        if obs.ndim == len(shape) + 1 and obs.shape[1:] == shape:
            return obs, False
        raise ValueError(
            f"Observation has shape {obs.shape}, but this model expects {shape} for one observation "
            f"or (n, {', '.join(map(str, shape))}) for a batch of n."
        )

    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, device=self._device).float().reshape(obs.shape[0], -1)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Actions for one observation or a batch, in the env's action bounds.

        Returns ``(action, state)`` as SB3 does; ``state`` is passed through (these policies
        have no recurrent state). One observation of shape ``observation_space.shape`` gives one
        action of shape ``action_space.shape``; a batch (n, ...) gives (n, ...).
        """
        self._setup()
        obs, single = self._check_observation(observation)
        with torch.inference_mode():
            scaled = self._built_policy_module.act(self._obs_tensor(obs), deterministic, self._predict_rng)
        actions = self._unscale(scaled.cpu().numpy())
        return (actions[0] if single else actions), state

    @property
    def _built_policy_module(self) -> Policy:
        policy: Policy = self.__dict__["_built_policy"]
        return policy

    def _unscale(self, scaled: np.ndarray) -> np.ndarray:
        low, high = self.action_space.low, self.action_space.high
        actions = low + (scaled.reshape(-1, *self.action_space.shape) + 1.0) * 0.5 * (high - low)
        return np.clip(actions, low, high).astype(self.action_space.dtype, copy=False)

    def _exploration_actions(self) -> np.ndarray:
        """Actions in [-1, 1] for the next step: uniform during warm-up, then the policy's, plus noise."""
        assert self._last_obs is not None
        if self.num_timesteps < self.learning_starts:
            scaled = self._np_rng.uniform(-1.0, 1.0, size=(self.num_envs, self.action_dim))
        else:
            with torch.no_grad():
                obs = self._obs_tensor(np.asarray(self._last_obs))
                scaled = self._built_policy_module.act(obs, False, self._torch_rng).cpu().numpy()
        if self._noise is not None:
            scaled = np.clip(scaled + self._noise().reshape(self.num_envs, -1), -1.0, 1.0)
        return scaled.astype(np.float32)

    # ------------------------------------------------------------------ training
    def learn(
        self,
        total_timesteps: int,
        callback: CallbackLike = None,
        log_interval: int | None = 4,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> OffPolicyAlgorithm:
        """Train for ``total_timesteps`` env steps (counted over all envs); returns ``self``.

        ``log_interval`` is in episodes; ``reset_num_timesteps=False`` continues the step count
        (and the episode in progress) of an earlier ``learn``.
        """
        if not isinstance(total_timesteps, int) or isinstance(total_timesteps, bool) or total_timesteps < 0:
            raise ValueError(f"total_timesteps={total_timesteps!r} is invalid: it must be an integer >= 0.")
        self._setup()
        self._train_frequency = parse_train_freq(self.train_freq)  # may have changed since the last learn
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._episode_num = 0
            self.ep_info_buffer.clear()
        if reset_num_timesteps or self._last_obs is None:
            if self._last_obs is not None:
                # The episodes in progress end here: their newest transitions keep their true next obs.
                self.replay_buffer.close_episodes(self._last_obs)
            self._last_obs = self._stepper.reset(seed=self._env_seed)
            self._env_seed = None  # seeds the episode seeds' generator once; later resets continue it
            if self._noise is not None:
                self._noise.reset(np.arange(self.num_envs))
        self._total_timesteps = total_timesteps + self.num_timesteps
        self._start_time = time.perf_counter()
        self._start_timesteps = self.num_timesteps
        self._configure_logger(tb_log_name, reset_num_timesteps)

        callback_obj = make_callback(callback, progress_bar)
        callback_obj.init_callback(self)
        callback_obj.on_training_start(locals(), globals())
        try:
            while self.num_timesteps < self._total_timesteps:
                steps, keep_going = self._collect_rollout(callback_obj, log_interval)
                if not keep_going:
                    break
                if self.num_timesteps > self.learning_starts and self.replay_buffer.n_sampleable > 0:
                    updates = self.gradient_steps * self.num_envs if self.gradient_steps >= 0 else steps
                    self._train(updates)
        finally:
            callback_obj.on_training_end()
            if not getattr(self, "_custom_logger", False):
                self.logger.close()  # the files of the logger this learn() built; set_logger's stays open
        return self

    def _collect_rollout(self, callback: BaseCallback, log_interval: int | None) -> tuple[int, bool]:
        """Step the envs until the train frequency is reached; returns (transitions, keep going)."""
        callback.on_rollout_start()
        steps = episodes = 0
        frequency, unit = self._train_frequency
        while (steps // self.num_envs if unit == "step" else episodes) < frequency:
            if self.num_timesteps >= self._total_timesteps:
                break
            scaled = self._exploration_actions()
            env_actions = self._unscale(scaled)
            result = self._stepper.step(env_actions)
            self.num_timesteps += self.num_envs
            steps += self.num_envs
            assert self._last_obs is not None
            callback.update_step(StepData(
                observations=self._last_obs, actions=env_actions, rewards=result.rewards, new_obs=result.obs,
                next_obs=result.next_obs, terminated=result.terminated, truncated=result.truncated,
                infos=result.infos,
            ))  # fmt: skip
            self.replay_buffer.add(
                self._last_obs, scaled, result.rewards, result.next_obs,
                result.terminated, result.truncated, result.valid,
            )  # fmt: skip
            self._last_obs = result.obs
            self.ep_info_buffer.extend(zip(result.episode_returns, result.episode_lengths, strict=True))
            ended = np.flatnonzero(result.dones)
            if ended.size:
                episodes += ended.size
                if self._noise is not None:
                    self._noise.reset(ended)
                for _ in range(ended.size):
                    self._episode_num += 1
                    if log_interval is not None and self._episode_num % log_interval == 0:
                        self._dump_logs()
            if not callback.on_step():
                callback.on_rollout_end()
                return steps, False
        callback.on_rollout_end()
        return steps, True

    def _train(self, gradient_steps: int) -> None:
        progress_remaining = 1.0 - self.num_timesteps / max(self._total_timesteps, 1)
        for optimizer, schedule in self._learning_rate_schedules().items():
            rate = schedule(progress_remaining)
            for group in optimizer.param_groups:
                group["lr"] = rate
        for _ in range(gradient_steps):
            batch = self.replay_buffer.sample(
                self.batch_size, self._torch_rng, gamma=self.gamma, n_steps=self.n_steps
            )
            stats = self._update(batch)
            self._n_updates += 1
            for key, value in stats.items():
                self.logger.record_mean(f"train/{key}", value)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/learning_rate", make_schedule(self.learning_rate)(progress_remaining))
