"""MediaPipe Tasks' ImageClassifier against our classify on the same models (issue 13): what
an app gets, what the whole-image resize costs against the ImageNet crop, and what
calibrating an INT8 model for MediaPipe's resize buys.

    python benchmarks/mediapipe_accuracy.py MODEL.tflite … [--images DIR]

For each model, top-1 on the labelled images (synsets in the file names): MediaPipe
(images decoded by Pillow into RGB frames, as an app hands it frames), ours with
`--resize mediapipe` (its resize), with `--resize stretch`, and with the crop; MediaPipe
given our crop as its region of interest (the central 87.5 % square); and how many images
MediaPipe and `--resize mediapipe` agree on. One image of 500 is 0.2 points.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image
from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOBILENET_V2_SHARED", ROOT.parent / "shared"))


def mediapipe_top1(model: str, images: list[Path], crop: bool = False) -> np.ndarray:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    from mediapipe.tasks.python.components.containers.rect import RectF
    from mediapipe.tasks.python.vision.core.image_processing_options import (
        ImageProcessingOptions,
    )

    from mobilenet_v2.base.preprocess import central_square

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=model), max_results=1
    )
    found = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image in images:
            rgb = np.asarray(Image.open(image).convert("RGB"))
            frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
            roi = None
            if crop:  # our crop, as MediaPipe's region of interest (README)
                left, top, right, bottom = central_square(rgb.shape[1], rgb.shape[0])
                box = RectF(left=left, top=top, right=right, bottom=bottom)  # not its order
                roi = ImageProcessingOptions(region_of_interest=box)
            result = classifier.classify(frame, roi)
            found.append(result.classifications[0].categories[0].index)
    return np.array(found)


def our_top1(model: str, images: list[Path], resize: str) -> np.ndarray:
    from mobilenet_v2.base.preprocess import geometry_of, load_pixels
    from mobilenet_v2.inference.classifier import load_tflite, predict_pixels, preprocessing_for

    classifier = load_tflite(model)
    prep = preprocessing_for(classifier, resize=resize)
    pixels = np.stack([load_pixels(image, *geometry_of(prep)) for image in images])
    scores = predict_pixels(classifier, pixels, prep["mean"], prep["std"])
    return np.argmax(scores, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--images", default=str(SHARED / "data" / "imagenet" / "sample"))
    args = parser.parse_args()

    from mobilenet_v2.base.labels import synset_to_index
    from mobilenet_v2.base.machine import describe

    images = sorted(p for p in Path(args.images).rglob("*") if p.suffix in (".JPEG", ".jpg"))
    truth = np.array([synset_to_index()[p.name.split("_")[0]] for p in images])
    rows = []
    for model in args.models:
        theirs = mediapipe_top1(model, images)
        theirs_cropped = mediapipe_top1(model, images, crop=True)
        ours = {r: our_top1(model, images, r) for r in ("mediapipe", "stretch", "crop")}
        rows.append(
            [Path(model).name, f"{np.mean(theirs == truth):.1%}"]
            + [f"{np.mean(theirs_cropped == truth):.1%}"]
            + [f"{np.mean(ours[r] == truth):.1%}" for r in ours]
            + [f"{np.mean(theirs == ours['mediapipe']):.1%}"]
        )
    headers = ["model", "MediaPipe", "MediaPipe, central ROI", "ours mediapipe", "ours stretch"]
    headers += ["ours crop", "agree"]
    print(tabulate(rows, headers, tablefmt="github"))
    print(f"\n{len(images)} images; measured on {describe()}")


if __name__ == "__main__":
    main()
