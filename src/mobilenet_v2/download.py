"""Download a file once into a cache, with a progress bar, failing fast when offline."""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from mobilenet_v2.errors import DownloadError

# Seconds without an answer before a connection attempt or a stalled read gives up.
TIMEOUT_S = 15.0


def download(url: str, destination: Path, hint: str) -> Path:
    """Fetch `url` to `destination` atomically (temporary file, then rename).

    `hint` tells the user what to do instead when the download fails (for example which
    flag takes a local file); it ends the one-line error message.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=destination.name, leave=False
            ) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(tmp, destination)
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
        Path(tmp).unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"{url}: download failed ({reason}); {hint}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return destination
