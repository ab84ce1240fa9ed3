"""The local stack's S3 server: moto, with conditional writes made atomic as S3 makes them.

moto serves each request on a thread of its own and checks ``If-None-Match: *`` (and ``If-Match``)
before it stores the object, without a lock: two writers claiming one key at the same moment can
both succeed, which S3 never allows. The audit trail's writers on several machines rely on that
guarantee (``govdeploy.trust.anchors``), so here every conditional PUT runs under one lock.

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


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    make_conditional_writes_atomic()
    moto_main(argv)


if __name__ == "__main__":
    main()
