"""Weights that already sit on a quantization grid keep it (issue 27): the hosted model is
quantization-aware trained (uint8, one step per tensor), and its integer conversions carry
its weights without rounding them a second time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_TFLITE

from mobilenet_v2.lite.layer_map import map_tflite
from mobilenet_v2.lite.model_metadata import read_standard_metadata
from mobilenet_v2.lite.record import read_metadata
from mobilenet_v2.lite.tflite_file import parse_tflite, read_tflite
from mobilenet_v2.lite.weight_grid import (
    Grid,
    GridKept,
    _on_grid,
    keep_weight_grid,
    source_grids,
)
from mobilenet_v2.tf.convert import weight_grids

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


@pytest.mark.integration  # converts (the fixture is asked for by name)
@pytest.mark.parametrize("model", ["int8_model", "int16x8_model"])
def test_weights_dequantize_to_exactly_the_sources_in_every_fitting_channel(model, request):
    """Channels whose offsets fit int8 carry the source's values to the bit, in the INT8 and
    the A16W8 conversion alike; the others sit at exactly twice the source's step, each
    weight within one source step of its value."""
    tfl, layers = weight_layers(request.getfixturevalue(model))
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


@pytest.mark.integration
@pytest.mark.parametrize("model", ["int8_model", "int16x8_model"])
def test_biases_are_requantized_to_the_kept_weight_scales(model, request):
    """int32 biases (INT8) and int64 ones (A16W8): the scale is the input's times the kept
    weight scale, the value the source's float bias rounded once onto it."""
    tfl, layers = weight_layers(request.getfixturevalue(model))
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
        # Half a bias step: the float bias rounded once onto its grid. In float64: an int64
        # bias's step is finer than float32 resolves at these magnitudes. The float model's
        # biases are the source's in float32, with batch norm folded (1e-7 relative).
        got = bias.data.astype(np.float64) * bias.scales.astype(np.float64)
        want = want.astype(np.float64)
        assert np.all(np.abs(got - want) <= bias.scales / 2 * 1.0001 + 1e-7 * np.abs(want))


def test_the_model_and_its_description_say_the_grid_was_kept(int8_model):
    raw = int8_model.read_bytes()
    kept = GridKept(**read_metadata(raw)["weight_grid"])
    assert (kept.layers, kept.channels, kept.exact, kept.largest_multiple) == (
        53,
        CHANNELS,
        FITTING,
        2,
    )
    assert kept.converter_scales == []  # as JSON keeps it
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


def test_a_channel_that_does_not_fit_takes_the_smallest_multiple_that_does():
    offsets = np.array([[100, -20], [-200, 7], [255, -3]], np.int64)  # 2x, 3x (255 > 254)
    grid = Grid(offsets, np.full(3, 0.5, np.float32), 0)
    multiples, scales, values = _on_grid(grid)
    assert multiples.tolist() == [1, 2, 3] and scales.tolist() == [0.5, 1.0, 1.5]
    assert values.tolist() == [[100, -20], [-100, 4], [85, -1]]  # 3.5 rounds away from zero


def test_why_a_quantized_source_keeps_its_grid_or_not(tmp_path):
    hosted = str(FIXTURE_TFLITE)
    grids, why = weight_grids(hosted, "int16x8", per_tensor=False)
    assert len(grids) == 53 and why == ""
    grids, why = weight_grids(hosted, "int8", per_tensor=True)
    assert grids is None and why.startswith("--per-tensor weights take one scale per tensor")
    assert weight_grids(hosted, "int8", False, ["equalize"]) == (None, "--equalize rescales them")
    assert weight_grids(hosted, "float16", per_tensor=False) == (None, "")
    keras_file = tmp_path / "w.weights.h5"
    keras_file.write_bytes(b"\x89HDF\r\n\x1a\n")  # only its first bytes are read
    assert weight_grids(str(keras_file), "int8", per_tensor=False) == (None, "")


def test_a_layer_whose_bias_overflows_on_the_grid_keeps_the_converters_scales(
    int8_float_io_model, fixture_model
):
    """The float-source model's weights are the converter's: put back on the hosted model's
    grid they are its values; a bias too large for int32 on that grid leaves its layer as the
    converter made it, named in the summary."""
    from mobilenet_v2.tf.equalization import folded_biases

    grids = source_grids(read_tflite(FIXTURE_TFLITE))
    biases = folded_biases(fixture_model)
    data, kept = keep_weight_grid(int8_float_io_model.read_bytes(), grids, biases)
    assert (kept.exact, kept.converter_scales) == (FITTING, ())
    biases["block_5_expand"] = biases["block_5_expand"] + 1e6  # ~1e12 steps of its bias
    data, kept = keep_weight_grid(int8_float_io_model.read_bytes(), grids, biases)
    fitting = int((grids["block_5_expand"].channel_max() <= 127).sum())
    assert kept.converter_scales == ("block_5_expand",) and kept.exact == FITTING - fitting
    assert "layers block_5_expand keep the converter's scales" in kept.summary()
    converted, _ = weight_layers(int8_float_io_model)
    tfl = parse_tflite(data, "kept")
    layer = map_tflite(tfl).convolutions["block_5_expand"]
    before = converted.tensors[map_tflite(converted).convolutions["block_5_expand"].kernel]
    np.testing.assert_array_equal(tfl.tensors[layer.kernel].data, before.data)


def test_convert_says_when_the_grid_was_kept(int8_model, tmp_path, monkeypatch, capsys):
    """The command reads what the written model records and says it (here `convert_file` is
    replaced by a copy of the session's INT8 model, which kept the grid)."""
    import shutil

    import mobilenet_v2.tf.convert as convert_module
    from mobilenet_v2.cli import main

    def copy(output, *args, **kwargs):
        return Path(shutil.copy(int8_model, output))

    monkeypatch.setattr(convert_module, "convert_file", copy)
    out = tmp_path / "m.tflite"
    assert main(["convert", "--output", str(out), "--weights", str(FIXTURE_TFLITE)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "weights kept on the source's quantization grid: 17993 of 18056 output channels "
        "exactly, 63 at up to 2x its step"
    )
