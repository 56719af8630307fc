"""The one error family of recon.

Every error a user can cause (bad input, missing files, refused overwrites) is a ``ReconError``
whose message says what was wrong and what to do. The CLI prints the message without a
traceback and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path


class ReconError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class DatasetError(ReconError):
    """A dataset folder that cannot be read: missing, malformed or inconsistent files."""


class SfMError(ReconError):
    """Structure-from-motion failed to pose the images."""


class OutputExistsError(ReconError):
    """An output folder already holds results and ``--force`` was not given."""


def raise_first(checks: list[tuple[bool, str]]) -> None:
    """Raise a ReconError with the message of the first failed (ok, message) check."""
    for ok, message in checks:
        if not ok:
            raise ReconError(message)


def prepare_output_dir(path: Path, force: bool) -> Path:
    """Create ``path`` for new results, refusing to touch a non-empty folder unless ``force``.

    With ``force`` the folder's contents are removed first, so stale files never mix with new ones.
    """
    import shutil

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"Output path {path} exists and is a file. Choose another --out.")
    if path.exists() and any(path.iterdir()):
        if not force:
            raise OutputExistsError(
                f"Output folder {path} already exists and is not empty. "
                "Pass --force to overwrite it, or choose another --out."
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
