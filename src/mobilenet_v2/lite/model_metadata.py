"""The standard TFLite Model Metadata that MediaPipe Tasks, LiteRT apps and Android Studio read:
the `TFLITE_METADATA` flatbuffer beside the graph, and its associated files (the label file) in
a zip archive appended to the model. Write it into our models, read it from anyone's.

The flatbuffer is built and parsed with the official schema module that MediaPipe ships
(`mediapipe/tasks/metadata/metadata_schema_py_generated.py`, generated from
`metadata_schema.fbs`). tflite-support, its old home, pins protobuf < 4 and would break
TensorFlow; MediaPipe 1.2.3's own writer and displayer import a native module its wheel lacks.
The schema module is loaded from its file: importing it through the `mediapipe` package would
run that package's `__init__`, which imports all of MediaPipe Tasks, and TensorFlow if present.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from mobilenet_v2.base.errors import MissingExtraError, ModelFileError
from mobilenet_v2.lite.tflite_file import named_buffer

STANDARD_NAME = "TFLITE_METADATA"  # the name every reader looks the buffer up by
FILE_IDENTIFIER = b"M001"
LABEL_FILE = "labels.txt"
# Schema features newer than 1.0.0 that a classifier's metadata could hold, with the version
# that added them (the history in metadata_schema.fbs; the tokenizer and audio additions of
# 1.1.0-1.3.0 are left out, as they belong to text and audio models). Everything we write is
# in 1.0.0: ImageProperties, NormalizationOptions, Stats, a TENSOR_AXIS_LABELS file.
SCHEMA_FEATURES = {
    "AssociatedFile.version": "1.4.1",
    "AssociatedFileType.VOCABULARY": "1.0.1",
    "AssociatedFileType.SCANN_INDEX_FILE": "1.4.0",
    "SubGraphMetadata.input_process_units": "1.1.0",
    "SubGraphMetadata.output_process_units": "1.1.0",
    "SubGraphMetadata.input_tensor_groups": "1.2.0",
    "SubGraphMetadata.output_tensor_groups": "1.2.0",
    "SubGraphMetadata.custom_metadata": "1.5.0",
}


@functools.cache
def metadata_schema() -> ModuleType:
    """The official metadata schema module, from the installed MediaPipe wheel."""
    spec = importlib.util.find_spec("mediapipe")  # finds the package without importing it
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations)))
        path = path / "tasks" / "metadata" / "metadata_schema_py_generated.py"
    if path is None or not path.is_file():
        raise MissingExtraError(
            "standard TFLite metadata: MediaPipe's metadata schema is not installed; install "
            "it with: pip install 'mobilenet-v2[metadata]'"
        )
    module_spec = importlib.util.spec_from_file_location("mobilenet_v2_metadata_schema", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class StandardMetadata:
    """What a classifier's standard metadata says; None where it says nothing."""

    name: str | None = None
    description: str | None = None
    version: str | None = None
    author: str | None = None
    license: str | None = None
    min_parser_version: str | None = None
    color_space: str | None = None  # "RGB", "GRAYSCALE"
    mean: tuple[float, ...] | None = None  # NormalizationOptions, one value or one per channel
    std: tuple[float, ...] | None = None
    input_range: tuple[float, float] | None = None  # the input's Stats (min, max)
    score_range: tuple[float, float] | None = None  # the output's Stats (min, max)
    label_file: str | None = None
    labels: tuple[str, ...] | None = None  # one per output index, from the label file
    label_problem: str | None = None  # why a label file named in the metadata went unread
    problems: tuple[str, ...] = ()  # optional fields that could not be read (left None)
    # Why the input's normalization could not be read: unlike the other fields, a float
    # input cannot do without it, so this is the caller's to decide, not a note.
    normalization_problem: str | None = None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf8")


def _range(stats) -> tuple[float, float] | None:
    if stats is None or stats.min is None or stats.max is None:
        return None
    if len(stats.min) == 0 or len(stats.max) == 0:
        return None
    return float(np.min(stats.min)), float(np.max(stats.max))


