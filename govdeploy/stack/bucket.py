"""The local endpoint's bucket across restarts: the endpoint keeps objects in memory only, so
``up`` creates the object-locked bucket and restores the last snapshot into it, and ``down`` saves
a snapshot before it stops the endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from govdeploy.backends.storage import ensure_bucket
from govdeploy.config.settings import Settings
from govdeploy.errors import StackError
from govdeploy.stack import snapshot
from govdeploy.stack.components import local_s3_client

Progress = Callable[[str], None]


def snapshot_dir(settings: Settings) -> Path:
    return settings.state_dir / "s3-snapshot"


def prepare(settings: Settings, progress: Progress) -> None:
    """Create the locked bucket in a fresh endpoint and put the last snapshot back into it."""
    client = local_s3_client(settings)
    if ensure_bucket(client, settings.bucket):
        progress(f"created object-locked bucket {settings.bucket}")
        restored = snapshot.restore(client, settings.bucket, snapshot_dir(settings))
        if restored:
            progress(f"restored {restored} objects of {settings.bucket} from {snapshot_dir(settings)}")


def save(settings: Settings, progress: Progress, log: Path) -> None:
    """Save the bucket before the in-memory endpoint stops; refuse to stop it if that fails."""
    try:
        saved = snapshot.save(local_s3_client(settings), settings.bucket, snapshot_dir(settings))
    except Exception as exc:
        raise StackError(
            f"s3: saving bucket {settings.bucket} to {snapshot_dir(settings)} failed ({exc}); "
            f"the endpoint keeps running so nothing is lost; see its log {log}"
        ) from exc
    progress(f"saved {saved} objects of {settings.bucket} to {snapshot_dir(settings)}")
