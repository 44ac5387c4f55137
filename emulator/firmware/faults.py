"""Fault injection for a serial link: a shim that damages a byte stream on purpose.

The shim sits between the host and the board (inside the virtual board's
server, or as a proxy in front of a real port) and, per direction, flips bits
at a bit-error rate, drops bytes, drops / duplicates / delays whole frames,
can power-cycle the board mid-transfer and can unplug it for a while. It is
frame-aware only through the 0x00 delimiter, as a real line fault is not.

Configure it with a spec string, as on the command line::

    FaultConfig.parse("ber=1e-4,drop=0.01,dup=0.01,seed=7")

Every fault that fires logs one INFO line on :data:`FAULT_LOGGER` (``sidra board serve``
prints them, timestamped): which fault, on which frame (its message id and request id,
read from the frame before it is damaged), what it did, and how many of its kind fired
so far or, for the counted ones (``reset_after``, ``unplug_after``), which are still to
come::

    fault drop fired on MVM (msg 0x22) request 42 to the board: lost whole (3 so far)
    fault reset_after fired on frame 50 to the board, PING (msg 0x02) request 7: the \
board power-cycled, the frame lost with its state; counted faults left: unplug_after \
at frame 80
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sidra.drivers.wire.framing import Flag, FrameError, decode_frame
from sidra.drivers.wire.messages import Msg

__all__ = ["FAULT_LOGGER", "FaultConfig", "FaultShim", "describe_frame", "left_text"]

FAULT_LOGGER = "sidra.emulator.faults"
"""The logger of the line each injected fault logs as it fires (INFO), on every virtual
board (serial, TCP, PCIe)."""
log = logging.getLogger(FAULT_LOGGER)

Chunk = tuple[float, bytes]
"""Seconds to wait before sending, then the bytes."""


_UNITS = {
    "ber": "a probability per bit on the wire",
    "byte_drop": "a probability per byte",
    "drop": "a probability per frame",
    "dup": "a probability per frame",
    "delay": "a probability per frame",
    "delay_s": "seconds a delayed frame is held back",
    "reset_after": "host frames before a power cycle, 0: never",
    "unplug_after": "host frames before an unplug, 0: never",
    "unplug_s": "seconds an unplug lasts, inf: until replugged",
    "seed": "the fault pattern's seed",
}
"""What each --faults key counts, said with the value a refusal names."""
_RATES = ("ber", "byte_drop", "drop", "dup", "delay")


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """What the shim does to each direction of the link.

    Rates are probabilities in 0 .. 1, each drawn independently per unit named
    (bit, byte or frame, where a frame is everything up to and including a 0x00);
    durations are seconds; counts are host frames the shim passes on to the
    board (after its own drops; a duplicated frame counts twice).
    """

    ber: float = 0.0
    """Bit-error rate, per bit on the wire (0 .. 1): each bit flips with this probability."""
    byte_drop: float = 0.0
    """Per byte (0 .. 1): each byte is lost with this probability."""
    drop: float = 0.0
    """Per frame (0 .. 1): each frame is lost whole with this probability."""
    dup: float = 0.0
    """Per frame (0 .. 1): each frame is sent twice with this probability."""
    delay: float = 0.0
    """Per frame (0 .. 1): each frame is held back ``delay_s`` with this probability."""
    delay_s: float = 0.002
    """How long a delayed frame is held back, s."""
    reset_after: int = 0
    """Power-cycle the board when this many host frames have reached it, frames (0: never).
    The frame that triggers it is lost with the board's state."""
    unplug_after: int = 0
    """Unplug the board when this many host frames have reached it, frames (0: never)."""
    unplug_s: float = 1.0
    """How long an unplug lasts, s (inf: until replugged)."""
    seed: int = 0
    """Seed of the fault pattern (an integer ≥ 0), so a failing run can be replayed."""

    def __post_init__(self) -> None:
        for name in _RATES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"fault {name}: got {getattr(self, name)}, expected 0 .. 1 ({_UNITS[name]})"
                )
        for name in ("delay_s", "unplug_s", "reset_after", "unplug_after", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"fault {name}: got {getattr(self, name)}, expected >= 0 ({_UNITS[name]})"
                )

    @classmethod
    def parse(cls, spec: str) -> FaultConfig:
        """``"ber=1e-4,drop=0.01"`` -> FaultConfig; unknown keys are errors."""
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        values: dict[str, float | int] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, text = item.partition("=")
            if not sep or key not in fields:
                raise ValueError(
                    f"fault spec item {item!r}: expected key=value with key one of "
                    f"{', '.join(fields)}"
                )
            if key in values:  # as board URL options: "ber=1e-4,ber=1e-3" is ambiguous
                raise ValueError(f"fault spec {key}: given twice, expected each key once")
            try:
                values[key] = int(text) if fields[key] == "int" else float(text)
            except ValueError as exc:
                kind = "an integer" if fields[key] == "int" else "a number"
                bounds = "0 .. 1" if key in _RATES else ">= 0"
                raise ValueError(
                    f"fault spec {key}: got {text!r}, expected {kind} {bounds} ({_UNITS[key]})"
                ) from exc
        return cls(**values)  # type: ignore[arg-type]

    @property
    def active(self) -> bool:
        return self != FaultConfig(seed=self.seed)


