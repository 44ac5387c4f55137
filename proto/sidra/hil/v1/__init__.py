"""Generated protobuf and gRPC code of ``sidra/hil/v1/board.proto`` and
``sidra/hil/v1/session.proto`` (do not edit by hand)."""