# What flatbuffers raises on bytes that are not what the schema says (UTF-8 errors are
# ValueErrors; offsets out of range, struct and index errors; missing tables, None).
_UNREADABLE = (ValueError, TypeError, IndexError, AttributeError, struct.error)


def read_standard_metadata(model_bytes: bytes, path: str | Path) -> StandardMetadata | None:
    """The model's standard metadata, or None when it has none. Metadata that cannot be
    parsed at all (wrong identifier, cut off, pointing nowhere) is a ModelFileError naming
    the file. Its fields are all optional: one that cannot be read is left None (the defaults
    apply) and `problems` says which and why, as a label file missing from the model's zip
    leaves `labels` None and says why in `label_problem`: LiteRT runs such a model, so do we.
    MissingExtraError without MediaPipe's schema."""
    try:
        data = named_buffer(model_bytes, STANDARD_NAME)
    except ValueError as exc:
        raise ModelFileError(f"{path}: unreadable {STANDARD_NAME} ({exc})") from None
    if data is None:
        return None
    md = metadata_schema()
    try:
        if not md.ModelMetadata.ModelMetadataBufferHasIdentifier(data, 0):
            raise ValueError(f"identifier is not {FILE_IDENTIFIER.decode()}")
        root = md.ModelMetadata.GetRootAs(data, 0)
        root.SubgraphMetadataLength()  # the root table itself must be there
    except _UNREADABLE as exc:
        raise ModelFileError(f"{path}: unreadable {STANDARD_NAME} ({exc})") from None
    problems: list[str] = []
    found = _facts(md, root, problems)
    if found.get("label_file"):
        try:
            found["labels"] = _read_labels(model_bytes, found["label_file"])
        except (zipfile.BadZipFile, KeyError, ValueError, NotImplementedError, RuntimeError) as e:
            # Tools that rewrite the flatbuffer drop the zip behind it: the model still
            # runs, so this is a note (`model_description.describe_model`), not an error.
            found["label_problem"] = f"its label file {found['label_file']} is unreadable ({e})"
    return StandardMetadata(**found, problems=tuple(problems))


def _optional(problems: list[str], what: str, read: Callable[[], Any]) -> Any:
    """`read()`, or None with a line in `problems` when the field cannot be read."""
    try:
        return read()
    except _UNREADABLE as exc:
        problems.append(f"its {STANDARD_NAME} {what} is unreadable ({exc})")
        return None


