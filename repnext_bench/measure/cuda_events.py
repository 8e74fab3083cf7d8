"""GPU time of a region, from a pair of CUDA events recorded on the stream around it. The
host-side time of the whole call (copies, launch, synchronisation) is measured apart, by the
timing loop; this is what the GPU itself spent between the two events."""
from __future__ import annotations


class DeviceTimer:
    """Call ``start()`` and ``stop()`` around the region on the stream, synchronise, then
    ``collect()`` outside the host-timed region (``measure(..., after=timer.collect)``)."""

    def __init__(self, torch, stream=None) -> None:
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)
        self._stream = stream
        self.samples: list[float] = []  # milliseconds per collected call

    def start(self) -> None:
        self._start.record(self._stream)

    def stop(self) -> None:
        self._end.record(self._stream)

    def collect(self) -> None:
        self._end.synchronize()
        self.samples.append(self._start.elapsed_time(self._end))

    def reset(self) -> None:
        self.samples.clear()
