"""Listen addresses: which metrics addresses answer every interface."""

from __future__ import annotations

import pytest

from sidra.server.address import metrics_exposure


@pytest.mark.parametrize("address", ["0.0.0.0:9464", "[::]:9464"])
def test_every_interface_is_warned_of(address: str) -> None:
    warning = metrics_exposure(address)
    assert warning is not None and warning.startswith(f"metrics.listen: {address} listens on")


@pytest.mark.parametrize(
    "address", ["127.0.0.1:9464", "[::1]:9464", "localhost:9464", "10.0.0.5:9464", "mon:9464"]
)
def test_loopback_or_one_interface_is_quiet(address: str) -> None:
    assert metrics_exposure(address) is None  # the admin picked where it answers
