"""The local stack's S3 server: moto, with conditional writes made atomic as S3 makes them.

moto serves each request on a thread of its own and checks ``If-None-Match: *`` (and ``If-Match``)
before it stores the object, without a lock: two writers claiming one key at the same moment can
both succeed, which S3 never allows. The audit trail's writers on several machines rely on that
guarantee (``govdeploy.trust.anchors``), so here every conditional PUT runs under one lock.

moto also lists object versions by deep-copying every version of every key in the bucket, bodies
included, before it filters by prefix: on a bucket with a day of I/O log objects one listing took
gigabytes. Here the listing copies only the attributes a version entry shows and shares the body.

Run as ``python -m govdeploy.stack.s3_emulator -H HOST -p PORT`` (moto_server's arguments).
"""

from __future__ import annotations

import functools
import threading
from typing import Any


def make_conditional_writes_atomic() -> None:
    """Serialise moto's handling of conditional PUTs (the check and the write)."""
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    if getattr(original, "govdeploy_atomic", False):
        return
    lock = threading.Lock()

    @functools.wraps(original)
    def put_object(self: S3Response, *args: Any, **kwargs: Any) -> Any:
        if self.headers.get("If-None-Match") or self.headers.get("If-Match"):
            with lock:
                return original(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    put_object.govdeploy_atomic = True  # type: ignore[attr-defined]
    S3Response.put_object = put_object  # type: ignore[method-assign]


def make_version_listing_cheap() -> None:
    """Make moto's ``list_object_versions`` copy versions without their bodies.

    The copies only carry a listing entry (name, version id, dates, size, ...; moto sets
    ``is_latest`` on them). ``copy.deepcopy`` of a version is used nowhere else in moto's S3."""
    from moto.s3.models import FakeDeleteMarker, FakeKey

    if getattr(FakeKey, "govdeploy_cheap_listing", False):
        return

    class ListedKey(FakeKey):
        """A listing entry sharing the stored key's body: it must never close it."""

        __module__ = "moto.s3.models"  # moto's model metaclass names the service by it

        def __del__(self) -> None:
            pass

    def entry(self: Any, memo: dict[int, Any]) -> Any:
        clone = object.__new__(ListedKey if isinstance(self, FakeKey) else type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    FakeKey.__deepcopy__ = entry  # type: ignore[attr-defined]
    FakeDeleteMarker.__deepcopy__ = entry  # type: ignore[attr-defined]
    FakeKey.govdeploy_cheap_listing = True  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    make_conditional_writes_atomic()
    make_version_listing_cheap()
    moto_main(argv)


if __name__ == "__main__":
    main()
