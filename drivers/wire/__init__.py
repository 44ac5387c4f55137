"""The SIDRA wire protocol's codecs, shared by the host driver and board firmware.

:mod:`~sidra.drivers.wire.framing` cuts the byte stream into checked frames;
:mod:`~sidra.drivers.wire.messages` lays out each message's payload.
docs/wire-protocol.md is the normative text.
"""
