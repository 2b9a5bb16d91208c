"""Decoding online: every trained decoder stepped one bin at a time (docs/online.md)."""

from rpnt.online.base import StreamingDecoder, load_stream, stream_decoder

__all__ = ["StreamingDecoder", "load_stream", "stream_decoder"]
