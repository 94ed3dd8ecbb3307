"""The transport: the only part of the SDK that speaks gRPC or touches generated `headwater.v1`.

Everything above it (the engine, the run logs, the public clients, the CLI) works on the SDK's
own types (``State``, ``FlowRun``, ``Decision``, ...) and calls the `Transport` protocol of
``interface``, which imports no gRPC. The parts:

- ``interface``: what the engine and the run logger ask of a transport, in SDK types;
- ``runtime``: the one owner of the process's background loop, embedded server, streams, exit
  sequence and fork handling; ``default_transport()`` and ``open_transport(address)``;
- ``stream``: the engine stream (one ``EngineService.Connect`` per service) and
  ``StreamTransport``, the interface over it;
- ``loop``: the background event loop the gRPC code runs on;
- ``embedded``: the in-process server used when ``HEADWATER_API_URL`` is unset;
- ``convert``: SDK values to and from wire messages;
- ``status``: failed RPCs to the SDK's typed exceptions;
- ``channel``: channel options and service addresses.
"""
