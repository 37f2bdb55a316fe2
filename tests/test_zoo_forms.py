"""rl-zoo's hyperparameter forms: ``constant_<v>`` / ``lin_<v>`` schedules and ``policy_kwargs`` strings,
read safely (easyrl.zoo), accepted by every estimator and saved in model files as given."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch import nn

from easyrl import TD3
from easyrl.callbacks import BaseCallback
from easyrl.extractors import NatureCNN
from easyrl.schedules import ConstantSchedule, LinearSchedule, make_schedule, zoo_schedule
from easyrl.serialization.params import ACTIVATIONS
from easyrl.zoo import ACTIVATION_NAMES, parse_expression, parse_policy_kwargs
from tests.conftest import FAST

# Strings from rl-zoo's hyperparams/*.yml (sac, td3, tqc, her), with what they mean.
ZOO_STRINGS: list[tuple[str, dict[str, Any]]] = [
    ("dict(log_std_init=-3.67, net_arch=[64, 64])", {"log_std_init": -3.67, "net_arch": [64, 64]}),
    ("dict(log_std_init=-3, net_arch=[400, 300])", {"log_std_init": -3, "net_arch": [400, 300]}),
    ("dict(net_arch=[400, 300])", {"net_arch": [400, 300]}),
    ("dict(net_arch=[256, 256], n_critics=2)", {"net_arch": [256, 256], "n_critics": 2}),
    ("dict(net_arch=[512, 512, 512], n_critics=2)", {"net_arch": [512, 512, 512], "n_critics": 2}),
    ("dict(log_std_init=-2, net_arch=[64, 64])", {"log_std_init": -2, "net_arch": [64, 64]}),
    ("dict(activation_fn=nn.ReLU)", {"activation_fn": nn.ReLU}),
    (
        "dict(log_std_init=-3, net_arch=[400, 300], activation_fn=nn.ReLU)",
        {"log_std_init": -3, "net_arch": [400, 300], "activation_fn": nn.ReLU},
    ),
    ("dict(net_arch=dict(pi=[64], qf=[400, 300]))", {"net_arch": {"pi": [64], "qf": [400, 300]}}),
    (
        "dict(activation_fn=th.nn.Tanh,net_arch=dict(pi=[256,256,256], qf=[64, 64]))",
        {"activation_fn": nn.Tanh, "net_arch": {"pi": [256, 256, 256], "qf": [64, 64]}},
    ),
    (  # a YAML string folded over several lines (her.yml's replay_buffer_kwargs)
        "dict(\n    online_sampling=True,\n    goal_selection_strategy='future',\n    n_sampled_goal=4\n  )",
        {"online_sampling": True, "goal_selection_strategy": "future", "n_sampled_goal": 4},
    ),
    ("{'norm_obs': True, 'norm_reward': False}", {"norm_obs": True, "norm_reward": False}),
    (
        "dict(features_extractor_class=NatureCNN, features_extractor_kwargs=dict(features_dim=256))",
        {"features_extractor_class": NatureCNN, "features_extractor_kwargs": {"features_dim": 256}},
    ),
    (
        "dict(activation_fn=torch.nn.ELU, clip_mean=None, use_expln=False)",
        {"activation_fn": nn.ELU, "clip_mean": None, "use_expln": False},
    ),
]


@pytest.mark.parametrize(("text", "expected"), ZOO_STRINGS)
def test_rl_zoo_strings_are_read(text: str, expected: dict[str, Any]) -> None:
    assert parse_policy_kwargs(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "__import__('os').system('x')",
            r"`__import__\('os'\).system\('x'\)` calls `__import__\('os'\).system`",
        ),
        ("dict(activation_fn=os.system)", "`os.system` is not a name easyrl knows"),
        ("dict(activation_fn=nn.ReLU.__subclasses__)", "`nn.ReLU.__subclasses__` is not a name easyrl knows"),
        ("dict(activation_fn=nn.Module)", "`nn.Module` is not a name easyrl knows"),
        ("dict(f=lambda: 0)", "`lambda: 0` is a lambda"),
        ("dict(net_arch=[64] * 2)", r"`\[64\] \* 2` is arithmetic"),
        ("dict(net_arch=[i for i in range(3)])", "is a comprehension"),
        ("dict(activation_fn=nn.ReLU())", r"calls `nn.ReLU`, and the only call allowed is dict\(...\)"),
        ("dict(**kwargs)", r"`\*\*kwargs` unpacks a dict"),
        ("dict([('a', 1)])", "passes positional arguments to dict"),
        ("{1: 2}", "the key `1` is not a string"),
        ("dict(x=b'bytes')", "`b'bytes'` is a bytes constant"),
        ("dict(x=-y)", "`-y` applies a sign to something other than a number"),
        ("dict(x={1, 2})", "`{1, 2}` is a set"),
        ("dict(x=f'{y}')", "is an f-string"),
        ("dict(net_arch=[64,", "not valid Python syntax"),
        ("[64, 64]", "it is a list, not a dict"),
        ("x" * 20_000, "at most 10000 are read"),
    ],
)
def test_anything_else_is_refused_with_the_offending_part(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        parse_policy_kwargs(text)
    assert str(error.value).startswith("policy_kwargs")


def test_parse_expression_names_the_setting() -> None:
    assert parse_expression("True", "normalize") is True
    with pytest.raises(ValueError, match=r"^normalize='open\(1\)' cannot be read"):
        parse_expression("open(1)", "normalize")


def test_activation_names_are_those_a_model_file_may_name() -> None:
    assert ACTIVATION_NAMES == ACTIVATIONS


# ---------------------------------------------------------------------------------------------- estimators
def test_a_policy_kwargs_string_builds_the_networks_it_says(estimator: type[Any]) -> None:
    text = "dict(net_arch=dict(pi=[16], qf=[24, 8]), activation_fn=nn.Tanh)"
    model = estimator("Pendulum-v1", **{**FAST, "policy_kwargs": text})
    assert model.get_params()["policy_kwargs"] == text  # stored unchanged, per the estimator contract
    actor_linear = [m for m in model.actor.modules() if isinstance(m, nn.Linear)]
    assert actor_linear[0].out_features == 16
    assert any(isinstance(m, nn.Tanh) for m in model.actor.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.policy.modules())
    critic_widths = {width for p in model.critic.parameters() for width in p.shape}
    assert {24, 8} <= critic_widths and 16 not in critic_widths


def test_a_policy_kwargs_string_is_saved_as_given(estimator: type[Any], tmp_path: Path) -> None:
    text = "dict(net_arch=[16, 16], activation_fn=nn.ELU)"
    model = estimator("Pendulum-v1", seed=0, **{**FAST, "policy_kwargs": text}).learn(60)
    path = model.save(tmp_path / "model.zip")
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("metadata.json"))["params"]["policy_kwargs"] == text
        assert not any(name.startswith("pickled/") for name in archive.namelist())
    loaded = estimator.load(path)
    assert loaded.get_params()["policy_kwargs"] == text
    observations = np.zeros((3, 3), np.float32)
    np.testing.assert_array_equal(
        loaded.predict(observations, deterministic=True)[0],
        model.predict(observations, deterministic=True)[0],
    )


def test_a_bad_policy_kwargs_string_is_reported_on_first_use(estimator: type[Any]) -> None:
    model = estimator("Pendulum-v1", **{**FAST, "policy_kwargs": "dict(net_arch=__import__('os'))"})
    with pytest.raises(ValueError, match="calls `__import__`"):
        model.learn(10)
    with pytest.raises(ValueError, match="Unknown key.*'ortho_init'"):
        estimator("Pendulum-v1", **{**FAST, "policy_kwargs": "dict(ortho_init=False)"}).learn(10)
    with pytest.raises(ValueError, match="policy_kwargs=42 is invalid"):
        estimator("Pendulum-v1", **{**FAST, "policy_kwargs": 42}).learn(10)


# ---------------------------------------------------------------------------------------------- schedules
def test_zoo_schedules() -> None:
    assert zoo_schedule("lin_0.5") == LinearSchedule(0.5) and zoo_schedule("lin_0.5")(0.25) == 0.125
    assert zoo_schedule("constant_7.3e-4") == ConstantSchedule(7.3e-4)
    assert make_schedule("constant_1e-3")(0.1) == 1e-3
    for text in ("exp_1e-3", "lin_abc", "constant_-1", "constant_0", "lin_inf", "lin_nan", "constant"):
        with pytest.raises(ValueError, match="'constant_<value>'"):
            zoo_schedule(text)


class LearningRates(BaseCallback):
    """Records, after every step, the progress remaining and each optimizer's learning rate."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, float, float]] = []

    def _on_step(self) -> bool:
        model: Any = self.model
        self.rows.append(
            (
                model.num_timesteps,
                model.actor_optimizer.param_groups[0]["lr"],
                model.critic_optimizer.param_groups[0]["lr"],
            )
        )
        return True


