"""Features extractors chosen from the observation space (SB3's): flatten, NatureCNN, combined for Dicts.

The envs are tiny in-test ones: random uint8 images, a Dict of an image and a vector, a small vector env
whose frames are stacked. Models train for a few steps only, to show the pieces fit together.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from easyrl import DDPG, SAC, TD3
from easyrl.extractors import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    Preprocessor,
    is_image_space,
)
from easyrl.serialization import ModelFileError, decode_params, encode_params, read_metadata
from easyrl.updates import gradient_step

TINY: dict[str, Any] = dict(learning_starts=8, batch_size=4, buffer_size=64, device="cpu", seed=0)


class RandomEnv(gym.Env[Any, np.ndarray]):
    """Observations drawn from ``observation_space``; reward = first action; 8-step episodes."""

    def __init__(self, observation_space: gym.Space[Any]) -> None:
        self.observation_space = observation_space
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        return self.observation_space.sample(), float(action[0]), False, self.t >= 8, {}


def image_space(shape: tuple[int, ...] = (36, 36, 3)) -> gym.spaces.Box:
    return gym.spaces.Box(0, 255, shape, np.uint8)


def dict_space() -> gym.spaces.Dict:
    return gym.spaces.Dict(
        {"image": image_space((36, 36, 1)), "vector": gym.spaces.Box(-1.0, 1.0, (3,), np.float32)}
    )


def image_env(shape: tuple[int, ...] = (36, 36, 3)) -> RandomEnv:
    return RandomEnv(image_space(shape))


def fake_batch(space: gym.Space[Any], n: int = 5) -> Any:
    """n observations of ``space`` as the replay buffer returns them (storage dtypes)."""
    space.seed(1)
    samples = [space.sample() for _ in range(n)]
    if isinstance(space, gym.spaces.Dict):
        return {key: torch.as_tensor(np.stack([s[key] for s in samples])) for key in space.spaces}
    return torch.as_tensor(np.stack(samples))


def policy_of(estimator: type[Any], space: gym.Space[Any], **kwargs: Any) -> Any:
    model = estimator(RandomEnv(space), **{**TINY, **kwargs})
    model._setup()
    return model


# ---------------------------------------------------------------------------------------------- extractors
def test_flatten_extractor_flattens_any_box() -> None:
    stacked = gym.spaces.Box(-1.0, 1.0, (3, 3), np.float32)
    extractor = FlattenExtractor(stacked)
    assert extractor.features_dim == 9 and not list(extractor.parameters())
    assert extractor(torch.zeros(4, 3, 3)).shape == (4, 9)
    flat = torch.zeros(4, 7)
    assert FlattenExtractor(gym.spaces.Box(-1.0, 1.0, (7,))).forward(flat) is flat  # no work


@pytest.mark.parametrize("shape", [(36, 36, 3), (3, 36, 36), (48, 40, 1), (4, 64, 64)])
def test_nature_cnn_gives_features_dim_features(shape: tuple[int, ...]) -> None:
    for features_dim in (512, 32):
        cnn = NatureCNN(image_space(shape), features_dim=features_dim)
        out = cnn(torch.rand(2, *shape))
        assert cnn.features_dim == features_dim and out.shape == (2, features_dim)
        assert (out >= 0).all()  # ends with a ReLU
    assert [name for name, _ in cnn.named_parameters()][:2] == ["cnn.0.weight", "cnn.0.bias"]


def test_nature_cnn_reads_channels_last_as_channels_first() -> None:
    torch.manual_seed(0)
    hwc, chw = NatureCNN(image_space((40, 36, 3))), NatureCNN(image_space((3, 40, 36)))
    assert hwc.channels_first is False and chw.channels_first is True
    chw.load_state_dict(hwc.state_dict())  # same parameter shapes
    images = torch.rand(3, 40, 36, 3)
    torch.testing.assert_close(hwc(images), chw(images.permute(0, 3, 1, 2)))


def test_combined_extractor_concatenates_each_keys_features() -> None:
    space = dict_space()
    combined = CombinedExtractor(space)
    assert isinstance(combined.extractors["image"], NatureCNN)
    assert isinstance(combined.extractors["vector"], FlattenExtractor)
    assert combined.features_dim == 256 + 3
    assert CombinedExtractor(space, cnn_output_dim=16).features_dim == 16 + 3
    batch = Preprocessor(space)(fake_batch(space))
    assert combined(batch).shape == (5, 259)


def test_is_image_space() -> None:
    assert is_image_space(image_space()) and is_image_space(image_space((1, 40, 40)))
    assert not is_image_space(gym.spaces.Box(0.0, 1.0, (36, 36, 3), np.float32))
    assert is_image_space(gym.spaces.Box(0.0, 1.0, (36, 36, 3), np.float32), normalized_image=True)
    assert not is_image_space(gym.spaces.Box(0, 10, (36, 36, 3), np.uint8))
    assert not is_image_space(gym.spaces.Box(0, 255, (36, 36), np.uint8))
    assert is_image_space(image_space((36, 36, 5)))
    assert not is_image_space(image_space((36, 36, 5)), check_channels=True)
    assert not is_image_space(dict_space())


def test_preprocessing_scales_images_only_when_asked() -> None:
    images = torch.full((2, 36, 36, 3), 255, dtype=torch.uint8)
    scaled = Preprocessor(image_space())(images)
    assert isinstance(scaled, torch.Tensor) and scaled.dtype == torch.float32
    torch.testing.assert_close(scaled, torch.ones(2, 36, 36, 3))
    unscaled = Preprocessor(image_space(), normalize_images=False)(images)
    torch.testing.assert_close(unscaled, torch.full((2, 36, 36, 3), 255.0))
    counts = Preprocessor(gym.spaces.Box(0, 255, (4,), np.uint8))(torch.full((2, 4), 7, dtype=torch.uint8))
    torch.testing.assert_close(counts, torch.full((2, 4), 7.0))  # not an image: converted, not scaled
    space = dict_space()
    both = Preprocessor(space)(fake_batch(space))
    assert isinstance(both, dict) and float(both["image"].max()) <= 1.0
    assert all(value.dtype == torch.float32 for value in both.values())


def test_normalize_images_reaches_the_networks(estimator: type[Any]) -> None:
    obs = torch.full((1, 36, 36, 3), 255, dtype=torch.uint8)
    scaled = policy_of(estimator, image_space())._policy.actor
    unscaled = policy_of(estimator, image_space(), policy_kwargs=dict(normalize_images=False))._policy.actor
    unscaled.load_state_dict(scaled.state_dict())
    torch.testing.assert_close(scaled.extract_features(obs), unscaled.extract_features(obs / 255.0))


# ---------------------------------------------------------------------------------------------- choosing
@pytest.mark.parametrize(
    ("space", "policy", "expected"),
    [
        (gym.spaces.Box(-1.0, 1.0, (5,), np.float32), None, FlattenExtractor),
        (gym.spaces.Box(-1.0, 1.0, (3, 3), np.float32), "MlpPolicy", FlattenExtractor),
        (image_space(), None, NatureCNN),
        (image_space((1, 40, 40)), "CnnPolicy", NatureCNN),
        (image_space(), "MlpPolicy", FlattenExtractor),
        (image_space((36, 36, 5)), None, FlattenExtractor),  # no 1/3/4 channel axis: not taken for an image
        (dict_space(), None, CombinedExtractor),
        (dict_space(), "MlpPolicy", CombinedExtractor),
        (dict_space(), "MultiInputPolicy", CombinedExtractor),
    ],
)
def test_the_extractor_is_chosen_from_the_space_and_the_policy_name(
    estimator: type[Any], space: gym.Space[Any], policy: str | None, expected: type[nn.Module]
) -> None:
    policy_net = policy_of(estimator, space, policy=policy)._policy
    assert type(policy_net.actor.features_extractor) is expected
    assert type(policy_net.critic.features_extractor) is expected


def test_float_images_in_unit_range_take_the_cnn_with_normalize_images_false() -> None:
    space = gym.spaces.Box(0.0, 1.0, (3, 36, 36), np.float32)
    model = policy_of(SAC, space, policy="CnnPolicy", policy_kwargs=dict(normalize_images=False))
    assert isinstance(model._policy.actor.features_extractor, NatureCNN)
    assert model.predict(space.sample())[0].shape == (2,)


@pytest.mark.parametrize(
    ("space", "policy", "message"),
    [
        (
            gym.spaces.Box(-1.0, 1.0, (5,)),
            "MultiInputPolicy",
            "for Dict observation spaces.*'MlpPolicy'.*'CnnPolicy'",
        ),
        (
            gym.spaces.Box(-1.0, 1.0, (5,)),
            "CnnPolicy",
            r"not 3-D.*uint8 in \[0, 255\].*normalize_images=False",
        ),
        (
            gym.spaces.Box(0.0, 1.0, (36, 36, 3)),
            "CnnPolicy",
            "dtype is float32, not uint8.*normalize_images=False",
        ),
        (gym.spaces.Box(0, 9, (36, 36, 3), np.uint8), "CnnPolicy", r"bounds are \[0, 9\], not \[0, 255\]"),
        (image_space((36, 36, 5)), "CnnPolicy", "no channel axis of 1, 3 or 4"),
        (image_space((20, 20, 3)), "CnnPolicy", "at least 36×36.*20×20.*ResizeObservation"),
        (image_space((20, 20, 3)), None, "at least 36×36"),
        (dict_space(), "CnnPolicy", "'MultiInputPolicy'"),
        (image_space(), "DQNPolicy", "policy='DQNPolicy' is not supported.*MultiInputPolicy"),
    ],
)
def test_a_policy_that_does_not_fit_the_space_is_refused(
    estimator: type[Any], space: gym.Space[Any], policy: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        policy_of(estimator, space, policy=policy)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(share_features_extractor=1), r"share_features_extractor'\]=1 is invalid"),
        (dict(normalize_images="yes"), r"normalize_images'\]='yes' is invalid"),
        (dict(features_extractor_kwargs=[1]), r"features_extractor_kwargs'\]=\[1\] is invalid"),
        (dict(features_extractor_class="NatureCNN"), r"features_extractor_class'\]='NatureCNN' is invalid"),
        (dict(features_extractor_extra=1), "features_extractor_extra"),
    ],
)
def test_invalid_extractor_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        policy_of(SAC, image_space(), policy_kwargs=kwargs)


# ---------------------------------------------------------------------------------------------- user extractors
class TinyConv(nn.Module):
    """A user's extractor in SB3's form, not derived from our base class: (space, features_dim=...)."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 8, scale: float = 1.0) -> None:
        super().__init__()
        self.features_dim = features_dim
        self.scale = scale
        self.conv = nn.Conv2d(observation_space.shape[-1], 2, kernel_size=5, stride=5)
        self.linear = nn.Linear(2 * 7 * 7, features_dim)
        self.seen: list[torch.dtype] = []

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        self.seen.append(observations.dtype)
        x = self.conv(observations.permute(0, 3, 1, 2) * self.scale)
        return torch.relu(self.linear(x.flatten(1)))


