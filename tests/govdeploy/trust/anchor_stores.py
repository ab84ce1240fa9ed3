"""Anchor stores for tests without a bucket: one in memory, one of files shared between processes.

Both claim like the bucket does: a sequence number is written once (a conditional write), a
second claim of it loses.
"""

from __future__ import annotations

from pathlib import Path

from govdeploy.trust.anchors import Anchor, Claimed, anchor_key


class MemoryAnchors:
    def __init__(self) -> None:
        self.by_seq: dict[int, Anchor] = {}
        self.fail = False  # set: every call raises, as an unreachable bucket does

    def _reachable(self) -> None:
        if self.fail:
            raise ConnectionError("bucket unreachable")

    def claim(self, anchor: Anchor) -> bool:
        self._reachable()
        if anchor.seq in self.by_seq:
            return False
        self.by_seq[anchor.seq] = anchor
        return True

    def after(self, seq: int) -> list[Claimed]:
        self._reachable()
        return [
            Claimed(seq=s, key=anchor_key(s), anchor=a) for s, a in sorted(self.by_seq.items()) if s > seq
        ]

    def all(self) -> list[Anchor]:
        self._reachable()
        return [a for _, a in sorted(self.by_seq.items())]


class FileAnchors:
    """Anchors shared between processes, one file each, created exclusively (a claim)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(exist_ok=True)

    def claim(self, anchor: Anchor) -> bool:
        try:
            with (self.root / f"{anchor.seq:012d}.json").open("x") as out:
                out.write(anchor.model_dump_json())
        except FileExistsError:
            return False
        return True

    def after(self, seq: int) -> list[Claimed]:
        found = []
        for path in sorted(self.root.iterdir()):
            number = int(path.stem)
            if number > seq:
                text = path.read_text()
                if not text:  # a claim being written right now: read at the next catch-up
                    break
                found.append(
                    Claimed(seq=number, key=anchor_key(number), anchor=Anchor.model_validate_json(text))
                )
        return found

    def all(self) -> list[Anchor]:
        return [a.anchor for a in self.after(0) if a.anchor is not None]
