"""Even/odd RTP/RTCP port pairs handed out from a configured range."""

from __future__ import annotations


class PortsExhausted(RuntimeError):
    """Every port pair in the range is in use."""


class PortAllocator:
    """Hands out even RTP ports p (RTCP on p + 1) with start <= p and p + 1 < end, round robin,
    so a port just released is not reused at once (late packets of the old call)."""

    def __init__(self, start: int, end: int) -> None:
        first = start + (start & 1)
        if not 1024 <= first or end > 65536 or first + 2 > end:
            raise ValueError(f"RTP port range [{start}, {end}) must hold at least one even/odd pair within 1024..65535")
        self.start = first
        self.end = end
        self._pairs = (end - first) // 2
        self._cursor = 0
        self._in_use: set[int] = set()

    @property
    def capacity(self) -> int:
        return self._pairs

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def acquire(self) -> int:
        """Reserve the next free pair; return its even (RTP) port."""
        for _ in range(self._pairs):
            port = self.start + 2 * self._cursor
            self._cursor = (self._cursor + 1) % self._pairs
            if port not in self._in_use:
                self._in_use.add(port)
                return port
        raise PortsExhausted(f"all {self._pairs} RTP port pairs in [{self.start}, {self.end}) are in use")

    def release(self, port: int) -> None:
        """Return a pair; releasing a port that is not held is an error (double release)."""
        try:
            self._in_use.remove(port)
        except KeyError:
            raise ValueError(f"RTP port {port} is not allocated") from None
