"""Generated protobuf and gRPC stubs for headwater.v1. Produced by `make protos`; never edit."""
