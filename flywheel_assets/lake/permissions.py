"""Private folders for data about people: the lake, the landing zone, the model store.

Delta files take the process umask (0644 under the usual 022), so the promise is made by the
folder instead: a root at 0700 makes nothing below it reachable by another local user, whatever
mode each file has. Object stores have no such bits; their access is the bucket's policy.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

PRIVATE_DIR = 0o700


class PrivateFolderWarning(UserWarning):
    """A folder that should be private cannot be made so (another user's, or read-only)."""


def is_local(root: str) -> bool:
    return "://" not in root or root.startswith("file://")


def local_path(root: str) -> Path:
    return Path(root.removeprefix("file://")).absolute()


def make_private(root: str | os.PathLike, *, create: bool = True) -> Path | None:
    """Create `root` (and missing parents) as 0700, or take group and other access away from it.

    Returns the folder, or None for an object-store URI or a missing folder with create=False.
    A folder this user cannot change (another user's, a read-only mount) is left as it is, with a
    warning that says why: its owner decides who may read it.
    """
    root = os.fspath(root)
    if not is_local(root):
        return None
    path = local_path(root)
    if not path.exists():
        if not create:
            return None
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{path} is not a folder")
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077:
        return path
    if info.st_uid != os.getuid():
        _warn(path, f"it is owned by uid {info.st_uid}, not this user ({os.getuid()})")
        return path
    try:
        path.chmod(mode & PRIVATE_DIR)  # the owner's own bits stay
    except OSError as exc:
        _warn(path, exc.strerror or str(exc))
    return path


def _warn(path: Path, why: str) -> None:
    warnings.warn(
        f"{path} stays readable by other local users ({why}): make it 0700 "
        f"(chmod 700 {path}) or use a folder of this user's",
        PrivateFolderWarning,
        stacklevel=3,
    )


def exposed_paths(root: str | os.PathLike) -> list[Path]:
    """Paths under `root` another local user could reach: `root` itself if it is not private,
    and any symlink under it that leads outside (its target is not protected by `root`)."""
    base = Path(root).absolute()
    out = []
    if stat.S_IMODE(base.stat().st_mode) & 0o077:
        out.append(base)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink() and not p.resolve().is_relative_to(base.resolve()):
                out.append(p)
    return out