class NoFeaturesDim(nn.Module):
    def __init__(self, observation_space: gym.Space[Any]) -> None:
        super().__init__()

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations


def test_a_users_extractor_trains_and_predicts(estimator: type[Any]) -> None:
    kwargs = dict(
        features_extractor_class=TinyConv, features_extractor_kwargs=dict(features_dim=6, scale=0.5)
    )
    model = estimator(image_env(), **{**TINY, "policy_kwargs": kwargs}).learn(16)
    extractor = model.policy.actor.features_extractor
    assert isinstance(extractor, TinyConv) and extractor.features_dim == 6 and extractor.scale == 0.5
    assert set(extractor.seen) == {torch.float32}  # preprocessed before the user's extractor
    assert model.policy.actor.trunk[0].in_features == 6
    action, _ = model.predict(image_space().sample())
    assert action.shape == (2,)


def test_a_users_extractor_needs_features_dim() -> None:
    with pytest.raises(
        TypeError, match="NoFeaturesDim has features_dim=None after construction.*positive int"
    ):
        policy_of(SAC, image_space(), policy_kwargs=dict(features_extractor_class=NoFeaturesDim))


def test_features_dim_must_be_positive() -> None:
    with pytest.raises(ValueError, match="features_dim must be a positive int"):
        BaseFeaturesExtractor(image_space(), 0)