def _facts(md: ModuleType, root: Any, problems: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {
        key: _optional(
            problems, key.replace("_", " "), lambda name=name: _text(getattr(root, name)())
        )
        for key, name in (
            ("name", "Name"),
            ("description", "Description"),
            ("version", "Version"),
            ("author", "Author"),
            ("license", "License"),
            ("min_parser_version", "MinParserVersion"),
        )
    }

    def tensor(kind: str) -> Any:
        subgraph = root.SubgraphMetadata(0) if root.SubgraphMetadataLength() else None
        if subgraph is None or not getattr(subgraph, f"{kind}TensorMetadataLength")():
            return None
        return md.TensorMetadataT.InitFromObj(getattr(subgraph, f"{kind}TensorMetadata")(0))

    try:
        inputs = tensor("Input")
    except _UNREADABLE as exc:
        inputs = None
        found["normalization_problem"] = f"its {STANDARD_NAME} input tensor metadata is " + (
            f"unreadable ({exc})"
        )
    outputs = _optional(problems, "output tensor metadata", lambda: tensor("Output"))
    if inputs is not None:
        found |= _input_facts(md, inputs, problems)
    if outputs is not None:
        found["score_range"] = _optional(problems, "output stats", lambda: _range(outputs.stats))
        found["label_file"] = _optional(
            problems, "label file name", lambda: _label_file(md, outputs)
        )
    return found


def _label_file(md: ModuleType, tensor: Any) -> str | None:
    labels = [
        f
        for f in tensor.associatedFiles or []
        if f.type == md.AssociatedFileType.TENSOR_AXIS_LABELS
    ]
    labels.sort(key=lambda f: f.locale is not None)  # the default locale first
    return _text(labels[0].name) if labels else None


def _input_facts(md: ModuleType, tensor: Any, problems: list[str]) -> dict:
    facts: dict = {"input_range": _optional(problems, "input stats", lambda: _range(tensor.stats))}
    facts["color_space"] = _optional(
        problems, "input color space", lambda: _color_space(md, tensor)
    )
    try:
        normalization = _normalization(md, tensor)
    except _UNREADABLE as exc:
        normalization = None
        facts["normalization_problem"] = f"its {STANDARD_NAME} input normalization is " + (
            f"unreadable ({exc})"
        )
    if normalization is not None:
        facts["mean"], facts["std"] = normalization
    return facts


def _color_space(md: ModuleType, tensor: Any) -> str | None:
    content = tensor.content
    image = md.ContentProperties.ImageProperties
    if content is None or content.contentPropertiesType != image:
        return None
    spaces = {v: k for k, v in vars(md.ColorSpaceType).items() if not k.startswith("_")}
    return spaces.get(content.contentProperties.colorSpace)


def _normalization(md: ModuleType, tensor: Any) -> tuple[tuple[float, ...], ...] | None:
    found = None
    for unit in tensor.processUnits or []:
        options = unit.options
        normalization = unit.optionsType == md.ProcessUnitOptions.NormalizationOptions
        # A mean without a std (or the reverse) says nothing usable: the defaults apply.
        if normalization and options.mean is not None and options.std is not None:
            mean = tuple(float(v) for v in options.mean)
            std = tuple(float(v) for v in options.std)
            if not (mean and std) or (1 not in (len(mean), len(std)) and len(mean) != len(std)):
                raise ValueError(f"{len(mean)} means for {len(std)} stds")
            found = mean, std
    return found


def _read_labels(model_bytes: bytes, name: str) -> tuple[str, ...]:
    """Lines of an associated label file, from the zip archive after the flatbuffer."""
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as archive:
        text = archive.read(name).decode("utf8")
    return tuple(line.rstrip("\r") for line in text.rstrip("\n").split("\n"))


def min_parser_version(meta: Any) -> str:
    """The oldest metadata parser that understands every field `meta` (a ModelMetadataT)
    populates: the newest schema version among them, at least 1.0.0. Knows the features in
    `SCHEMA_FEATURES`, which cover what an image classifier's metadata can hold."""
    md = metadata_schema()
    used = set()
    subgraphs = meta.subgraphMetadata or []
    for subgraph in subgraphs:
        for field in SCHEMA_FEATURES:
            table, _, name = field.partition(".")
            if table == "SubGraphMetadata" and getattr(subgraph, _camel(name)):
                used.add(field)
    files = list(meta.associatedFiles or [])
    for subgraph in subgraphs:
        files += subgraph.associatedFiles or []
        for tensor in (subgraph.inputTensorMetadata or []) + (subgraph.outputTensorMetadata or []):
            files += tensor.associatedFiles or []
    types = {v: k for k, v in vars(md.AssociatedFileType).items() if not k.startswith("_")}
    for f in files:
        used.add(f"AssociatedFileType.{types.get(f.type)}")
        if f.version:
            used.add("AssociatedFile.version")
    versions = [SCHEMA_FEATURES[u] for u in used if u in SCHEMA_FEATURES] + ["1.0.0"]
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _tensor_type(model: schema.ModelT, index: int) -> str:
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return names[model.subgraphs[0].tensors[index].type]


def with_standard_metadata(
    model_bytes: bytes,
    *,
    name: str,
    description: str,
    version: str,
    author: str,
    license: str,
    mean: float,
    std: float,
    labels: list[str],
) -> bytes:
    """The model with standard metadata for an RGB image classifier whose input is
    `(pixel - mean) / std` and whose output is one probability per entry of `labels`, the
    labels packed as `labels.txt` (TENSOR_AXIS_LABELS). Any metadata the model had under that
    name, and any zip it carried, is replaced."""
    md = metadata_schema()
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError("standard classifier metadata needs one input and one output")
    classes = int(graph.tensors[graph.outputs[0]].shape[-1])
    if len(labels) != classes:
        raise ValueError(f"{len(labels)} labels for {classes} output classes")

    image = _tensor_metadata(
        "image",
        f"RGB image, each channel normalized as (pixel - {mean:g}) / {std:g}",
        md.ContentProperties.ImageProperties,
        md.ImagePropertiesT(),
        _stats(_tensor_type(model, graph.inputs[0]), (0 - mean) / std, (255 - mean) / std),
    )
    image.content.contentProperties.colorSpace = md.ColorSpaceType.RGB
    normalization = md.ProcessUnitT()
    normalization.optionsType = md.ProcessUnitOptions.NormalizationOptions
    normalization.options = md.NormalizationOptionsT()
    normalization.options.mean, normalization.options.std = [float(mean)], [float(std)]
    image.processUnits = [normalization]
    scores = _tensor_metadata(
        "probability",
        f"Probabilities of the {classes} classes in the label file.",
        md.ContentProperties.FeatureProperties,
        md.FeaturePropertiesT(),
        _stats(_tensor_type(model, graph.outputs[0]), 0.0, 1.0),
    )
    label_file = md.AssociatedFileT()
    label_file.name = LABEL_FILE
    label_file.description = "Labels for the classes that the model recognizes."
    label_file.type = md.AssociatedFileType.TENSOR_AXIS_LABELS
    scores.associatedFiles = [label_file]

    subgraph = md.SubGraphMetadataT()
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = [image], [scores]
    meta = md.ModelMetadataT()
    meta.name, meta.description, meta.version = name, description, version
    meta.author, meta.license = author, license
    meta.subgraphMetadata = [subgraph]
    meta.minParserVersion = min_parser_version(meta)
    builder = flatbuffers.Builder(0)
    builder.Finish(meta.Pack(builder), file_identifier=FILE_IDENTIFIER)

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(bytes(builder.Output()), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = STANDARD_NAME, len(model.buffers) - 1
    model.metadata = [m for m in model.metadata or [] if m.name != STANDARD_NAME.encode()]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    # The associated files follow the flatbuffer as a zip archive (stored, not deflated, as
    # MediaPipe's populator writes them): readers open the model file as a zip.
    out = io.BytesIO(bytes(builder.Output()))
    out.seek(0, io.SEEK_END)
    # A fixed date (zip's earliest) rather than the clock: the same conversion gives the
    # same bytes, so a golden set's model_sha256 identifies its model.
    entry = zipfile.ZipInfo(LABEL_FILE, date_time=(1980, 1, 1, 0, 0, 0))
    entry.external_attr = 0o644 << 16  # rw-r--r--, as for any file we write
    with zipfile.ZipFile(out, "a", zipfile.ZIP_STORED) as archive:
        archive.writestr(entry, "\n".join(labels) + "\n")
    return out.getvalue()


def _tensor_metadata(name: str, description: str, content_type: int, properties, stats):
    md = metadata_schema()
    tensor = md.TensorMetadataT()
    tensor.name, tensor.description, tensor.stats = name, description, stats
    tensor.content = md.ContentT()
    tensor.content.contentPropertiesType = content_type
    tensor.content.contentProperties = properties
    return tensor


def _stats(type_name: str, low: float, high: float):
    """Stats of a tensor's values as stored: an integer tensor's range, else the range of the
    float values (as MediaPipe's writers record them)."""
    md = metadata_schema()
    stats = md.StatsT()
    integer = {"UINT8": (0.0, 255.0), "INT8": (-128.0, 127.0), "INT16": (-32768.0, 32767.0)}
    integer = integer.get(type_name)
    stats.min, stats.max = ([v] for v in integer or (float(low), float(high)))
    return stats
