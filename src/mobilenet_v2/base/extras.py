"""Optional dependencies: a feature whose extra is not installed says so in one line, naming
the extra that installs it."""

from __future__ import annotations

from typing import Any

from mobilenet_v2.base.errors import MissingExtraError


def missing_extra(
    exc: ImportError, package: str, feature: str, extra: str, instead: str = ""
) -> MissingExtraError:
    """The error to raise when importing `package` for `feature` failed with `exc`. An
    ImportError about another module (a bug inside the installed package) is raised as it is.
    """
    if exc.name and exc.name.split(".")[0] != package:
        raise exc
    return MissingExtraError(
        f"{feature}: {package} is not installed; install it with: "
        f"pip install 'mobilenet-v2[{extra}]'" + (f" ({instead})" if instead else "")
    )


def pyarrow_for(feature: str, instead: str = "") -> Any:
    """pyarrow with the parts this package uses (`fs` for URLs, `parquet` for results), or
    the one-line error naming the `parquet` extra for `feature`."""
    try:
        import pyarrow
        import pyarrow.fs
        import pyarrow.parquet
    except ImportError as exc:
        raise missing_extra(exc, "pyarrow", feature, "parquet", instead) from exc
    return pyarrow
