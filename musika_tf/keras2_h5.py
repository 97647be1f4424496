"""Keras-2 ``model.save_weights('x.h5')`` files: read them and load them into our networks by order.

File layout (Keras 2 HDF5 weights format): the root (or its ``model_weights`` group for whole-model
saves) has an attribute ``layer_names`` listing one group per layer of the saved model, in that
model's ``model.layers`` order; each group has an attribute ``weight_names`` listing its datasets
in the layer's ``layer.weights`` order. Weightless layers (inputs, activations, TF-op lambdas) have
empty groups. Keras 2 matched groups to layers by ORDER, not by name, and so do we.

Layer-order rule our builders follow so that files load unchanged:

1. The weight-bearing *leaf* layers of our model, in ``model.layers`` order (nested models and
   composite layers are expanded in place, depth first), correspond one-to-one to the non-empty
   groups of ``layer_names``. Keras 3 orders ``model.layers`` of a functional model exactly like
   Keras 2 did (decreasing graph depth, ties broken by discovery order from the outputs), so a
   builder that wires the same graph as the reference -- the same layers, the same number of
   intermediate ops on every path (e.g. FOLD = one split + one concat), the same output order --
   reproduces the file order. Build blocks with functional calls (as `layers.ae_conv` does), not as
   composite layers, unless the reference used a composite layer too.
2. Inside a layer, weights follow ``layer.weights`` order: Conv/Dense ``kernel, bias``;
   BatchNormalization ``gamma, beta, moving_mean, moving_variance``; NoiseInjection
   ``noise_weight``. Kernel layouts are Keras' own (Conv2DTranspose ``[kh, kw, out, in]``).
3. Random-generator state (`NoiseInjection`'s seed) is not a weight and is neither read nor counted.

`load_keras2_h5` checks every shape (and, by default, the weight-name suffix such as ``kernel``)
before assigning anything, and names the first missing or mismatched weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import keras
import numpy as np

__all__ = ["H5Layer", "read_keras2_h5", "weight_layers", "load_keras2_h5", "ReferenceWeightError"]


class ReferenceWeightError(ValueError):
    """A reference weight file does not match the model it is loaded into."""


@dataclass
class H5Layer:
    """One non-empty layer group of a Keras-2 weight file: group name, weight names and arrays."""

    name: str
    weight_names: list[str]
    values: list[np.ndarray]


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_keras2_h5(path: str) -> list[H5Layer]:
    """The weight-bearing layer groups of a Keras-2 ``.h5`` file, in ``layer_names`` order."""
    with h5py.File(path, "r") as fh:
        root = fh["model_weights"] if "model_weights" in fh else fh
        if "layer_names" not in root.attrs:
            raise ReferenceWeightError(f"{path}: not a Keras-2 weight file (no 'layer_names')")
        layers = []
        for name in map(_text, root.attrs["layer_names"]):
            group = root[name]
            names = [_text(n) for n in group.attrs.get("weight_names", [])]
            if names:
                layers.append(H5Layer(name, names, [np.asarray(group[n]) for n in names]))
    return layers


def weight_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Leaf layers holding weights, in ``model.layers`` order with nested layers expanded."""
    found = []
    for layer in getattr(model, "layers", []):
        if getattr(layer, "layers", None):
            found.extend(weight_layers(layer))
        elif layer.weights:
            found.append(layer)
    return found


def _suffix(name: str) -> str:
    """``'conv2d_6/kernel:0'`` -> ``'kernel'``."""
    return name.rsplit("/", 1)[-1].split(":", 1)[0]


def _describe(layer: keras.layers.Layer) -> str:
    shapes = ", ".join(f"{_suffix(w.path)} {tuple(w.shape)}" for w in layer.weights)
    return f"our layer {layer.name!r} ({type(layer).__name__}: {shapes})"


def _check_layer(path: str, index: int, layer, group: H5Layer, check_names: bool) -> None:
    """Raise `ReferenceWeightError` naming the first weight of ``layer`` that ``group`` lacks."""
    where = f"{path}: weight-bearing layer #{index}"
    ours = layer.weights
    if len(ours) != len(group.values):
        raise ReferenceWeightError(
            f"{where}: {_describe(layer)} has {len(ours)} weights but file group {group.name!r} "
            f"has {len(group.values)}: {group.weight_names}")
    for var, name, value in zip(ours, group.weight_names, group.values):
        if tuple(var.shape) != value.shape:
            raise ReferenceWeightError(
                f"{where}: shape mismatch for {layer.name!r}/{_suffix(var.path)}: expected "
                f"{tuple(var.shape)}, file has {name!r} {value.shape}")
        if check_names and _suffix(var.path) != _suffix(name):
            raise ReferenceWeightError(
                f"{where}: name mismatch: {layer.name!r}/{_suffix(var.path)} vs file {name!r}")


def load_keras2_h5(model: keras.layers.Layer, path: str, check_names: bool = True) -> None:
    """Assign a Keras-2 ``.h5`` weight file to ``model`` by layer order (see the module rule).

    All layers are checked before any weight is assigned; on the first missing, surplus or
    mismatched weight a `ReferenceWeightError` names the layer and the expected vs found shape.
    ``check_names`` also compares weight-name suffixes (``kernel``, ``bias``, ``gamma``, ...).
    """
    groups = read_keras2_h5(path)
    layers = weight_layers(model)
    for index, (layer, group) in enumerate(zip(layers, groups)):
        _check_layer(path, index, layer, group, check_names)
    if len(layers) > len(groups):
        raise ReferenceWeightError(
            f"{path}: missing weights: the file has {len(groups)} weight-bearing layers; first "
            f"without a counterpart is #{len(groups)}, {_describe(layers[len(groups)])}")
    if len(groups) > len(layers):
        extra = groups[len(layers)]
        shapes = [v.shape for v in extra.values]
        raise ReferenceWeightError(
            f"{path}: the file has {len(groups)} weight-bearing layers but the model only "
            f"{len(layers)}; first surplus group #{len(layers)} {extra.name!r}: "
            f"{list(zip(extra.weight_names, shapes))}")
    for layer, group in zip(layers, groups):
        for var, value in zip(layer.weights, group.values):
            var.assign(value)


# ---------------------------------------------------------------------------------------------
# Whole reference checkpoints
