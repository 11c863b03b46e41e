"""Packet-by-packet video decoding that survives damaged packets (PyAV).

A packet the decoder refuses (``Invalid data found when processing input``) costs its own
frame, not the rest of the video: :class:`PacketDecoder` skips it and goes on with the
next packet, and records which frames were lost.

Frame numbering: a decoded frame's index is its position in presentation order among
the stream's packets (the rank of its timestamp among the packet timestamps demuxed so
far; a frame whose timestamp matches no packet, or a stream without timestamps, takes
the next number). So the frames after a lost one keep their source numbers, and the gap
is the lost frame. Frame-threaded decoders report an error one or more packets after the
damaged one; numbering by timestamp names the frame that is actually missing.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["PacketDecoder", "format_frame_list"]

log = logging.getLogger(__name__)


class PacketDecoder:
    """Iterate ``(index, frame)`` over a PyAV video ``stream`` of an open ``container``.

    After (or during) iteration: ``lost`` holds the source indices of frames that could not
    be decoded, ascending; ``failed_packets`` the number of packets the decoder refused;
    ``last_error`` the text of the last error; ``frames_seen`` the number of frames the
    stream holds up to where decoding stopped (decoded + lost); ``finished`` whether the
    stream was read to its end. Stopping early (breaking out of the loop) is fine.
    """

    def __init__(self, container: Any, stream: Any) -> None:
        self.container, self.stream = container, stream
        self.lost: list[int] = []
        self.failed_packets = 0
        self.last_error: str | None = None
        self.frames_seen = 0
        self.finished = False
        self._pts: list[int] = []  # sorted timestamps of the demuxed packets that carry data

    def _index(self, frame: Any) -> int:
        pts = frame.pts
        if pts is not None and self._pts:
            rank = bisect.bisect_left(self._pts, pts)
            if rank < len(self._pts) and self._pts[rank] == pts and rank >= self.frames_seen:
                return rank
        return self.frames_seen

    def _emit(self, frame: Any) -> tuple[int, Any]:
        index = self._index(frame)
        self.lost.extend(range(self.frames_seen, index))
        self.frames_seen = index + 1
        return index, frame

    def _refused(self, exc: Exception) -> None:
        self.failed_packets += 1
        self.last_error = str(exc)
        log.debug("skipping a packet the decoder refused: %s", exc)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        import av

        for packet in self.container.demux(self.stream):
            if packet.size and packet.pts is not None:
                bisect.insort(self._pts, packet.pts)
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                self._refused(exc)
                continue
            for frame in frames:
                yield self._emit(frame)
        # an error at the end-of-stream packet can leave frames in a threaded decoder: drain it
        try:
            for frame in self.stream.codec_context.decode(None):
                yield self._emit(frame)
        except av.FFmpegError:
            pass
        if len(self._pts) > self.frames_seen:  # packets whose frames never came out
            self.lost.extend(range(self.frames_seen, len(self._pts)))
            self.frames_seen = len(self._pts)
        self.finished = True


def format_frame_list(indices: list[int], limit: int = 8) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"`` (runs joined; past ``limit`` runs, ``"... (N frames)"``)."""
    runs: list[tuple[int, int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    text = ", ".join(parts)
    if len(runs) > limit:
        text += f", ... ({len(indices)} frames)"
    return text