# ---------------------------------------------------------------------------------------------- sharing
def extractors_of(policy: nn.Module) -> dict[str, nn.Module]:
    return {
        name: module.features_extractor
        for name, module in policy.named_children()
        if hasattr(module, "features_extractor")
    }


def test_separate_extractors_by_default(estimator: type[Any]) -> None:
    model = policy_of(estimator, image_space())
    found = extractors_of(model._policy)
    assert len({id(e) for e in found.values()}) == len(found)  # targets included
    actor_params = {id(p) for p in found["actor"].parameters()}
    critic_params = {id(p) for p in found["critic"].parameters()}
    assert not actor_params & critic_params
    critic_optimized = {id(p) for g in model.critic_optimizer.param_groups for p in g["params"]}
    assert critic_params <= critic_optimized


def test_a_shared_extractor_is_trained_by_the_actor_only(estimator: type[Any]) -> None:
    model = policy_of(estimator, image_space(), policy_kwargs=dict(share_features_extractor=True))
    policy = model._policy
    shared = policy.actor.features_extractor
    assert policy.critic.features_extractor is shared
    assert policy.critic_target.features_extractor is not shared  # targets carry their own copy
    if not issubclass(estimator, SAC):
        assert policy.actor_target.features_extractor is not shared
    shared_ids = {id(p) for p in shared.parameters()}
    assert not shared_ids & {id(p) for g in model.critic_optimizer.param_groups for p in g["params"]}
    assert shared_ids <= {id(p) for g in model.actor_optimizer.param_groups for p in g["params"]}
    # The state dict names the shared tensors under both networks, as SB3's does.
    state = policy.state_dict()
    assert (
        state["actor.features_extractor.cnn.0.weight"].data_ptr()
        == state["critic.features_extractor.cnn.0.weight"].data_ptr()
    )

    # A critic update leaves the extractor as it was; training (through the actor's loss) moves it.
    before = [p.detach().clone() for p in shared.parameters()]
    obs, actions = fake_batch(image_space()), torch.zeros(5, 2)
    q = policy.critic(obs, actions)
    assert torch.autograd.grad(q.sum(), list(shared.parameters()), allow_unused=True) == (None,) * len(before)
    gradient_step(model.critic_optimizer, policy.critic(obs, actions).pow(2).sum())
    assert all(torch.equal(a, b) for a, b in zip(before, shared.parameters(), strict=True))
    model.learn(16)
    assert not all(torch.equal(a, b) for a, b in zip(before, shared.parameters(), strict=True))


