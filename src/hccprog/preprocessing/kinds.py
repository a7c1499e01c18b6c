"""Which preprocessing a model's input is: the one answer to "slices, volume or features?"."""

from __future__ import annotations

from typing import Any, Literal

PreprocessingKind = Literal["slices", "volume", "features"]

#: Every preprocessing kind, in the order the docs list them.
PREPROCESSING_KINDS: tuple[PreprocessingKind, ...] = ("slices", "volume", "features")


def preprocessing_kind(value: Any) -> PreprocessingKind:
    """The kind of a preprocessing config, given as the config object or its saved dictionary.

    Masked 3D volumes (``VolumeConfig``) and radiomics features (``FeatureConfig``) carry a ``kind``;
    representative slices (``SliceConfig``) carry none and are the default.

    Parameters
    ----------
    value
        A preprocessing config (pydantic model), its ``model_dump()``, or ``None``.

    Returns
    -------
    str
        ``"slices"``, ``"volume"`` or ``"features"``.

    Examples
    --------
    >>> preprocessing_kind({"kind": "volume", "size": 32})
    'volume'
    >>> preprocessing_kind({"slices": 3})
    'slices'
    """
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    if kind == "volume":
        return "volume"
    if kind == "features":
        return "features"
    return "slices"