def test_constant_and_linear_schedules_give_the_right_rates_over_training(estimator: type[Any]) -> None:
    total = 200
    rates = LearningRates()
    model = estimator(
        "Pendulum-v1",
        **{**FAST, "learning_rate": "lin_1e-3", "critic_learning_rate": "constant_5e-4"},
    )
    model.learn(total, callback=rates)
    # A callback runs after step t is collected and before its training, so it sees the rates set
    # for the previous step's training: at progress 1 - (t - 1) / total.
    trained = [
        (step, actor, critic) for step, actor, critic in rates.rows if step > FAST["learning_starts"] + 1
    ]
    assert len(trained) > 100
    for step, actor, critic in trained:
        assert actor == pytest.approx(1e-3 * (1 - (step - 1) / total), rel=1e-9)
        assert critic == 5e-4
    assert model.get_params()["learning_rate"] == "lin_1e-3"


def test_invalid_schedule_strings_are_named(estimator: type[Any]) -> None:
    with pytest.raises(ValueError, match=r"learning_rate='exp_1e-3' is invalid: .*'constant_<value>'"):
        estimator("Pendulum-v1", **{**FAST, "learning_rate": "exp_1e-3"}).learn(10)


def test_schedule_strings_are_saved_as_given(tmp_path: Path) -> None:
    model = TD3("Pendulum-v1", **{**FAST, "learning_rate": "constant_2e-4"}).learn(60)
    loaded = TD3.load(model.save(tmp_path / "model.zip"))
    assert loaded.get_params()["learning_rate"] == "constant_2e-4"