def test_sac_v1_value_network_reads_through_an_extractor() -> None:
    for share in (False, True):
        model = policy_of(
            SAC,
            image_space(),
            value_network=True,
            ent_coef=0.2,
            policy_kwargs=dict(share_features_extractor=share),
        )
        policy = model._policy
        assert isinstance(policy.value.features_extractor, NatureCNN)
        assert (policy.value.features_extractor is policy.actor.features_extractor) is share
        assert policy.value_target.features_extractor is not policy.value.features_extractor
        model.learn(16)


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("share", [False, True])
def test_training_on_images_and_dicts(estimator: type[Any], share: bool) -> None:
    for space in (image_space(), dict_space()):
        kwargs: dict[str, Any] = dict(share_features_extractor=share)
        if isinstance(space, gym.spaces.Dict):
            kwargs["features_extractor_kwargs"] = dict(cnn_output_dim=16)
        model = estimator(RandomEnv(space), **{**TINY, "policy_kwargs": kwargs}).learn(16)
        stored = model.replay_buffer.sample(2, gamma=0.99).observations
        leaf = stored["image"] if isinstance(stored, dict) else stored
        assert leaf.dtype == torch.uint8  # the buffer keeps the env's layout and dtype
        assert model.predict(space.sample(), deterministic=True)[0].shape == (2,)


class OneKeyExtractor(BaseFeaturesExtractor):
    """A user's parameter-free extractor: only key "a" of the Dict."""

    def __init__(self, observation_space: gym.spaces.Dict) -> None:
        super().__init__(observation_space, features_dim=3)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return observations["a"].float()


def vector_dict_space() -> gym.spaces.Dict:
    return gym.spaces.Dict(
        {"a": gym.spaces.Box(-1.0, 1.0, (3,), np.float64), "b": gym.spaces.Box(-5.0, 5.0, (2, 2), np.float32)}
    )


def test_parameter_free_dict_features_are_extracted_once_per_batch(estimator: type[Any]) -> None:
    """Dict observations without images: every network would compute the same features, so the training
    loop extracts them once per batch; the updates are exactly those of extracting them per network."""
    model = estimator(RandomEnv(vector_dict_space()), **TINY)
    twin = estimator(RandomEnv(vector_dict_space()), **TINY)
    twin.policy.batch_features = lambda obs: obs  # every network extracts for itself
    batch = fake_batch(vector_dict_space())
    features = model.policy.batch_features(batch)
    assert isinstance(features, torch.Tensor) and features.dtype == torch.float32
    torch.testing.assert_close(features, model.policy.actor.extract_features(batch), rtol=0, atol=0)
    extract, given = model.policy.batch_features, []
    model.policy.batch_features = lambda obs: given.append(obs) or extract(obs)  # type: ignore[method-assign]
    for m in (model, twin):
        m.learn(40)
    assert model.training_state.n_updates > 20
    assert len(given) == 2 * model.training_state.n_updates and all(isinstance(o, dict) for o in given)
    torch.testing.assert_close(model.policy.state_dict(), twin.policy.state_dict(), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("space", "policy_kwargs"),
    [
        (dict_space(), dict(features_extractor_kwargs=dict(cnn_output_dim=8))),  # the image key's CNN
        (vector_dict_space(), dict(features_extractor_class=OneKeyExtractor)),  # a user's class
        (gym.spaces.Box(-1.0, 1.0, (3,), np.float32), {}),  # a flat Box needs no extracting
    ],
    ids=["cnn", "users-class", "box"],
)
def test_other_features_stay_per_network(
    estimator: type[Any], space: gym.Space[Any], policy_kwargs: dict[str, Any]
) -> None:
    policy = policy_of(estimator, space, policy_kwargs=policy_kwargs)._policy
    batch = fake_batch(space)
    assert policy.batch_features(batch) is batch


