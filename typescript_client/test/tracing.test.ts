/**
 * The caller's trace continues in the service: a call made inside an OpenTelemetry context
 * reaches a real server (tracing to its console through the standard OTEL_* variables) as the
 * parent of the server's span for that RPC; a client built with `traceContext: false` sends
 * nothing, so its call starts a trace of its own.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, it } from "node:test";

import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { ROOT_CONTEXT, TraceFlags, context, propagation, trace } from "@opentelemetry/api";
import { createHeadwaterClient } from "@headwater/client";

import { ServerProcess } from "./server.js";

let server: ServerProcess;

before(async () => {
  server = await new ServerProcess({
    OTEL_TRACES_EXPORTER: "console",
    OTEL_SERVICE_NAME: "headwater-ts-test",
  }).start();
  // What an application's OpenTelemetry setup (e.g. the Node SDK) registers.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});

after(async () => {
  await server?.dispose();
  context.disable();
  propagation.disable();
});

interface ServerSpan {
  name: string;
  context: { trace_id: string; span_id: string };
  parent_id: string | null;
}

/** The spans the server's console exporter printed (one indented JSON object each). */
function serverSpans(log: string): ServerSpan[] {
  return [...log.matchAll(/^\{\n[\s\S]*?\n\}$/gm)].map((match) => JSON.parse(match[0]) as ServerSpan);
}

it("a call inside an OpenTelemetry context is the parent of the service's span", async () => {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  const caller = trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId,
    traceFlags: TraceFlags.SAMPLED,
  });
  const client = createHeadwaterClient({ address: server.address });
  const silent = createHeadwaterClient({ address: server.address, traceContext: false });
  try {
    const run = await context.with(caller, () => client.createFlowRun({ flowName: "ts-traced" }));
    await context.with(caller, () => silent.getFlowRun(run.id));
  } finally {
    client.close();
    silent.close();
  }
  await server.stop(); // a clean shutdown flushes the batched spans
  const spans = serverSpans(server.log());
  const create = spans.find((s) => s.name === "headwater.v1.FlowRunService/CreateFlowRun");
  const get = spans.find((s) => s.name === "headwater.v1.FlowRunService/GetFlowRun");
  assert.ok(create && get, `no RPC spans in the server's output:\n${server.log()}`);
  assert.equal(create.context.trace_id, `0x${traceId}`);
  assert.equal(create.parent_id, `0x${spanId}`);
  assert.notEqual(get.context.trace_id, `0x${traceId}`);
  assert.equal(get.parent_id, null);
});
