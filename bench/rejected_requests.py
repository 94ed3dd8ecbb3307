"""`python -m bench.rejected_requests`: server memory under large requests it rejects.

Issue 9 found a server growing from 61 to 555 MiB over 2,000 rejected 3 MiB creates. This sends
batches of large, invalid CreateFlowRun requests (a name far over 255 characters, JSON that does
not parse, and requests over the server's 4 MiB receive limit) to a `headwater server start`
process and prints its resident memory (VmRSS) after each batch, so a reader can see whether
it levels off. Not part of `make bench` (it compares nothing with Prefect) and not a test (it
measures); run it by hand:

    .venv/bin/python -m bench.rejected_requests [--requests 2000] [--size-mib 3]

Measured on the 2-core development machine (server RSS in MiB, starting at 64):

| requests | before | abort drops the traceback | plus the fixed mmap threshold |
|---|---|---|---|
| 1,000 | 320 | 201 | 151 |
| 2,000 | 353 | 213 | 127 |
| 4,000 | 420 | 269 | 171 |
| 8,000 | 581 at 7,000, rising | 353, rising slowly | (4,000 run: 127-192, no trend) |

The 5 MiB requests are refused from their length prefix and cost nothing; a 3 MiB request the
server accepts and answers without reading its fields (an unknown field) leaves memory flat too.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import grpc
from headwater.v1 import flow_runs_pb2, flow_runs_pb2_grpc

from bench._runner import Sdk, headwater_server, throwaway_dir

BATCHES = 8


def resident_mib(pid: int) -> float:
    """The process's resident memory now, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def requests(size: int) -> list[flow_runs_pb2.CreateFlowRunRequest]:
    """The kinds of large request the server must refuse."""
    big = "x" * size
    return [
        flow_runs_pb2.CreateFlowRunRequest(flow_name="f", name=big),
        flow_runs_pb2.CreateFlowRunRequest(flow_name=big + "!"),
        flow_runs_pb2.CreateFlowRunRequest(flow_name="f", parameters_json="[" + big),
        flow_runs_pb2.CreateFlowRunRequest(flow_name="f", name="x" * (5 * 1024 * 1024)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--size-mib", type=float, default=3.0)
    args = parser.parse_args(argv)
    sdk = Sdk("headwater", "Headwater", Path(sys.executable))
    kinds = requests(int(args.size_mib * 1024 * 1024))
    codes: Counter[str] = Counter()
    per_batch = max(args.requests // BATCHES, 1)
    with throwaway_dir("rejected-requests") as home, headwater_server(sdk, home) as server:
        options = [("grpc.max_send_message_length", -1)]
        with grpc.insecure_channel(server.address, options=options) as channel:
            stub = flow_runs_pb2_grpc.FlowRunServiceStub(channel)
            print(f"requests  server RSS (MiB)   answers; at start {resident_mib(server.pid):.0f}")
            sent = 0
            for _ in range(BATCHES):
                for index in range(per_batch):
                    try:
                        stub.CreateFlowRun(kinds[(sent + index) % len(kinds)], timeout=30)
                        codes["OK"] += 1
                    except grpc.RpcError as exc:
                        assert isinstance(exc, grpc.Call)
                        codes[exc.code().name] += 1
                sent += per_batch
                print(f"{sent:8d}  {resident_mib(server.pid):17.0f}   {dict(codes)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
