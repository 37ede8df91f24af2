"""The configuration of a run, MMRec-style: overall -> dataset -> model YAML -> command line.

One module per job: ``loading`` (the YAML files read into a :class:`Config`, the grid of
``hyper_parameters``), ``overrides`` (``--set`` values) and ``schema`` (the checks of names
and values). The names other code uses are re-exported here.
"""

from __future__ import annotations

from .loading import YAML_LOADER, Config, configs_root, grid_points, read_yaml
from .overrides import parse_overrides, parse_value, settings_per_model
from .schema import check_plain_name, hyper_parameter_list, plain_name_problem, validate_config

__all__ = [
    "YAML_LOADER",
    "Config",
    "check_plain_name",
    "configs_root",
    "grid_points",
    "hyper_parameter_list",
    "parse_overrides",
    "parse_value",
    "plain_name_problem",
    "read_yaml",
    "settings_per_model",
    "validate_config",
]
