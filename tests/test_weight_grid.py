"""Weights that already sit on a quantization grid keep it (issue 27): the hosted model is
quantization-aware trained (uint8, one step per tensor), and its integer conversions carry
its weights without rounding them a second time."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FIXTURE_TFLITE

from mobilenet_v2.lite.layer_map import map_tflite
from mobilenet_v2.lite.model_metadata import read_standard_metadata
from mobilenet_v2.lite.record import read_metadata
from mobilenet_v2.lite.tflite_file import read_tflite
from mobilenet_v2.lite.weight_grid import Grid, GridKept, source_grids

pytestmark = pytest.mark.shared

# Counted on the hosted model: output channels whose offsets |q - z| fit int8, of all
# 18 056 (its background class dropped); the other 63 need twice the step.
FITTING, CHANNELS = 17_993, 18_056


def weight_layers(path) -> dict:
    tfl = read_tflite(path)
    walk = map_tflite(tfl)
    return tfl, {**walk.convolutions, "predictions": walk.head[0]}


def source_values() -> dict[str, np.ndarray]:
    """The hosted model's weights in float32, `s * (q - z)`, in TFLite's layout (its
    classifier without the background class)."""
    tfl, layers = weight_layers(FIXTURE_TFLITE)
    values = {name: tfl.tensors[w.kernel].dequantized() for name, w in layers.items()}
    values["predictions"] = values["predictions"].reshape(1001, -1)[1:]
    return values


def test_the_hosted_models_grid_is_read_by_layer():
    grids = source_grids(read_tflite(FIXTURE_TFLITE))
    assert len(grids) == 53  # 52 convolutions and the classifier
    fits = sum(int((g.channel_max() <= 127).sum()) for g in grids.values())
    assert fits == FITTING + 1  # the background class fits too


def test_int8_weights_dequantize_to_exactly_the_sources_in_every_fitting_channel(int8_model):
    """Channels whose offsets fit int8 carry the source's values to the bit; the others sit
    at exactly twice the source's step, each weight within one source step of its value."""
    tfl, layers = weight_layers(int8_model)
    source = source_values()
    grids = source_grids(read_tflite(FIXTURE_TFLITE))
    exact = 0
    for name, weights in layers.items():
        kernel = tfl.tensors[weights.kernel]
        axis = kernel.quantized_dimension
        other = tuple(a for a in range(kernel.data.ndim) if a != axis)
        want = source[name].reshape(kernel.shape)
        fits = grids[name].channel_max() <= 127
        step = grids[name].steps[0]
        if name == "predictions":
            fits = fits[1:]
        same = (kernel.dequantized() == want).all(axis=other)
        np.testing.assert_array_equal(same, fits, err_msg=name)
        np.testing.assert_array_equal(kernel.scales[~fits], np.float32(2 * step), err_msg=name)
        off = np.abs(kernel.dequantized() - want).max(axis=other)
        assert np.all(off[~fits] <= step * 1.0001), name
        exact += int(same.sum())
    assert exact == FITTING


def test_biases_are_requantized_to_the_kept_weight_scales(int8_model):
    tfl, layers = weight_layers(int8_model)
    source_tfl, source_layers = weight_layers(FIXTURE_TFLITE)
    for name, weights in layers.items():
        kernel, bias = tfl.tensors[weights.kernel], tfl.tensors[weights.bias]
        input_scale = tfl.tensors[weights.op.inputs[0]].scales[0]
        np.testing.assert_array_equal(
            bias.scales, (np.float64(input_scale) * kernel.scales).astype(np.float32)
        )
        want = source_tfl.tensors[source_layers[name].bias].dequantized()
        if name == "predictions":
            want = want[1:]
        # Half a bias step: the float bias rounded once onto its grid.
        assert np.all(np.abs(bias.dequantized() - want) <= bias.scales / 2 * 1.0001 + 1e-9)


def test_the_model_and_its_description_say_the_grid_was_kept(int8_model):
    raw = int8_model.read_bytes()
    kept = GridKept(**read_metadata(raw)["weight_grid"])
    assert (kept.layers, kept.channels, kept.exact, kept.largest_multiple) == (
        53,
        CHANNELS,
        FITTING,
        2,
    )
    assert kept.summary() == (
        "weights kept on the source's quantization grid: 17993 of 18056 output channels "
        "exactly, 63 at up to 2x its step"
    )
    description = read_standard_metadata(raw, int8_model).description
    assert "weights on their source's quantization grid" in description


def test_equalized_weights_are_not_kept_on_the_source_grid(per_tensor_model):
    """Equalization rescales the weights off the source's grid (and bias correction
    computes the converter's own rounding error): the converter's scales stay."""
    assert read_metadata(per_tensor_model.read_bytes())["weight_grid"] is None


def test_a_float_source_has_no_grid(models):
    assert source_grids(read_tflite(models["none"])) is None
    assert source_grids(read_tflite(models["float16"])) is None


def test_weights_from_a_float_file_are_the_converters_as_before(int8_float_io_model):
    """The same values from a float Keras file: nothing to keep, the converter's scales
    (max |w| / 127 per channel) stay (test_equalization checks them weight by weight)."""
    assert read_metadata(int8_float_io_model.read_bytes())["weight_grid"] is None
    tfl, layers = weight_layers(int8_float_io_model)
    kernel = tfl.tensors[layers["Conv1"].kernel]
    other = tuple(range(1, kernel.data.ndim))
    q_max = np.abs(kernel.data.astype(np.int64)).max(axis=other)
    assert set(q_max.tolist()) <= {0, 127}  # the converter's grid: every channel spans 127


def test_per_tensor_weights_take_one_multiple_for_the_whole_tensor():
    from mobilenet_v2.lite.weight_grid import _on_grid

    offsets = np.array([[100, -20], [-200, 7]], np.int64)  # channel 1 needs 2x
    grid = Grid(offsets, np.full(2, 0.5, np.float32), 0)
    multiples, scales, values = _on_grid(grid, per_channel=True)
    assert multiples.tolist() == [1, 2] and scales.tolist() == [0.5, 1.0]
    assert values.tolist() == [[100, -20], [-100, 4]]  # 3.5 rounds half away from zero
    multiples, scales, values = _on_grid(grid, per_channel=False)
    assert scales.tolist() == [1.0] and values.tolist() == [[50, -10], [-100, 4]]
