"""Faults the virtual PCIe board injects on purpose (``--faults``).

Commands are counted from 1 at device start, every command the rings carry
(the host's GET_PROFILE at open is command 1). Configure with a spec string::

    PcieFaults.parse("hang=3")           command 3 never completes
    PcieFaults.parse("error=2")          command 2 answers INTERNAL
    PcieFaults.parse("remove_after=4")   after 4 commands: registers read 0xFFFFFFFF, file gone
    PcieFaults.parse("reset_after=3")    command 3 power-cycles the board (BOOT_COUNT + 1)
    PcieFaults.parse("reverse=1")        each burst of submissions completes in reverse order

Each fault that fires logs one INFO line on ``sidra.emulator.faults``
(:data:`~sidra.emulator.firmware.faults.FAULT_LOGGER`; ``sidra board serve`` prints them,
timestamped): which fault, on which command (its count since device start, opcode and
command id), what it did, and the counted faults still to come::

    fault hang fired on command 3, MVM (opcode 0x22, cid 2): taken off the ring, never \
completed; counted faults left: error at command 5, remove_after 8 (at command 9)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["PcieFaults"]


@dataclass(frozen=True, slots=True)
class PcieFaults:
    """Which command (1-based count since device start) each fault hits; 0: never."""

    hang: int = 0
    """This command is taken off the ring and never completed."""
    error: int = 0
    """This command is answered with status INTERNAL and an error payload."""
    remove_after: int = 0
    """After this many commands the device is surprise-removed."""
    reset_after: int = 0
    """This command power-cycles the board; it is lost with the board's state."""
    reverse: int = 0
    """1: gather each burst of submissions (2 ms) and complete it in reverse order."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"fault {f.name}: got {getattr(self, f.name)}, expected >= 0")
        if self.reverse not in (0, 1):
            raise ValueError(f"fault reverse: got {self.reverse}, expected 0 or 1")
        # A command meets one fault: a hung one is never answered, an errored one is
        # answered, a reset loses it. Two on one command would leave a test unsure which.
        hits = {"hang": self.hang, "error": self.error, "reset_after": self.reset_after}
        named = [name for name, at in hits.items() if at]
        for i, first in enumerate(named):
            for second in named[i + 1 :]:
                if hits[first] == hits[second]:
                    raise ValueError(
                        f"faults {first} and {second}: both got command {hits[first]}, "
                        "expected one fault per command"
                    )

    @classmethod
    def parse(cls, spec: str) -> PcieFaults:
        """``"hang=3,reverse=1"`` -> PcieFaults; unknown keys are errors."""
        names = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, text = item.partition("=")
            if not sep or key not in names or not text.isdecimal():
                raise ValueError(
                    f"PCIe fault spec item {item!r}: expected key=N, N a command count >= 0, "
                    f"key one of {', '.join(names)}"
                )
            if key in values:
                raise ValueError(f"PCIe fault spec {key}: given twice, expected each key once")
            values[key] = int(text)
        return cls(**values)

    def still_to_come(self, executed: int) -> list[str]:
        """The counted faults that have not fired once ``executed`` commands ran, in the
        order they will: ``error at command 5``, ``remove_after 8 (at command 9)``."""
        at = {"hang": self.hang, "error": self.error, "reset_after": self.reset_after}
        coming = [(command, f"{name} at command {command}") for name, command in at.items()
                  if command > executed]  # fmt: skip
        removed_at = self.remove_after + 1  # the command after the last one answered
        if self.remove_after and removed_at > executed:
            coming.append(
                (removed_at, f"remove_after {self.remove_after} (at command {removed_at})")
            )
        return [text for _, text in sorted(coming)]
