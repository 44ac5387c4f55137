"""An MVM batch cut into consecutive passes, and their results joined again.

The serial driver's stage, the PCIe driver's slot windows and a server's ``[limits]
max_batch`` each carry at most so many vectors per command. Every vector is its own
pass, so the parts' currents (and ADC codes) stack in order and their saturated outputs
and costs add up to what the whole batch in one command would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from sidra.drivers.requests import MVMRequest, TransposeMVMRequest
from sidra.drivers.types import Cost, MVMResult

__all__ = ["PassRequest", "cut", "joined"]

PassRequest = MVMRequest | TransposeMVMRequest


def cut(request: PassRequest, per_part: int) -> list[PassRequest]:
    """``request`` as consecutive requests of at most ``per_part`` vectors each (its
    voltages or its input codes, whichever it carries); ``[request]`` when it fits."""
    field = "voltages" if request.input_codes is None else "input_codes"
    inputs = getattr(request, field)
    if len(inputs) <= per_part:
        return [request]
    return [
        replace(request, **{field: inputs[start : start + per_part]})
        for start in range(0, len(inputs), per_part)
    ]


def joined(parts: Sequence[MVMResult]) -> MVMResult:
    """The result of the whole batch from its parts' results, in order."""
    first = parts[0]
    codes = [p.output_codes for p in parts]
    return MVMResult(
        currents=np.concatenate([p.currents for p in parts]),
        saturated_outputs=sum(p.saturated_outputs for p in parts),
        cost=sum((p.cost for p in parts), Cost()),
        output_codes=None if codes[0] is None else np.concatenate(codes),  # type: ignore[arg-type]
        dac_step_v=first.dac_step_v,
        adc_step_ua=first.adc_step_ua,
    )