def test_frame_stacks_are_flattened(estimator: type[Any]) -> None:
    env = gym.wrappers.FrameStackObservation(RandomEnv(gym.spaces.Box(-1.0, 1.0, (3,), np.float32)), 3)
    model = estimator(env, **TINY).learn(16)
    assert model.policy.actor.features_extractor.features_dim == 9
    assert model.predict(np.zeros((3, 3), np.float32))[0].shape == (2,)


def test_flat_observations_keep_their_parameter_names(estimator: type[Any]) -> None:
    model = policy_of(estimator, gym.spaces.Box(-1.0, 1.0, (3,), np.float32))
    names = list(model._policy.state_dict())
    assert "actor.trunk.0.weight" in names and "critic.layers.0.weight" in names
    assert not any("features_extractor" in name for name in names)


def test_image_parameter_names_follow_sb3() -> None:
    names = set(policy_of(SAC, image_space())._policy.state_dict())
    assert {"actor.features_extractor.cnn.0.weight", "actor.features_extractor.linear.0.weight"} <= names
    assert {
        "critic.features_extractor.cnn.0.weight",
        "critic_target.features_extractor.cnn.0.weight",
    } <= names


# ---------------------------------------------------------------------------------------------- saving
def state_of(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


def test_a_built_in_extractor_class_is_saved_by_name(estimator: type[Any], tmp_path: Path) -> None:
    kwargs = dict(features_extractor_class=NatureCNN, features_extractor_kwargs=dict(features_dim=32))
    model = estimator(image_env(), **{**TINY, "policy_kwargs": kwargs}).learn(10)
    model.save(tmp_path / "model.zip")
    metadata = read_metadata(tmp_path / "model.zip")
    assert metadata["params"]["policy_kwargs"]["features_extractor_class"] == "NatureCNN"
    assert metadata["pickled_params"] == []
    assert not any(n.startswith("pickled/") for n in zipfile.ZipFile(tmp_path / "model.zip").namelist())
    loaded = estimator.load(tmp_path / "model.zip", env=image_env(), device="cpu")
    assert loaded.policy_kwargs["features_extractor_class"] is NatureCNN
    saved, restored = state_of(model), state_of(loaded)
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[key], restored[key]) for key in saved)
    obs = np.stack([image_space().sample() for _ in range(3)])
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )


def test_a_users_extractor_class_is_pickled_and_needs_trust(tmp_path: Path) -> None:
    model = TD3(image_env(), **{**TINY, "policy_kwargs": dict(features_extractor_class=TinyConv)})
    model.save(tmp_path / "model.zip")
    assert read_metadata(tmp_path / "model.zip")["pickled_params"] == [
        "policy_kwargs.features_extractor_class"
    ]
    with pytest.raises(ModelFileError, match=r"`policy_kwargs.features_extractor_class`.*custom_objects="):
        TD3.load(tmp_path / "model.zip", env=image_env())
    key = "policy_kwargs.features_extractor_class"
    replaced = TD3.load(tmp_path / "model.zip", env=image_env(), device="cpu", custom_objects={key: TinyConv})
    assert replaced.policy_kwargs["features_extractor_class"] is TinyConv
    obs = image_space().sample()
    np.testing.assert_array_equal(replaced.predict(obs)[0], model.predict(obs)[0])


def test_ddpg_keeps_one_critic_with_an_extractor() -> None:
    model = policy_of(DDPG, image_space())
    assert model._policy.critic.n_critics == 1
    assert model._policy.critic(fake_batch(image_space()), torch.zeros(5, 2)).shape == (1, 5)


@pytest.mark.parametrize("extractor_class", [FlattenExtractor, NatureCNN, CombinedExtractor, None])
def test_extractor_classes_round_trip_through_the_parameters_json(extractor_class: Any) -> None:
    params = {
        "policy_kwargs": dict(net_arch=[8], features_extractor_class=extractor_class, activation_fn=nn.Tanh)
    }
    encoded, pickled = encode_params(params)
    assert pickled == {}
    expected = None if extractor_class is None else extractor_class.__name__
    assert encoded["policy_kwargs"]["features_extractor_class"] == expected
    assert decode_params(encoded, lambda name: pytest.fail(name)) == params
