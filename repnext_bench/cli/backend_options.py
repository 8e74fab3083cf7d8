"""The ``run`` options that only some backends take (``--channels-last``, ``--cuda-graphs``,
``--coreml-format``...). Each backend declares the ones it takes in ``Backend.run_options``
(their Case.options keys); this module offers each option to those backends and no others."""
from __future__ import annotations

import itertools

import typer

from .common import UsageProblem

# each Case.options key a backend may declare -> run's parameter that sets it
RUN_OPTIONS = {"channels_last": "channels_last", "compile": "compile_model", "autocast": "autocast",
               "cuda_graphs": "cuda_graphs", "coreml_format": "coreml_format", "coreml_weights": "coreml_weights"}


def declared(name: str) -> tuple[str, ...]:
    """The run options backend ``name`` declares (its module loads no runtime: a usage error
    stays instant)."""
    from ..backends import get_backend

    return get_backend(name).run_options


def check_given(ctx: typer.Context, chosen: list[str]) -> None:
    """An option given on the command line must apply to one of the chosen backends."""
    from ..backends import backend_names

    flags = {param.name: param.opts[0] for param in ctx.command.params}
    for key, param in RUN_OPTIONS.items():
        source = ctx.get_parameter_source(param)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            continue
        takers = [name for name in backend_names() if key in declared(name)]
        if not set(takers) & set(chosen):
            raise UsageProblem(f"{flags[param]}: none of the chosen backends ({', '.join(chosen)}) takes it; it "
                               f"applies to {', '.join(takers) or 'no backend'}")


def per_backend(values: dict[str, object]) -> dict[str, dict | list[dict]]:
    """Case options for each backend that declares any, from ``values`` (Case.options key ->
    value): a switch that is off is left out; an option with several values (a list) makes a
    case of each value, so the backend gets a list of option sets."""
    from ..backends import backend_names

    options: dict[str, dict | list[dict]] = {}
    for name in backend_names():
        keys = declared(name)
        if not keys:
            continue
        alternatives = [[(k, x) for x in values[k]] if isinstance(values[k], list) else [(k, values[k])] for k in keys]
        sets = [{k: x for k, x in combo if x is not False} for combo in itertools.product(*alternatives)]
        options[name] = sets if any(isinstance(values[k], list) for k in keys) else sets[0]
    return options
