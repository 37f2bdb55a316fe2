"""rl-zoo's string forms of hyperparameters, read safely.

rl-zoo's YAML files give ``policy_kwargs`` as a Python expression in a string, e.g.
``"dict(log_std_init=-3, net_arch=[400, 300], activation_fn=nn.ReLU)"``, which rl-zoo evaluates with
``eval``. easyrl never evaluates it: :func:`parse_expression` parses it to a syntax tree and builds the
value from literal syntax only -- ``dict(...)`` calls and ``{...}`` literals with string keys, lists,
tuples, numbers (with a sign), strings, True, False and None -- plus a table of names: ``torch.nn``
activations (``nn.ReLU``, also written ``th.nn.ReLU`` or ``torch.nn.ReLU``) and easyrl's features
extractors (``NatureCNN``). Anything else (a call, an attribute outside the table, a lambda,
arithmetic) is a ValueError naming the offending part. Nothing in the string runs.
"""

from __future__ import annotations

import ast
from typing import Any

from torch import nn

from easyrl import extractors

ACTIVATION_NAMES: tuple[str, ...] = (
    "ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU", "Mish", "SELU", "CELU", "Softplus", "Sigmoid",
    "Hardtanh", "Hardswish", "Identity",
)  # fmt: skip
"""``torch.nn`` activations a string may name; the same as a model file may name (a test keeps them equal)."""

_MODULE_PREFIXES = ("nn.", "th.nn.", "torch.nn.")
"""How rl-zoo's strings reach ``torch.nn`` (rl-zoo imports ``torch as th`` and ``torch.nn as nn``)."""

NAMES: dict[str, type[nn.Module]] = {
    **{prefix + name: getattr(nn, name) for name in ACTIVATION_NAMES for prefix in _MODULE_PREFIXES},
    **{cls.__name__: cls for cls in extractors.BUILT_IN},
}
"""Every name a string may use, and the class it stands for."""

MAX_LENGTH = 10_000
"""Longer strings are refused before parsing: real ones are under 200 characters."""

ALLOWED = (
    "only dict(...) calls, {...}, lists, tuples, numbers, strings, True, False, None, and the names "
    "nn.<activation> (e.g. nn.ReLU, nn.Tanh; also th.nn. or torch.nn.) and easyrl's features extractors "
    f"({', '.join(cls.__name__ for cls in extractors.BUILT_IN)}) are allowed"
)

_KINDS: dict[type[ast.AST], str] = {
    ast.Lambda: "a lambda",
    ast.BinOp: "arithmetic",
    ast.BoolOp: "a boolean operation",
    ast.Compare: "a comparison",
    ast.IfExp: "a conditional expression",
    ast.Subscript: "a subscript",
    ast.ListComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.Set: "a set",
    ast.Starred: "unpacking",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "an assignment expression",
    ast.Await: "an await",
    ast.Yield: "a yield",
}


def parse_policy_kwargs(text: str) -> dict[str, Any]:
    """rl-zoo's ``policy_kwargs`` string as a dict, e.g. ``"dict(net_arch=[64, 64])"`` -> ``{"net_arch": [64, 64]}``.

    Raises:
        ValueError: the string is not a dict expression of the allowed forms; the message names the
            offending part.
    """
    value = parse_expression(text, "policy_kwargs")
    if not isinstance(value, dict):
        raise ValueError(
            f"policy_kwargs={text!r} cannot be read: it is a {type(value).__name__}, not a dict; "
            'write it as "dict(net_arch=[64, 64])" or "{\'net_arch\': [64, 64]}".'
        )
    return value


def parse_expression(text: str, what: str) -> Any:
    """The value of an rl-zoo expression string, built from its syntax tree without running it.

    ``what`` names the setting in error messages (``"policy_kwargs"``, ``"normalize"``).
    """
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string to be parsed, not a {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"{what} is a string of {len(text)} characters; at most {MAX_LENGTH} are read.")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(
            f"{what}={text!r} cannot be read: it is not valid Python syntax ({error.msg})."
        ) from None
    except (RecursionError, MemoryError):
        raise ValueError(f"{what}={text!r} cannot be read: it is nested too deeply.") from None
    try:
        return _value(tree.body)
    except _Refused as refusal:
        raise ValueError(f"{what}={text!r} cannot be read: {refusal}; {ALLOWED}.") from None
    except RecursionError:
        raise ValueError(f"{what}={text!r} cannot be read: it is nested too deeply.") from None


class _Refused(Exception):
    """A part of the expression outside the allowed forms (the message says which)."""


def _value(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        if node.value is None or type(node.value) in (bool, int, float, str):
            return node.value
        raise _Refused(f"`{ast.unparse(node)}` is a {type(node.value).__name__} constant")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        number = node.operand.value if isinstance(node.operand, ast.Constant) else None
        if isinstance(number, int | float) and not isinstance(number, bool):
            return -number if isinstance(node.op, ast.USub) else number
        raise _Refused(f"`{ast.unparse(node)}` applies a sign to something other than a number")
    if isinstance(node, ast.List | ast.Tuple):
        items = [_value(item) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return _dict_literal(node)
    if isinstance(node, ast.Call):
        return _dict_call(node)
    if isinstance(node, ast.Name | ast.Attribute):
        return _name(node)
    kind = _KINDS.get(type(node), f"a {type(node).__name__} expression")
    raise _Refused(f"`{ast.unparse(node)}` is {kind}")


def _dict_literal(node: ast.Dict) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in zip(node.keys, node.values, strict=True):
        if key is None:
            raise _Refused(f"`**{ast.unparse(item)}` unpacks a dict")
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            raise _Refused(f"the key `{ast.unparse(key)}` is not a string")
        result[key.value] = _value(item)
    return result


def _dict_call(node: ast.Call) -> dict[str, Any]:
    if not (isinstance(node.func, ast.Name) and node.func.id == "dict"):
        raise _Refused(
            f"`{ast.unparse(node)}` calls `{ast.unparse(node.func)}`, and the only call allowed is dict(...)"
        )
    if node.args:
        raise _Refused(f"`{ast.unparse(node)}` passes positional arguments to dict; use dict(key=value)")
    result: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise _Refused(f"`**{ast.unparse(keyword.value)}` unpacks a dict")
        result[keyword.arg] = _value(keyword.value)
    return result


def _name(node: ast.Name | ast.Attribute) -> type[nn.Module]:
    dotted = ast.unparse(node)
    if dotted not in NAMES:
        raise _Refused(f"`{dotted}` is not a name easyrl knows")
    return NAMES[dotted]
