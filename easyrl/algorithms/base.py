"""The off-policy base class: hyperparameters, building, the training loop, ``predict`` and saving.

An algorithm subclass adds its own hyperparameters (dataclass fields), names its policy type
(``OffPolicyAlgorithm[SACPolicy]``) and supplies ``_build_policy`` (its networks),
``_build_optimizers`` and ``_update(batch)`` (one gradient step, returning statistics as
tensors). Everything else -- env handling, replay, exploration, callbacks, saving (the file work is
in model_file.py and replay_file.py), scoring and logging (reporting.py) -- lives here once. What a
model counts and draws while training is one object, its :class:`TrainingState`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from easyrl import extractors
from easyrl import validation as v
from easyrl.algorithms import arithmetic, model_envs, model_file, replay_file, resets, sb3_import
from easyrl.algorithms.estimator import BuiltFrom, Estimator
from easyrl.algorithms.loop import TrainingLoop
from easyrl.algorithms.policies import PolicyAttributes, describe
from easyrl.algorithms.registry import register
from easyrl.algorithms.reporting import ReportingMixin
from easyrl.algorithms.training_state import FromTrainingState, TrainingState
from easyrl.blocks import CRITIC_OPTION_KEYS
from easyrl.buffers import ReplayBatch, ReplayBuffer, replay_buffer_class
from easyrl.envs import EnvLike, EnvStepper, VecNormalize, env_id_of, to_vector_env
from easyrl.envs.vec_env import VecEnv, unwrap_vec_env
from easyrl.logger import Logger, configure
from easyrl.networks import Policy
from easyrl.noise import ActionNoise
from easyrl.observations import Obs, ObsSpace, TensorObs, as_batch, to_tensor
from easyrl.serialization import PathOrFile

PolicyT = TypeVar("PolicyT", bound=Policy)

POLICY_NAMES = v.POLICY_NAMES
"""SB3 policy names accepted as the ``policy`` argument; each picks SB3's features extractor."""


