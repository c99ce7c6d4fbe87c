"""Altering a stored file the way a failing disk or a tamperer would: same size, other bytes."""

from pathlib import Path


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Invert every bit of one byte (the middle one unless `offset` is given): the file keeps its size
    and is certain to differ, where writing chosen bytes could write back what was there."""
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0xFF
    Path(path).write_bytes(bytes(data))
