"""Download a file once into a cache, with a progress bar, failing fast when offline."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from mobilenet_v2.base.errors import DownloadError
from mobilenet_v2.base.outputs import atomic_file

T = TypeVar("T")

# Seconds without an answer before a connection attempt or a stalled read gives up.
TIMEOUT_S = 15.0


def download(url: str, destination: Path, hint: str) -> Path:
    """Fetch `url` to `destination` atomically (`outputs.atomic_file`).

    `hint` tells the user what to do instead when the download fails (for example which
    flag takes a local file); it ends the one-line error message.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            atomic_file(destination) as out,
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp,
        ):
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=destination.name, leave=False
            ) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"{url}: download failed ({reason}); {hint}") from None
    return destination


def all_downloads(*fetches: Callable[[], T]) -> list[T]:
    """Each fetch's result, every fetch tried: the ones that fail (offline, all of them) are
    reported together in one DownloadError, not one failure per try."""
    results, failed = [], []
    for fetch in fetches:
        try:
            results.append(fetch())
        except DownloadError as exc:
            failed.append(str(exc))
    if len(failed) > 1:
        listed = " ".join(f"({i}) {message}" for i, message in enumerate(failed, 1))
        raise DownloadError(f"{len(failed)} downloads failed: {listed}")
    if failed:
        raise DownloadError(failed[0])
    return results