def message_name(msg: int) -> str:
    """``MVM (msg 0x22)``: a message id by name and number (the number alone when unknown)."""
    try:
        return f"{Msg(msg).name} (msg 0x{msg:02x})"
    except ValueError:
        return f"msg 0x{msg:02x}"


def describe_frame(wire: bytes, toward: str) -> str:
    """Which command a frame on the wire carries, as a fault line names it: ``MVM (msg
    0x22) request 42 to the board``, ``the answer to MVM (msg 0x22) request 42`` (to the
    host), ``the board's NAK``, ``the board's BOOT notice``, ``a lone 0x00`` (the
    delimiter a host sends to flush a receiver), or ``an undecodable frame of N bytes``
    when it is no frame (a line fault before the shim)."""
    encoded = wire.rstrip(b"\x00")
    if not encoded:
        return f"a lone 0x00 {toward}"
    try:
        frame = decode_frame(encoded)
    except FrameError:
        return f"an undecodable frame of {len(wire)} bytes {toward}"
    if frame.flags & Flag.NAK:
        return "the board's NAK"
    if frame.flags & Flag.BOOT:
        return "the board's BOOT notice"
    command = f"{message_name(frame.msg)} request {frame.req_id}"
    return f"the answer to {command}" if frame.is_response else f"{command} {toward}"


def left_text(pending: list[str]) -> str:
    """``counted faults left: error at command 5, remove_after 8`` (or ``none``): what a
    line of a counted fault ends with, so the console says what is still to come."""
    return f"counted faults left: {', '.join(pending) if pending else 'none'}"


