"""The value types settings are declared with, and a settings model read off a signature.

A defense's settings are its constructor's keyword arguments; an architecture's, a data
source's and a scenario's are their builder's. ``settings_model`` turns such a signature into a
pydantic model, so the config checker converts and range-checks every value with the same
annotations the code is written with (``sigma: NonNegativeFloat``) and rejects unknown keys.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

from annotated_types import Ge, Gt, Interval, Le, Lt
from pydantic import BaseModel, BeforeValidator, ConfigDict, create_model


def _int_like(value: Any) -> Any:
    """'2', 2.0 and '2.0' are the integer 2 (YAML, ``--config`` and JSON spell numbers freely)."""
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_int_like)]
PositiveInt = Annotated[Int, Ge(1)]
NonNegativeInt = Annotated[Int, Ge(0)]
PositiveFloat = Annotated[float, Gt(0)]
NonNegativeFloat = Annotated[float, Ge(0)]
Probability = Annotated[float, Interval(ge=0, le=1)]
OpenUnit = Annotated[float, Interval(gt=0, lt=1)]
Betas = tuple[Annotated[float, Interval(ge=0, lt=1)], Annotated[float, Interval(ge=0, lt=1)]]

__all__ = [
    "Betas",
    "Ge",
    "Gt",
    "Int",
    "Interval",
    "Le",
    "Lt",
    "NonNegativeFloat",
    "NonNegativeInt",
    "OpenUnit",
    "PositiveFloat",
    "PositiveInt",
    "Probability",
    "Strict",
    "settings_model",
]


class Strict(BaseModel):
    """A settings block: unknown keys are errors, values are converted to their declared types."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _hints(obj: Callable) -> dict[str, Any]:
    """The resolved annotations of ``obj``'s arguments: a function's, or a class's constructor's
    and class-level ones (a dataclass's fields)."""
    hints: dict[str, Any] = {}
    for source in (obj.__init__, obj) if inspect.isclass(obj) else (obj,):
        try:
            hints.update(typing.get_type_hints(source, include_extras=True))
        except (NameError, TypeError):
            pass
    return hints


def settings_model(obj: Callable, *, skip: tuple[str, ...] = (), name: str | None = None) -> type[BaseModel]:
    """A pydantic model of the keyword arguments of ``obj`` (a class or a function), less
    ``skip`` (arguments the caller supplies, such as ``num_classes``). An argument without a
    default is required; one without an annotation takes any value. ``**kwargs`` is not a
    setting: a builder that declares it still gets only the named keys."""
    hints = _hints(obj)
    fields: dict[str, Any] = {}
    for param in inspect.signature(obj).parameters.values():
        if param.name in skip or param.name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    model_name = name or f"{getattr(obj, '__name__', 'Settings')}Settings"
    return create_model(model_name, __base__=Strict, **fields)


def setting_names(obj: Callable, skip: tuple[str, ...] = ()) -> list[str]:
    """The keyword settings ``obj`` takes (its model's fields)."""
    return list(settings_model(obj, skip=skip).model_fields)
