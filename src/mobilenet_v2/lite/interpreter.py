"""Run a TFLite image classifier with LiteRT: NumPy, Pillow and LiteRT only, no TensorFlow.

Works for our converted models (float32, float16, dynamic-range, int8 or uint8 input and
output, preprocessing recorded inside the file) and for third-party MobileNet-style
classifiers such as TF-slim's uint8 models with 1001 classes (index 0 = background).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mobilenet_v2.base.errors import ModelFileError
from mobilenet_v2.base.preprocess import normalize
from mobilenet_v2.base.quantization import dequantize
from mobilenet_v2.base.quiet import silenced_stderr
from mobilenet_v2.lite.arithmetic import check_softmax_scales, round_half_away
from mobilenet_v2.lite.model_description import describe_model, pixel_grid
from mobilenet_v2.lite.tflite_file import (
    activations_16bit,
    litert_load_error,
    parse_tflite,
    read_model_bytes,
)


class TFLiteClassifier:
    """A `.tflite` classifier: `predict(images)` takes preprocessed float32 NHWC images and
    returns float32 scores, quantizing the input and dequantizing the output as the model's
    tensors require."""

    def __init__(
        self,
        path: str | os.PathLike,
        num_threads: int | None = None,
        xnnpack: bool | None = None,
        reference_kernels: bool = False,
        preserve_all_tensors: bool = False,
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.path = Path(path)
        self.num_threads = num_threads
        self.reference_kernels = reference_kernels
        raw = self.raw = read_model_bytes(self.path)
        if reference_kernels:  # LiteRT's reference softmax aborts the process on these
            check_softmax_scales(parse_tflite(raw, self.path))
        asked_for_xnnpack = xnnpack is True
        if xnnpack is None:
            # On for every kind of model, as LiteRT's own default. Dynamic-range models too:
            # XNNPACK and the built-in hybrid kernels score the same top-1 on the sample
            # images, and the gaps on subsets change sign with the CPU, so they are kernel
            # rounding noise; XNNPACK runs the model faster (docs/benchmarks.md).
            xnnpack = True
        # Reference kernels: TFLite's plain reference implementations, the arithmetic that
        # golden tensors follow. A delegate (XNNPACK) would compute intermediates out of sight.
        # XNNPACK has no 16x8 kernels: such a model runs on the built-in ones, and says so
        # (a note where XNNPACK was asked for; the kernels column everywhere).
        wide = activations_16bit(raw)
        self.xnnpack = xnnpack and not reference_kernels and not preserve_all_tensors and not wide
        resolver = (
            OpResolverType.BUILTIN_REF
            if reference_kernels
            else OpResolverType.AUTO
            if self.xnnpack
            else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        try:
            with silenced_stderr():  # LiteRT logs "Created XNNPACK delegate" on stderr
                self.interpreter = Interpreter(
                    model_content=raw,
                    num_threads=num_threads,
                    experimental_op_resolver_type=resolver,
                    experimental_preserve_all_tensors=preserve_all_tensors,
                )
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:  # how LiteRT reports files it cannot load
            raise litert_load_error(raw, self.path, exc) from exc
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4 or inputs[0]["shape"][-1] != 3:
            shapes = [list(map(int, d["shape"])) for d in inputs]
            raise ModelFileError(
                f"{self.path}: not an image classifier (input shapes {shapes}; expected one "
                "NHWC input with 3 channels)"
            )
        if len(outputs) != 1 or len(outputs[0]["shape"]) != 2:
            shapes = [list(map(int, d["shape"])) for d in outputs]
            raise ModelFileError(
                f"{self.path}: not an image classifier (output shapes {shapes}; expected one "
                "(batch, classes) output)"
            )
        self._input, self._output = inputs[0], outputs[0]
        self.input_size = (int(self._input["shape"][1]), int(self._input["shape"][2]))
        self.classes = int(self._output["shape"][1])
        scale, zero_point = self._input["quantization"]
        grid = pixel_grid(self._input["dtype"], scale, zero_point)
        described = describe_model(raw, self.path, grid, self.classes)
        self.preprocessing = described.preprocessing
        # TF-slim models have a "background" class 0 before the 1000 ImageNet classes.
        self.label_offset = described.label_offset
        self.labels = described.labels  # the model's own class names, or None
        self.metadata, self.notes = described.standard, described.notes
        if wide and asked_for_xnnpack:
            self.notes = (
                *self.notes,
                f"{self.path}: XNNPACK has no 16x8 kernels: this int16x8 model runs on "
                "TFLite's built-in kernels",
            )
        # Set where the metadata's normalization cannot be applied: `preprocessing_for`
        # raises it unless the caller gives a mean and std.
        self.normalization_problem = described.normalization_problem

    @property
    def output_step(self) -> float:
        """The smallest nonzero change of a score: the output's scale if it is quantized."""
        if np.dtype(self._output["dtype"]).kind == "f":
            return 0.0
        return float(self._output["quantization"][0])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        if dtype.kind == "f":
            return x.astype(dtype)
        scale, zero_point = self._input["quantization"]
        if not scale:
            raise ModelFileError(f"{self.path}: integer input without quantization parameters")
        info = np.iinfo(dtype)
        # As LiteRT's own QUANTIZE on the kernels in use: its reference kernels round halves
        # away from zero (std::round), its optimized kernels and XNNPACK to even (np.rint).
        scaled = x / np.float32(scale)
        q = (round_half_away(scaled) if self.reference_kernels else np.rint(scaled)) + zero_point
        return np.clip(q, info.min, info.max).astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if y.dtype.kind == "f":
            return y.astype(np.float32)
        scale, zero_point = self._output["quantization"]
        return dequantize(y, scale, zero_point)

    def quantize_input(self, images: np.ndarray) -> np.ndarray:
        """Preprocessed float32 images as the model's input type (quantized if integer)."""
        return self._quantize(np.asarray(images, np.float32))

    def invoke(self, model_input: np.ndarray) -> np.ndarray:
        """One raw run on an input of the model's own type and shape (as benchmark_model)."""
        self.interpreter.set_tensor(self._input["index"], model_input)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])

    def predict_pixels(self, pixels: np.ndarray, mean: float, std: float) -> np.ndarray:
        """`predict(normalize(pixels, mean, std))` for uint8 (N, H, W, 3) pixels, to the bit,
        without the float32 images: a pixel has 256 values, so normalizing and quantizing
        go through one table built with the same arithmetic (a gather instead of six passes
        over every image)."""
        levels = normalize(np.arange(256, dtype=np.uint8), mean, std)
        table = self._quantize(levels) if self.input_dtype.kind != "f" else levels
        return self._run(table.astype(self.input_dtype)[np.asarray(pixels, np.uint8)])

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Scores (N, classes without background) for preprocessed float32 (N, H, W, 3)."""
        return self._run(self._quantize(np.asarray(images, np.float32)))

    def _run(self, model_input: np.ndarray) -> np.ndarray:
        if model_input.ndim != 4 or model_input.shape[1:3] != self.input_size:
            raise ValueError(
                f"{self.path}: expects images of {self.input_size[0]}x{self.input_size[1]}; "
                f"received shape {model_input.shape}"
            )
        scores = []
        # One at a time: works for fixed-batch models too, and a larger batch is no faster
        # with XNNPACK (docs/benchmarks.md).
        for image in model_input:
            scores.append(self._dequantize(self.invoke(image[None]))[0])
        return np.stack(scores)[:, self.label_offset :]
