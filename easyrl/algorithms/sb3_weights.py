"""SB3's weights and Adam moments mapped onto easyrl's networks (the tensor half of ``sb3_import``).

Names follow SB3's: the SAC actor's ``latent_pi``/``mu``/``log_std`` are easyrl's ``trunk``/``mean``/``log_std``;
the TD3 actor's ``mu`` Sequential is easyrl's ``trunk`` and ``head``; SB3's critics ``qf0``, ``qf1``, ... are
stacked, layer by layer, into the ensemble's ``(n_critics, in, out)`` weights (transposed) and
``(n_critics, 1, out)`` biases; features extractors keep their names. An optimizer's state is mapped the
same way, moment by moment, so Adam continues where SB3 left it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from easyrl.serialization import ModelFileError
from easyrl.serialization.sb3 import SB3File

if TYPE_CHECKING:
    from easyrl.algorithms.base import OffPolicyAlgorithm


Combine = Callable[[list[torch.Tensor]], torch.Tensor]


def _first(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0]


def _stack_weights(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([t.t() for t in tensors])  # each (out, in) -> the ensemble's (n, in, out)


def _stack_biases(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(tensors).unsqueeze(1)  # each (out,) -> the ensemble's (n, 1, out)


class _Layout:
    """Where each of easyrl's entries comes from in SB3's state dict (or in an optimizer's, named alike)."""

    def __init__(self, model: OffPolicyAlgorithm[Any]) -> None:
        self.sac = model.algorithm_name in ("SAC", "TQC")  # sb3-contrib's TQC names its networks as SAC's
        self.n_critics = model.critic.n_critics
        self.actor_depth = len(getattr(model.policy.actor, "trunk", [])) // 2  # hidden Linear layers

    def sources(self, key: str, available: Mapping[str, Any]) -> tuple[list[str], Combine]:
        """The SB3 entries easyrl's ``key`` is made of, and how they combine."""
        net, _, rest = key.partition(".")
        if rest.startswith("features_extractor."):
            return [key], _first
        match = re.fullmatch(r"layers\.(\d+)\.(weight|bias)", rest)
        if net in ("critic", "critic_target") and match is not None:
            layer, kind = int(match.group(1)), match.group(2)
            keys = [f"{net}.qf{i}.{2 * layer}.{kind}" for i in range(self.n_critics)]
            return keys, _stack_weights if kind == "weight" else _stack_biases
        if self.sac:
            sb3_key = f"{net}.{_rename(rest, {'trunk.': 'latent_pi.', 'mean.': 'mu.'})}"
            if rest.startswith("mean.") and sb3_key not in available:
                # gSDE with clip_mean: SB3's mu is (Linear, Hardtanh)
                sb3_key = sb3_key.replace(".mu.", ".mu.0.")
            return [sb3_key], _first
        head = f"mu.{2 * self.actor_depth}."  # TD3's mu: (Linear, ReLU) * depth, Linear, Tanh
        return [f"{net}.{_rename(rest, {'trunk.': 'mu.', 'head.': head})}"], _first


def _rename(name: str, prefixes: Mapping[str, str]) -> str:
    """``name`` with its first part renamed: easyrl's ``trunk.0.weight`` is SB3's ``latent_pi.0.weight``."""
    for old, new in prefixes.items():
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def _convert(
    layout: _Layout, names: list[str], source: Mapping[str, Any], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """easyrl's entries ``names`` built from SB3's ``source``, shaped and typed as in ``target``."""
    converted = {}
    for name in names:
        keys, combine = layout.sources(name, source)
        missing = [k for k in keys if k not in source]
        if missing:
            raise KeyError(f"no {missing[0]} for easyrl's {name}")
        value = combine([source[k] for k in keys])
        expected = target[name]
        if value.numel() != expected.numel():
            raise ValueError(f"{name} has shape {tuple(value.shape)}, easyrl's has {tuple(expected.shape)}")
        converted[name] = value.reshape(expected.shape).to(expected.dtype)
    return converted


def load_weights(model: OffPolicyAlgorithm[Any], sb3: SB3File, fail: Callable[[str], ModelFileError]) -> None:
    own = model.policy.state_dict()
    policy = sb3.state_dicts["policy"]
    names = [n for n in own if not n.endswith("exploration_noise")]  # gSDE's held noise is not SB3's
    try:
        weights = _convert(_Layout(model), names, policy, own)
        model.policy.load_state_dict({**own, **weights})
        variables = sb3.state_dicts.get("pytorch_variables", {})
        if "log_ent_coef" in variables and hasattr(model, "log_ent_coef"):
            with torch.no_grad():
                model.log_ent_coef.copy_(variables["log_ent_coef"].reshape(model.log_ent_coef.shape))
    except (KeyError, ValueError, RuntimeError) as error:
        raise fail(f"has weights that do not fit the networks it describes ({error}).") from None


def load_optimizers(
    model: OffPolicyAlgorithm[Any], sb3: SB3File, skipped: dict[str, str], share: bool
) -> None:
    """Adam's moments follow their parameters: SB3's optimizer of each network onto easyrl's."""
    policy = sb3.state_dicts["policy"]
    names = {id(p): n for n, p in model.policy.named_parameters()}
    pairs = {
        "actor_optimizer": ("actor.optimizer", "actor."),
        "critic_optimizer": ("critic.optimizer", "critic."),
    }
    for attribute, (member, prefix) in pairs.items():
        optimizer, saved = getattr(model, attribute), sb3.state_dicts.get(member)
        sb3_names = [
            k
            for k in policy
            if k.startswith(prefix) and not (share and prefix == "critic." and "features_extractor" in k)
        ]
        own = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
        _load_optimizer(model, optimizer, saved, sb3_names, own, member, skipped)
    ent = getattr(model, "ent_coef_optimizer", None)
    if ent is not None:
        _load_optimizer(
            model,
            ent,
            sb3.state_dicts.get("ent_coef_optimizer"),
            ["log_ent_coef"],
            ["log_ent_coef"],
            "ent_coef_optimizer",
            skipped,
        )


def _load_optimizer(model: OffPolicyAlgorithm[Any], optimizer: torch.optim.Optimizer, saved: dict[str, Any] | None,
                    sb3_names: list[str], own: list[str], member: str, skipped: dict[str, str]) -> None:  # fmt: skip
    state = (saved or {}).get("state")
    groups = (saved or {}).get("param_groups") or [{}]
    if not isinstance(state, dict) or len(groups[0].get("params", [])) != len(sb3_names):
        skipped[member] = f"{member}: not imported (missing or of another layout); Adam starts afresh"
        return
    by_key: dict[str, dict[str, torch.Tensor]] = {}
    for index, name in zip(groups[0]["params"], sb3_names, strict=True):
        for key, value in state.get(index, {}).items():
            by_key.setdefault(key, {})[name] = value
    if not by_key:
        return
    if own == ["log_ent_coef"]:
        shape = model.log_ent_coef.shape  # type: ignore[attr-defined]  # SAC's, the only one with this optimizer
        converted = {key: {"log_ent_coef": values["log_ent_coef"].reshape(() if key == "step" else shape)}
                     for key, values in by_key.items()}  # fmt: skip
    else:
        layout, targets = _Layout(model), {n: p.detach() for n, p in model.policy.named_parameters()}
        converted = {}
        for key, values in by_key.items():
            if key == "step":  # one count per parameter: a stacked one takes its first source's
                converted[key] = {n: values[layout.sources(n, values)[0][0]].clone() for n in own}
            else:
                converted[key] = _convert(layout, own, values, targets)
    new = optimizer.state_dict()
    new["state"] = {i: {key: converted[key][name] for key in converted} for i, name in enumerate(own)}
    optimizer.load_state_dict(new)