@dataclass(repr=False, eq=False)
class OffPolicyAlgorithm(Estimator, TrainingLoop, ReportingMixin, PolicyAttributes, Generic[PolicyT]):
    """Base class of SAC, TD3 and DDPG; see each one's docstring for its parameters.

    Common parameters (SB3's names and defaults):
        env: env id, ``gymnasium.Env``, vector env, or a function returning an env.
        policy: None (the extractor is chosen from the observation space), SB3's ``"MlpPolicy"`` (flatten),
            ``"CnnPolicy"`` (NatureCNN, images), ``"MultiInputPolicy"`` (Dict), or those of ``easyrl.sac.policies``.
        learning_rate: Adam learning rate, a float, a function of the remaining progress (1 → 0),
            or rl-zoo's ``"lin_<value>"`` (linear decay to 0) or ``"constant_<value>"``.
        actor_learning_rate, critic_learning_rate: the actor's and the critics' own learning rates
            (same forms); None follows ``learning_rate``. DDPG's paper uses 1e-4 and 1e-3.
        buffer_size: replay capacity in transitions.
        replay_buffer_class: the replay buffer; None is :class:`~easyrl.buffers.ReplayBuffer`, which stores
            Box and Dict observations. ``HerReplayBuffer`` relabels goals in hindsight (goal-conditioned envs).
        replay_buffer_kwargs: the buffer's settings, e.g. ``dict(n_sampled_goal=4, goal_selection_strategy="future")``
            for HER.
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
        policy_kwargs: ``net_arch`` (list, or ``dict(pi=..., qf=...)``), ``activation_fn``, ``n_critics``,
            and SB3's ``features_extractor_class``, ``features_extractor_kwargs``, ``share_features_extractor``
            (False) and ``normalize_images`` (True); see ``easyrl.extractors``.
        n_envs: number of parallel envs built from ``env`` (ignored for a vector env).
        stats_window_size: episodes averaged in ``rollout/ep_rew_mean``.
        tensorboard_log: folder for TensorBoard (and CSV/JSON) logs; None for console only.
        seed: seed of every random generator the model owns; same seed, same run on CPU.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        verbose: 0 silent, 1 training tables, 2 debug messages.
        normalize: running normalisation of observations and rewards (rl-zoo's ``normalize``): True, or a
            dict of ``VecNormalize`` settings (``gamma`` defaults to the model's); saved with the model;
            ``predict`` then takes raw observations. SB3's way, a ``VecNormalize`` env, works too.
        compile_update: compile the networks with ``torch.compile`` (CUDA graphs on a GPU). Off by
            default: on CPU it measured slower than eager; see benchmarks/README.md.
        precision: ``"fp32"``, ``"bf16"`` (matrix products in bfloat16, weights and losses in float32)
            or ``"tf32"`` (CUDA); used for updates and acting. See ``easyrl.algorithms.arithmetic``.
    """

    # A descriptor default is how dataclasses support "argument in, built object out" fields.
    env: BuiltFrom[EnvLike | None, VectorEnv] = BuiltFrom()  # noqa: RUF009
    # EnvLike, since SB3's form SAC("MlpPolicy", env) passes the env second.
    policy: BuiltFrom[EnvLike | None, PolicyT] = BuiltFrom()  # noqa: RUF009
    _: KW_ONLY
    learning_rate: float | str | Callable[[float], float] = 3e-4
    actor_learning_rate: float | str | Callable[[float], float] | None = None
    critic_learning_rate: float | str | Callable[[float], float] | None = None
    buffer_size: int = 1_000_000
    replay_buffer_class: type[ReplayBuffer] | None = None
    replay_buffer_kwargs: dict[str, Any] | None = None
    learning_starts: int = 100
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.99
    n_steps: int = 1
    train_freq: int | tuple[int, str] = 1
    gradient_steps: int = 1
    action_noise: ActionNoise | None = None
    policy_kwargs: dict[str, Any] | str | None = None
    n_envs: int = 1
    stats_window_size: int = 100
    tensorboard_log: str | None = None
    seed: int | None = None
    # ``model.device`` is the torch.device the model was built on, as in SB3; get_params gives the argument.
    device: BuiltFrom[str | torch.device, torch.device] = BuiltFrom("auto")  # noqa: RUF009
    verbose: int = 0
    normalize: bool | dict[str, Any] | str = False
    compile_update: bool = False
    precision: str = "fp32"

    algorithm_name: ClassVar[str] = "OffPolicyAlgorithm"
    default_net_arch: ClassVar[list[int]] = [256, 256]
    policy_kwargs_keys: ClassVar[frozenset[str]] = frozenset(("net_arch", "activation_fn", "n_critics",
        "reset_interval", *extractors.POLICY_KWARGS_KEYS, *CRITIC_OPTION_KEYS))  # fmt: skip
    _setup_params: ClassVar[frozenset[str]] = frozenset(("env", "policy", "buffer_size", "replay_buffer_class",
        "replay_buffer_kwargs", "policy_kwargs", "n_envs", "seed", "device", "compile_update", "normalize"))  # fmt: skip

    # SB3's names for the training state's counters and buffers.
    num_timesteps = FromTrainingState("num_timesteps", 0)
    _n_updates = FromTrainingState("n_updates", 0)
    _episode_num = FromTrainingState("episode_num", 0)
    _total_timesteps = FromTrainingState("total_timesteps", 0)
    _last_obs = FromTrainingState("last_obs")
    ep_info_buffer = FromTrainingState("episode_stats")
    ep_success_buffer = FromTrainingState("success_stats")
    load_sb3 = sb3_import.LoadSB3()  # SB3's zips, imported without unpickling (sb3_import.py)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "algorithm_name" in cls.__dict__:  # a new algorithm, not a user's subclass of one
            register(cls, cls.algorithm_name)

    def __post_init__(self) -> None:
        # SB3's positional form SAC("MlpPolicy", env): the first argument names a policy.
        env_arg, policy_arg = self._param("env"), self._param("policy")
        if v.policy_name(env_arg) is not None and v.policy_name(policy_arg) is None:
            self.env, self.policy = policy_arg, env_arg
        self.logger: Logger = configure(format_strings=())
        self._custom_logger = False

    # ------------------------------------------------------------------ building
    def _constraints(self) -> dict[str, v.Constraint]:
        """Allowed values of each hyperparameter; subclasses add theirs."""
        schedule = v.AnyOf(
            (
                v.Interval(0, None, low_closed=False),
                v.Satisfies(callable, "a callable"),
                v.zoo_schedule(),
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
            "precision": v.Options(arithmetic.PRECISIONS),
            "normalize": v.Satisfies(
                lambda n: isinstance(n, bool | dict | str), "True, False or a dict of settings"
            ),
            "device": v.Satisfies(v.valid_device, "'auto', 'cpu', 'cuda', 'cuda:<index>' or a torch.device"),
        }

    def _validate_params(self) -> None:
        v.check_params(self.get_params(), self._constraints())
        self._check_combinations()
        resets.reset_interval(v.policy_kwargs(self.policy_kwargs))
        v.parse_train_freq(self.train_freq)
        self._replay_buffer_type()

    def _replay_buffer_type(self) -> type[ReplayBuffer]:
        return replay_buffer_class(self.replay_buffer_class, self.replay_buffer_kwargs, self.n_steps)

    def _check_combinations(self) -> None:
        """Raise ValueError for settings that are valid alone but not together; subclasses add theirs."""

    def _setup(self, stand_in_env: VectorEnv | None = None) -> None:
        """Validate the parameters and build env, networks, buffer and generators (once).

        ``stand_in_env`` serves when ``env`` is None: the envs of a model loaded without one."""
        if self._is_setup:
            return
        self._validate_params()
        if self._param("policy") is not None and v.policy_name(self._param("policy")) is None:
            raise ValueError(
                f"policy={self._param('policy')!r} is not supported; leave it out (easyrl chooses from the space) "
                f"or pass one of {POLICY_NAMES}."
            )
        v.check_keys(v.policy_kwargs(self.policy_kwargs).keys(), self.policy_kwargs_keys, "policy_kwargs")
        self._device = v.resolve_device(self._param("device"))
        arithmetic.check(self.precision, self._device)
        self.__dict__["_built_device"] = self._device
        env_arg = self._param("env")
        source = env_arg if env_arg is not None else stand_in_env
        if source is None:
            raise ValueError(
                f"{self.algorithm_name} needs an env: pass an env id, a gymnasium.Env or a factory."
            )
        vec_env = to_vector_env(source, self.n_envs, autoreset=False)  # EnvStepper resets, from seeds
        self.observation_space, self.action_space = v.supported_spaces(vec_env, self.algorithm_name)
        self.env_id = env_id_of(env_arg)
        self.num_envs = vec_env.num_envs
        if self.action_noise is not None and self.action_noise.shape != self.action_space.shape:
            raise ValueError(
                f"action_noise has shape {self.action_noise.shape}, but the action space needs noise of shape "
                f"{self.action_space.shape}: create it with mean and sigma of that shape, e.g. "
                f"NormalActionNoise(np.zeros({self.action_space.shape}), 0.1 * np.ones({self.action_space.shape}))."
            )
        self.training_state, network_seed = TrainingState.create(
            self.seed, self._device, self.num_envs, self.action_noise, self.stats_window_size
        )
        self._stepper = EnvStepper(vec_env, self.training_state.episode_seeds)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(network_seed)
            policy = self._build_policy(
                self.observation_space, self.action_dim, v.policy_kwargs(self.policy_kwargs)
            )
        self.__dict__["_built_policy"] = describe(policy, self).to(self._device)
        self.__dict__["_built_env"] = vec_env
        self._build_optimizers()
        if self.compile_update:
            arithmetic.compile_networks(self._policy, self._device)
        model_envs.attach_env(self, source)
        self.replay_buffer = self._replay_buffer_type()(
            self.buffer_size, self.observation_space, self.action_dim, self.num_envs, self._device,
            **(self.replay_buffer_kwargs or {}),
        )  # fmt: skip
        if env_arg is not None:  # a stand-in env has nothing to give the buffer
            self.replay_buffer.attach_env(vec_env)
        self._is_setup = True

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.action_space.shape))

    def _build_policy(self, space: ObsSpace, action_dim: int, policy_kwargs: dict[str, Any]) -> PolicyT:
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

    # ------------------------------------------------------------------ acting
    def _obs_tensor(self, obs: Obs) -> TensorObs:
        """A raw observation batch on the training device, normalised if the model normalises (the
        networks convert it from its storage dtype)."""
        return to_tensor(
            obs if self._normalizer is None else self._normalizer.normalize_obs(obs), self._device
        )

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
        normalized: bool | None = None,
        precision: str | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Actions for one observation or a batch, in the env's action bounds.

        Returns ``(action, state)`` as SB3 does; ``state`` is passed through (these policies
        have no recurrent state). One observation of shape ``observation_space.shape`` gives one
        action of shape ``action_space.shape``; a batch (n, ...) gives (n, ...).

        For a model that normalises its observations, ``predict`` takes them as its env gives them:
        normalised from a ``VecNormalize`` env (SB3's way), raw otherwise, with no env attached or after
        ``normalize=...``. ``normalized=True`` or ``False`` says which, whatever the env. ``precision``
        (default: the model's) computes the actions in another one, e.g. ``"fp32"`` for a bf16 model.
        """
        self._setup()
        obs, single = as_batch(observation, self.observation_space)
        already = self._env_normalizes if normalized is None else normalized
        if precision is not None:
            arithmetic.check(precision, self._device)
        with torch.inference_mode(), arithmetic.computing(precision or self.precision, self._device):
            tensor = to_tensor(obs, self._device) if already else self._obs_tensor(obs)
            scaled = self._policy.act(tensor, deterministic, self.training_state.predict_rng)
        actions = self._unscale(scaled.cpu().numpy())
        return (actions[0] if single else actions), state

    @property
    def _policy(self) -> PolicyT:
        """The built policy, without the building check of ``policy`` (for the hot path)."""
        policy: PolicyT = self.__dict__["_built_policy"]
        return policy

    def _unscale(self, scaled: np.ndarray) -> np.ndarray:
        low, high = self.action_space.low, self.action_space.high
        actions = low + (scaled.reshape(-1, *self.action_space.shape) + 1.0) * 0.5 * (high - low)
        return np.clip(actions, low, high).astype(self.action_space.dtype, copy=False)

    # ------------------------------------------------------------------ envs
    def get_env(self) -> VecEnv:
        """The training envs behind SB3's ``VecEnv`` interface (the ``VecEnv`` given, if one was)."""
        self._setup()
        return model_envs.model_vec_env(self)

    def get_vec_normalize_env(self) -> VecNormalize | None:
        """The ``VecNormalize`` the model trains on, if any (SB3's name; ``normalize=`` makes none)."""
        return unwrap_vec_env(self.get_env(), VecNormalize)

    def set_env(self, env: EnvLike) -> None:
        """Train on ``env`` from now on (same spaces and number of envs); its episodes start afresh.

        A model loaded without an env continues exactly where its file left off, when it can.
        """
        model_envs.replace_env(self, env)

    def _resume_envs(self) -> None:
        """Put the envs where a checkpoint left them (``resume_obs``): exactly, at an episode boundary."""
        model_envs.resume_envs(self)

    # ------------------------------------------------------------------ files
    def save(self, path: PathOrFile) -> Path | None:
        """Write the model to one zip file, atomically; returns its path (``.zip`` is added if missing).

        The file holds the parameters as JSON and the weights, optimizer states and training state
        needed to continue training exactly; loading it runs no code from it. The env object and the
        replay buffer (``save_replay_buffer``) are not in it. Given an open binary file instead of a
        path, writes to it and returns None.
        """
        return model_file.save_model(self, path)

    @classmethod
    def load(
        cls,
        path: PathOrFile,
        env: EnvLike | None = None,
        device: str | torch.device = "auto",
        custom_objects: Mapping[str, Any] | None = None,
        trusted_pickles: Iterable[str] | bool = (),
        **overrides: Any,
    ) -> Self:
        """A model saved by ``save``, on ``device``, ready to predict and to continue training.

        ``easyrl.load`` reads a file of any algorithm (the file names it); ``SAC.load`` only SAC's.
        Args:
            env: the env to continue training on; by default the env id saved with the model (a model
                built from an env object must be given one here or with ``set_env`` to train).
            custom_objects: replacements for parameters, by name; the way to supply a value the file
                holds only as a pickle (a callable schedule, say) without unpickling it.
            trusted_pickles: names of pickled parameters to unpickle (or True for all): only for
                files you trust, since unpickling can run any code.
            overrides: constructor parameters to change, e.g. ``learning_starts=0``.
        """
        return model_file.load_model(cls, path, env, device, custom_objects, trusted_pickles, overrides)

    def get_parameters(self) -> dict[str, dict[str, Any]]:
        """The state dicts of the policy (``"policy"``), each optimizer and learned variables, by name."""
        return model_file.get_parameters(self)

    def set_parameters(
        self, load_path_or_dict: PathOrFile | Mapping[str, Any], exact_match: bool = True
    ) -> None:
        """Load state dicts from ``get_parameters()`` or from a saved model file (its weights only).

        With ``exact_match=False`` a subset of the groups, and of the policy's entries, may be given.
        """
        model_file.set_parameters(self, load_path_or_dict, exact_match)

    def save_replay_buffer(self, path: PathOrFile) -> Path | None:
        """Write the replay buffer to its own zip of ``.npy`` arrays (no pickles), atomically; returns its path."""
        return replay_file.save_replay_buffer(self, path)

    def load_replay_buffer(self, path: PathOrFile) -> None:
        """Fill the replay buffer from a file of ``save_replay_buffer`` (same buffer_size and spaces)."""
        replay_file.load_replay_buffer(self, path)
