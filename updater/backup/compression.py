"""Streaming compressors and decompressors: gzip through ISA-L (standard gzip, several times faster
than zlib at level 6) and zstd. The output of gzip is readable by plain `gunzip`."""

from collections.abc import Iterable, Iterator

import zstandard
from isal import isal_zlib

SUFFIXES = {"gzip": "gz", "zstd": "zst"}
GZIP_WBITS = 31  # 16 + 15: a gzip header and trailer around a deflate stream
ISAL_LEVEL = 2  # ISA-L's default: about the ratio of zlib -6 at many times its speed


class TruncatedStream(Exception):
    """The compressed stream ended before its end marker: the file is incomplete."""


def compressor(kind: str):
    if kind == "gzip":
        return isal_zlib.compressobj(ISAL_LEVEL, isal_zlib.DEFLATED, GZIP_WBITS)
    if kind == "zstd":
        return zstandard.ZstdCompressor(level=3).compressobj()
    raise ValueError(f"unknown compression {kind!r} (gzip or zstd)")


def decompress(kind: str, chunks: Iterable[bytes], piece: int = 1024 * 1024) -> Iterator[bytes]:
    """Decompress a stream in pieces of at most `piece` bytes; raise TruncatedStream if it stops
    short of its end. Bounded pieces keep memory flat: a 1 MiB compressed chunk of SQL can hold 40."""
    if kind == "gzip":
        yield from _gunzip(chunks, piece)
    elif kind == "zstd":
        yield from _unzstd(chunks, piece)
    else:
        raise ValueError(f"unknown compression {kind!r}")


def _gunzip(chunks: Iterable[bytes], piece: int) -> Iterator[bytes]:
    decompressor = isal_zlib.decompressobj(GZIP_WBITS)
    try:
        for chunk in chunks:
            if decompressor.eof and chunk:
                raise TruncatedStream("data follows the end of the compressed stream")
            data = chunk
            while data:
                out = decompressor.decompress(data, piece)
                if out:
                    yield out
                data = decompressor.unconsumed_tail
    except isal_zlib.error as error:
        raise TruncatedStream(f"the compressed stream is damaged: {error}") from error
    if not decompressor.eof:
        raise TruncatedStream("the compressed stream ends before its end marker")


def _unzstd(chunks: Iterable[bytes], piece: int) -> Iterator[bytes]:
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    try:
        for chunk in chunks:
            # zstd's decompressobj has no output limit: feed it small slices instead.
            for start in range(0, len(chunk), 64 * 1024):
                if decompressor.eof:
                    raise TruncatedStream("data follows the end of the compressed stream")
                out = decompressor.decompress(chunk[start : start + 64 * 1024])
                if out:
                    yield out
    except zstandard.ZstdError as error:
        raise TruncatedStream(f"the compressed stream is damaged: {error}") from error
    if not decompressor.eof:
        raise TruncatedStream("the compressed stream ends before its end marker")
