"""The SIDRA HIL wire contract: generated code under ``sidra.hil.v1`` and numpy codecs."""
