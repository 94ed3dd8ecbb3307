"""The transport: the only part of the SDK that speaks gRPC or touches generated `headwater.v1`.

Everything above it (the engine, the public clients, the CLI) works on the SDK's own types
(``State``, ``FlowRun``, ...). Conversions between those types and the wire live in
``convert``; status-code mapping to the SDK's exceptions in ``status``; channel options and
address handling in ``channel``.
"""
