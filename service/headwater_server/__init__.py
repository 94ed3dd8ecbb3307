"""The Headwater gRPC service: orchestration, scheduling and storage behind headwater.v1."""
