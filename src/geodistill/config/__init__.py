"""Configuration: the validated `RunConfig`, config dicts merged in layers, recipes, protocols."""

from geodistill.config.merge import deep_merge, load_yaml, parse_overrides
from geodistill.config.protocols import PROTOCOLS, Protocol, get_protocol
from geodistill.config.recipes import RECIPES, get_recipe
from geodistill.config.run import DataConfig, DistillConfig, RunConfig, TrainConfig, build_config

__all__ = [
    "PROTOCOLS",
    "RECIPES",
    "DataConfig",
    "DistillConfig",
    "Protocol",
    "RunConfig",
    "TrainConfig",
    "build_config",
    "deep_merge",
    "get_protocol",
    "get_recipe",
    "load_yaml",
    "parse_overrides",
]
