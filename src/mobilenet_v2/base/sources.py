"""Where images come from: local files, directories (recursive), globs, and URLs of any
filesystem pyarrow reads (`file://`, `s3://`, `gs://`, `hdfs://`), so that a cluster's workers
read from object storage instead of one machine's disk.

A source is a local `Path` or a URL string. Local sources need nothing beyond the core; URLs
need pyarrow (the `parquet` extra, part of `ray` and `dev`), imported only when one is given.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from mobilenet_v2.base.errors import ImageError, MobileNetV2Error, first_line
from mobilenet_v2.base.extras import pyarrow_for

Source = Path | str
# Extensions that directory expansion picks up (files named explicitly may have any).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
    | {".ppm", ".pgm", ".pbm"}
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB = re.compile(r"[*?[]")


def is_url(source: Source) -> bool:
    return isinstance(source, str) and _URL.match(source) is not None


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_sources(inputs: list[str | os.PathLike]) -> list[Source]:
    """Every image the inputs name, in order: a file as given, a directory's images
    (recursively, sorted), a glob's matches (sorted; `**` spans folders), and the same for
    URLs. A directory or glob that finds no image, and a URL that cannot be listed, are
    one-line errors naming them."""
    found: list[Source] = []
    for item in inputs:
        if is_url(item):
            found.extend(_list_url(str(item)))
            continue
        path = Path(item)
        if not path.exists() and _GLOB.search(str(item)):
            matches = sorted(glob.glob(str(item), recursive=True))
            # What a glob names with an image's name is an input even when it is not a
            # file (a folder named x.jpg): a row with an error, never silently dropped.
            files = [Path(m) for m in matches if os.path.isfile(m) or is_image_name(m)]
            if not files:
                raise ImageError(f"{item}: no files match")
            found.extend(files)
        elif path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and is_image_name(p.name))
            if not images:
                raise ImageError(f"{path}: directory contains no images")
            found.extend(images)
        else:
            found.append(path)  # missing or unreadable: that image's error, not the run's
    return found


def read_url(source: str) -> bytes:
    """The bytes of the image at a URL; a missing or unreadable one is an `ImageError`
    naming it. (Local files are opened by Pillow itself, lazily: see `decode_image`.)"""
    fs, where = _filesystem(str(source))
    pa = _pyarrow()
    try:
        info = fs.get_file_info(where)
        if info.type == pa.fs.FileType.NotFound:
            raise ImageError(f"{source}: image not found")
        if info.type == pa.fs.FileType.Directory:
            raise ImageError(f"{source}: is a directory, not an image")
        with fs.open_input_stream(where) as stream:
            return stream.read()
    except (OSError, pa.ArrowException) as exc:
        raise ImageError(f"{source}: cannot read ({first_line(exc)})") from None


def _list_url(url: str) -> list[str]:
    pa = _pyarrow()
    fs, where = _filesystem(url)
    pattern = None
    if _GLOB.search(where):  # list from the folder above the first wildcard, then match
        pattern = _glob_pattern(where)
        where = where[: _GLOB.search(where).start()].rpartition("/")[0] or "/"
    try:
        info = fs.get_file_info(where)
        if info.type == pa.fs.FileType.File and pattern is None:
            return [url]
        if info.type == pa.fs.FileType.NotFound:
            raise MobileNetV2Error(f"{url}: not found")
        listing = fs.get_file_info(pa.fs.FileSelector(where, recursive=True))
    except (OSError, pa.ArrowException) as exc:
        raise MobileNetV2Error(f"{url}: cannot list ({first_line(exc)})") from None
    files = sorted(i.path for i in listing if i.type == pa.fs.FileType.File)
    if pattern is None:
        files = [f for f in files if is_image_name(f)]
    else:
        files = [f for f in files if pattern.fullmatch(f)]
    if not files:
        raise ImageError(f"{url}: {'no files match' if pattern else 'contains no images'}")
    return [_url_of(url, f) for f in files]


def _url_of(listed: str, found: str) -> str:
    """The URL of a file found under the URL `listed`: the same scheme, host and query (a
    region or an endpoint), and the file's path percent-encoded again (pyarrow lists decoded
    paths; `my photos/a.jpg` must become `my%20photos/a.jpg` to be read back)."""
    parts = urlsplit(listed)
    path = found
    if parts.netloc and found.startswith(parts.netloc + "/"):  # s3, gs: bucket/key
        path = found[len(parts.netloc) :]
    if not path.startswith("/"):
        path = "/" + path
    return urlunsplit((parts.scheme, parts.netloc, quote(path), parts.query, ""))


def _glob_pattern(pattern: str) -> re.Pattern[str]:
    """A glob as local globs read it: `*` and `?` within one folder, `**` across folders."""
    regex = ""
    for token in re.split(r"(\*\*/?|\*|\?)", pattern):
        if token.startswith("**"):
            regex += "(?:.*/)?" if token.endswith("/") else ".*"
        elif token == "*":
            regex += "[^/]*"
        elif token == "?":
            regex += "[^/]"
        else:
            regex += fnmatch.translate(token)[4:-3]  # brackets as fnmatch reads them
    return re.compile(regex)


def _filesystem(url: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it) for a URL; an unknown scheme or a store that
    cannot be reached is a one-line error naming the URL."""
    pa = _pyarrow()
    try:
        return pa.fs.FileSystem.from_uri(url)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise MobileNetV2Error(
            f"{url}: cannot read this URL ({first_line(exc)}); pyarrow reads file://, "
            "s3://, gs:// and hdfs:// URLs"
        ) from None


def _pyarrow() -> Any:
    return pyarrow_for("URL sources")
