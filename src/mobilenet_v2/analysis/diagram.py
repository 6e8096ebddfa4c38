"""A picture of the network from its layers-to-tensor map: one box per stage (stem, each
inverted-residual block, head) listing its convolutions with kernel, stride and output shape,
drawn with matplotlib in reading order (columns, top to bottom)."""

from __future__ import annotations

import io
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

from mobilenet_v2.analysis.tensor_map import ModelTable, OpInfo
from mobilenet_v2.base.architecture import INPUT_LAYER, POOLING_LAYER, batch_norm_name, blocks

# The file suffixes a diagram can be written as (matplotlib's name for each): a file holds
# what its name says, so any other suffix is refused rather than given PNG bytes.
DIAGRAM_FORMATS = {".svg": "svg", ".pdf": "pdf", ".png": "png", ".jpg": "jpg", ".jpeg": "jpg"}


def _stage_of_layer() -> dict[str, str]:
    """Every Keras layer name below the classifier -> its stage: the block's name (`block_3`,
    `expanded_conv`) or the lone convolution's (`Conv1`, `Conv_1`), from the architecture."""
    found = {INPUT_LAYER: "input", POOLING_LAYER: "pooling", "global_max_pooling2d": "pooling"}
    for block in blocks():
        stage = block.prefix.rstrip("_") or block.convs[0].conv
        for step in block.convs:
            names = (step.conv, batch_norm_name(step.conv), step.output, f"{step.conv}_relu")
            found.update(dict.fromkeys(names, stage))
            if step.pad:
                found[f"{block.prefix}pad"] = stage
        if block.residual:
            found[f"{block.prefix}add"] = stage
    return found


_STAGES = _stage_of_layer()
_SHOWN = {
    "CONV_2D": "conv",
    "Conv2D": "conv",
    "DEPTHWISE_CONV_2D": "depthwise",
    "DepthwiseConv2D": "depthwise",
    "FULLY_CONNECTED": "dense",
    "Dense": "dense",
    "ADD": "add (residual)",
    "Add": "add (residual)",
    "PAD": "pad",
    "ZeroPadding2D": "pad",
    "MEAN": "global average",
    "AVERAGE_POOL_2D": "global average",
    "GlobalAveragePooling2D": "global average",
    "SOFTMAX": "softmax",
    "QUANTIZE": "quantize",
    "DEQUANTIZE": "dequantize",
}


@dataclass
class Stage:
    name: str
    lines: list[str] = field(default_factory=list)
    macs: int = 0
    residual: bool = False
    output: str = ""


def stages(table: ModelTable) -> list[Stage]:
    """Ops grouped by the stage their Keras layer belongs to; unnamed ops join the previous."""
    found: list[Stage] = []
    first = next((t for t in table.tensors.values() if t.kind == "input"), None)
    if first is not None:
        found.append(Stage("input", output=_shape(first.shape) + f" {first.dtype}"))
    for op in table.ops:
        layer = op.keras_layer
        name = _STAGES.get(layer, layer)
        if not name or (found and found[-1].name == name):
            stage = found[-1] if found else None
        else:
            stage = None
        if stage is None:
            stage = Stage(name or op.type)
            found.append(stage)
        stage.macs += op.macs
        if op.type in ("ADD", "Add"):
            stage.residual = True
        if op.outputs:
            out = table.tensors[op.outputs[-1]]
            stage.output = _shape(out.shape) + f" {out.dtype}"
        line = _describe(table, op)
        if line:
            stage.lines.append(line)
    return found


def _shape(shape: tuple[int, ...]) -> str:
    dims = [d for d in shape[1:]] if len(shape) > 1 else list(shape)
    return "x".join(str(d) for d in dims)


