"""The engine stream: every engine operation of a process on one ``EngineService.Connect``.

- `connection`: `EngineConnection`, the caller's side (sync and async, wire messages);
- `transport`: `StreamTransport`, the `Transport` interface over a connection (SDK types);
- `ops`: one operation, from hand-off to answer;
- `protocol`: sequence numbers, answer matching, idempotency keys;
- `reconnect`: reconnect with backoff, resend, give up in time;
- `logs`: run log lines waiting for their batch.
"""
