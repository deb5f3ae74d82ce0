"""Configuration: the validated `RunConfig`, config dicts merged in layers, recipes, protocols."""

from geodistill.config.merge import deep_merge, load_yaml, parse_overrides
from geodistill.config.protocols import PROTOCOLS, Protocol, get_protocol
from geodistill.config.run import DataConfig, DistillConfig, RunConfig, TrainConfig, build_config
from geodistill.config.study import Objective, Student, Study, build_study, load_recipe, recipe_names, role_spec

__all__ = [
    "PROTOCOLS",
    "DataConfig",
    "DistillConfig",
    "Objective",
    "Protocol",
    "RunConfig",
    "Student",
    "Study",
    "TrainConfig",
    "build_config",
    "build_study",
    "deep_merge",
    "get_protocol",
    "load_recipe",
    "load_yaml",
    "parse_overrides",
    "recipe_names",
    "role_spec",
]
