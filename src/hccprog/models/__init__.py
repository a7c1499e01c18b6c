"""Published models, one module each, resolved by name (``hccprog.models.registry``)."""

from hccprog.models.registry import ModelSpec, get_model, model_names

__all__ = ["ModelSpec", "get_model", "model_names"]