class _Direction:
    """Frame-level then bit-level damage for one direction of the stream."""

    def __init__(
        self,
        config: FaultConfig,
        rng: np.random.Generator,
        counts: dict[str, int],
        fired: dict[str, int],
        toward: str,
    ) -> None:
        """``fired``: faults fired so far by name, shared by both directions; ``toward``:
        where this direction's frames go (``to the board``, ``to the host``)."""
        self.config, self.rng, self.counts = config, rng, counts
        self.fired, self.toward = fired, toward
        self._partial = bytearray()

    def _fired(self, name: str, wire: bytes, what: str) -> None:
        """Counts a fault that fired on ``wire`` and logs its line (the frame is decoded
        only when the line is printed: a quiet shim spends nothing on it)."""
        self.fired[name] += 1
        if log.isEnabledFor(logging.INFO):
            frame = describe_frame(wire, self.toward)
            log.info("fault %s fired on %s: %s (%d so far)", name, frame, what, self.fired[name])

    def process(self, data: bytes) -> list[tuple[float, bytes]]:
        self._partial += data
        end = self._partial.rfind(b"\x00")
        if end < 0:
            return []
        complete, self._partial = bytes(self._partial[: end + 1]), self._partial[end + 1 :]
        out: list[Chunk] = []
        c, rng = self.config, self.rng
        for frame in complete.split(b"\x00")[:-1]:
            wire = frame + b"\x00"
            self.counts["frames"] += 1
            if c.drop and rng.random() < c.drop:
                self.counts["dropped"] += 1
                self._fired("drop", wire, "lost whole")
                continue
            wait = c.delay_s if c.delay and rng.random() < c.delay else 0.0
            self.counts["delayed"] += wait > 0
            if wait:
                self._fired("delay", wire, f"held back {wait:g} s")
            copies = 2 if c.dup and rng.random() < c.dup else 1
            self.counts["duplicated"] += copies - 1
            if copies > 1:
                self._fired("dup", wire, "sent twice")
            for _ in range(copies):
                out.append((wait, self._damage(wire)))
                wait = 0.0
        return out

    def _damage(self, wire: bytes) -> bytes:
        c, rng = self.config, self.rng
        if not (c.ber or c.byte_drop):
            return wire
        buf = np.frombuffer(wire, np.uint8).copy()
        flips = rng.binomial(8 * len(buf), c.ber) if c.ber else 0
        if flips:
            bits = rng.integers(0, 8 * len(buf), flips)
            np.bitwise_xor.at(buf, bits // 8, (1 << (bits % 8)).astype(np.uint8))
            self.counts["bits_flipped"] += int(flips)
            self._fired("ber", wire, f"{flips} bit{'s' if flips > 1 else ''} flipped")
        lost = rng.binomial(len(buf), c.byte_drop) if c.byte_drop else 0
        if lost:
            buf = np.delete(buf, rng.choice(len(buf), lost, replace=False))
            self.counts["bytes_dropped"] += int(lost)
            self._fired("byte_drop", wire, f"{lost} byte{'s' if lost > 1 else ''} lost")
        return buf.tobytes()


class FaultShim:
    """Damages both directions of a link; thread-safe.

    ``on_reset`` power-cycles the board (the virtual board's server passes its
    reset); ``unplug`` silences the link both ways, as a pulled cable does.
    """

    def __init__(self, config: FaultConfig, on_reset: Callable[[], None] | None = None) -> None:
        self.config = config
        self.on_reset = on_reset
        self.counts: dict[str, int] = dict.fromkeys(
            ("frames", "dropped", "duplicated", "delayed", "bits_flipped", "bytes_dropped"), 0
        )
        self.events: dict[str, int] = {"resets": 0, "unplugs": 0}
        self.fired: dict[str, int] = dict.fromkeys(
            ("ber", "byte_drop", "drop", "dup", "delay", "reset_after", "unplug_after"), 0
        )
        """Faults fired so far, by the --faults key that makes them (bit flips and lost
        bytes: frames they hit); :attr:`counts` has the frames, bits and bytes."""
        rng = np.random.Generator(np.random.PCG64(config.seed))
        up_rng, down_rng = rng.spawn(2)
        self._to_device = _Direction(config, up_rng, self.counts, self.fired, "to the board")
        self._to_host = _Direction(config, down_rng, self.counts, self.fired, "to the host")
        self._frames_in = 0
        self._reset_at = config.reset_after or None
        self._unplug_at = config.unplug_after or None
        self._unplug_for = config.unplug_s
        self._unplugged_until = 0.0
        self._lock = threading.Lock()

    @property
    def unplugged(self) -> bool:
        return time.monotonic() < self._unplugged_until

    def unplug(self, seconds: float | None = None) -> None:
        """Silence the link for ``seconds`` (default: the config's unplug_s; inf: until
        :meth:`replug`)."""
        with self._lock:
            duration = self.config.unplug_s if seconds is None else seconds
            self._unplugged_until = time.monotonic() + duration
            self.events["unplugs"] += 1

    def arm(
        self, *, reset_in: int | None = None, unplug_in: int | None = None,
        unplug_s: float | None = None,
    ) -> None:  # fmt: skip
        """Reset or unplug the board when ``n`` more host frames have reached it (the
        n-th is lost with it): a fault in the middle of a transfer, placed exactly."""
        with self._lock:
            if reset_in is not None:
                self._reset_at = self._frames_in + reset_in
            if unplug_in is not None:
                self._unplug_at = self._frames_in + unplug_in
                self._unplug_for = self.config.unplug_s if unplug_s is None else unplug_s

    def replug(self) -> None:
        with self._lock:
            self._unplugged_until = 0.0

    def set_damage(self, config: FaultConfig) -> None:
        """Damages both directions as ``config`` says from now on (a noisy spell that
        starts or ends); the random streams and the reset/unplug schedule go on."""
        with self._lock:
            self._to_device.config = self._to_host.config = config

    def reset_board(self) -> None:
        self.events["resets"] += 1
        if self.on_reset is not None:
            self.on_reset()

    def to_device(self, data: bytes) -> list[Chunk]:
        """What reaches the board of ``data`` sent by the host."""
        if self.unplugged:
            return []
        with self._lock:
            chunks = self._to_device.process(data)
        kept = []
        for wait, wire in chunks:
            self._frames_in += 1
            if self._frames_in == self._reset_at:
                self.reset_board()  # the frame in flight dies with the board
                self._counted_fired(
                    "reset_after", wire, "the board power-cycled, the frame lost with its state"
                )
                continue
            if self._frames_in == self._unplug_at:
                self.unplug(self._unplug_for)
                self._counted_fired("unplug_after", wire, self._unplug_text(self._unplug_for))
            if self.unplugged:
                continue
            kept.append((wait, wire))
        return kept

    def _counted_fired(self, name: str, wire: bytes, what: str) -> None:
        """Logs the line of a counted fault (``reset_after``, ``unplug_after``) that fired
        on ``wire``, the ``_frames_in``-th host frame to reach the board."""
        self.fired[name] += 1
        if log.isEnabledFor(logging.INFO):
            frame = describe_frame(wire, "to the board")
            log.info(
                "fault %s fired on frame %d to the board, %s: %s; %s",
                name, self._frames_in, frame.removesuffix(" to the board"), what,
                left_text(self._pending()),
            )  # fmt: skip

    def _pending(self) -> list[str]:
        """The counted faults still to fire: ``reset_after at frame 50``, ..."""
        at = {"reset_after": self._reset_at, "unplug_after": self._unplug_at}
        coming = [(frame, name) for name, frame in at.items() if (frame or 0) > self._frames_in]
        return [f"{name} at frame {frame}" for frame, name in sorted(coming)]

    @staticmethod
    def _unplug_text(seconds: float) -> str:
        lasting = "until replugged" if seconds == float("inf") else f"for {seconds:g} s"
        return f"the board unplugged {lasting}"

    def to_host(self, data: bytes) -> list[Chunk]:
        """What reaches the host of ``data`` sent by the board."""
        if self.unplugged:
            return []
        with self._lock:
            return self._to_host.process(data)