def _describe(table: ModelTable, op: OpInfo) -> str:
    kind = _SHOWN.get(op.type)
    if kind is None or not op.outputs:
        return ""
    out = table.tensors[op.outputs[-1]].shape
    if kind in ("conv", "depthwise") and op.weights:
        kernel = table.tensors[op.weights[0]]
        kh, kw = kernel.shape[:2] if kernel.layout in ("HWIO", "HWC1") else kernel.shape[1:3]
        stride = ""
        if op.inputs and len(out) == 4:
            rows_in = table.tensors[op.inputs[0]].shape[1]
            if rows_in and out[1] and rows_in // out[1] > 1:
                stride = f" /{math.ceil(rows_in / out[1])}"
        return f"{kind} {kh}x{kw}{stride} → {_shape(out)}"
    if kind == "dense":
        return f"dense → {_shape(out)}"
    return kind


def render(table: ModelTable, path_suffix: str = ".png", rows_per_column: int = 8) -> bytes:
    """The diagram as the bytes of a file ending in `path_suffix` (a `DIAGRAM_FORMATS` key)."""
    image_format = DIAGRAM_FORMATS.get(path_suffix.lower())
    if image_format is None:
        raise ValueError(f"no diagram format for suffix {path_suffix!r}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    found = stages(table)
    columns = math.ceil(len(found) / rows_per_column)
    box_w, box_h, gap_x, gap_y = 3.6, 1.05, 0.9, 0.35
    width = columns * (box_w + gap_x) + 0.4
    height = rows_per_column * (box_h + gap_y) + 1.0
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    totals = table.totals
    ax.text(
        0.2,
        height - 0.35,
        f"{Path(table.source).name}   {totals['macs'] / 1e6:.1f} M MACs, "
        f"{totals['weights'] / 1e6:.2f} M weights, {totals['params'] / 1e6:.2f} M parameters",
        fontsize=11,
        fontweight="bold",
        va="center",
    )
    centers = []
    for i, stage in enumerate(found):
        col, row = divmod(i, rows_per_column)
        x = 0.2 + col * (box_w + gap_x)
        y = height - 0.8 - (row + 1) * (box_h + gap_y) + gap_y
        color = (
            "#d9ead3"
            if stage.residual
            else "#dae8fc"
            if stage.name.startswith(("block", "expanded"))
            else "#eeeeee"
        )
        ax.add_patch(
            FancyBboxPatch(
                (x, y),
                box_w,
                box_h,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                fc=color,
                ec="#555555",
                lw=0.8,
            )
        )
        title = f"{stage.name}" + ("  (+ residual)" if stage.residual else "")
        macs = f"{stage.macs / 1e6:.1f} M MACs" if stage.macs else ""
        ax.text(x + 0.08, y + box_h - 0.16, title, fontsize=8.5, fontweight="bold", va="center")
        ax.text(
            x + box_w - 0.08,
            y + box_h - 0.16,
            macs,
            fontsize=7.5,
            ha="right",
            va="center",
            color="#444444",
        )
        body = stage.lines[-4:] if stage.lines else [stage.output]
        for k, line in enumerate(body):
            ax.text(
                x + 0.12,
                y + box_h - 0.38 - k * 0.17,
                line,
                fontsize=7.2,
                va="center",
                family="monospace",
            )
        centers.append((x + box_w / 2, y, y + box_h))
    for (x0, bottom0, _), (x1, _, top1) in itertools.pairwise(centers):
        if abs(x0 - x1) < 1e-6:
            ax.annotate(
                "", (x1, top1), (x0, bottom0), arrowprops={"arrowstyle": "->", "color": "#333333"}
            )
        else:  # next column: through the gap between the columns, into its top
            mid_x = x0 + box_w / 2 + gap_x / 2
            low, high = bottom0 - gap_y / 2, top1 + gap_y / 2
            ax.plot(
                [x0, x0, mid_x, mid_x, x1], [bottom0, low, low, high, high], color="#999999", lw=1
            )
            ax.annotate(
                "", (x1, top1), (x1, high), arrowprops={"arrowstyle": "->", "color": "#999999"}
            )
    buffer = io.BytesIO()
    fig.savefig(
        buffer,
        format=image_format,
        dpi=110,
        bbox_inches="tight",
    )
    plt.close(fig)
    return buffer.getvalue()
