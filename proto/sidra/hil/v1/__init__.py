"""Generated protobuf and gRPC code of ``sidra/hil/v1/board.proto`` (do not edit by hand)."""
