"""Model zoo: thesis CNNs, torchvision and timm classifiers behind `build_model`."""

from .build import build_model, list_models
from .card import model_card
from .classifier import Classifier, first_layer_weight
from .weights import adapt_input_conv, load_state_dict_by_order, read_state_dict

__all__ = [
    "Classifier",
    "adapt_input_conv",
    "build_model",
    "first_layer_weight",
    "list_models",
    "load_state_dict_by_order",
    "model_card",
    "read_state_dict",
]
