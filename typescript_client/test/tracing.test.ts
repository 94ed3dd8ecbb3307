/**
 * The caller's trace continues in the service: a call made inside an OpenTelemetry context
 * reaches a real server (tracing to its console through the standard OTEL_* variables) as the
 * parent of the server's span for that RPC; a client built with `traceContext: false` sends
 * nothing, so its call starts a trace of its own. And the span tree crosses processes: a
 * deployment run from Node is run by a served Python flow whose flow and task spans continue
 * the Node caller's trace.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";

import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { ROOT_CONTEXT, TraceFlags, context, propagation, trace } from "@opentelemetry/api";
import { NotFoundError, StateType, createHeadwaterClient } from "@headwater/client";

import { ServerProcess, VENV_BIN } from "./server.js";

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

/** A caller's span context, as an application's own tracing would make current. */
function callerContext(): { traceId: string; spanId: string; context: ReturnType<typeof trace.setSpanContext> } {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  const ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: TraceFlags.SAMPLED });
  return { traceId, spanId, context: ctx };
}

/** The spans the server's console exporter printed (one indented JSON object each). */
function serverSpans(log: string): ServerSpan[] {
  return [...log.matchAll(/^\{\n[\s\S]*?\n\}$/gm)].map((match) => JSON.parse(match[0]) as ServerSpan);
}

it("a call inside an OpenTelemetry context is the parent of the service's span", async () => {
  const { traceId, spanId, context: caller } = callerContext();
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

const FLOWS = `from headwater import flow, task


@task
def shout(text: str) -> str:
    return text.upper()


@flow
def greet(name: str = "world") -> str:
    return shout(f"hello {name}")


if __name__ == "__main__":
    greet.serve("traced")
`;

it("a deployment run from Node continues the caller's trace into the served flow and its task", async () => {
  const traced = await new ServerProcess({ OTEL_TRACES_EXPORTER: "console" }).start();
  const workdir = mkdtempSync(join(tmpdir(), "headwater-ts-trace-"));
  writeFileSync(join(workdir, "flows.py"), FLOWS);
  const logPath = join(workdir, "serve.log");
  const log = openSync(logPath, "a");
  const serving = spawn(join(VENV_BIN, "python"), ["flows.py"], {
    cwd: workdir,
    env: {
      ...process.env,
      HEADWATER_API_URL: traced.address,
      HEADWATER_HOME: join(workdir, "home"),
      OTEL_TRACES_EXPORTER: "console",
      OTEL_SERVICE_NAME: "ts-served",
    },
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  const exited = new Promise((resolve) => serving.once("exit", resolve));
  const client = createHeadwaterClient({ address: traced.address });
  const { traceId, spanId, context: caller } = callerContext();
  try {
    for (let deadline = Date.now() + 120_000; ; ) {
      try {
        await client.getDeployment("greet/traced");
        break;
      } catch (error) {
        if (!(error instanceof NotFoundError) || serving.exitCode !== null || Date.now() > deadline) {
          throw new Error(`greet/traced never served: ${String(error)}\n${readFileSync(logPath, "utf8")}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    const run = await context.with(caller, () => client.runDeployment("greet/traced", { parameters: { name: "node" } }));
    const final = await client.waitForFlowRun(run.id);
    assert.equal(final.state?.type, StateType.COMPLETED);
  } finally {
    client.close();
    serving.kill("SIGTERM");
    await exited;
    await traced.stop();
  }
  try {
    const create = serverSpans(traced.log()).find(
      (s) => s.name === "headwater.v1.DeploymentService/CreateFlowRunFromDeployment",
    );
    assert.equal(create?.context.trace_id, `0x${traceId}`);
    assert.equal(create?.parent_id, `0x${spanId}`);
    const served = serverSpans(readFileSync(logPath, "utf8"));
    const flowSpan = served.find((s) => s.name === "flow greet");
    const taskSpan = served.find((s) => s.name === "task shout");
    assert.ok(flowSpan && taskSpan, `no flow or task span from the served flow:\n${readFileSync(logPath, "utf8")}`);
    assert.equal(flowSpan.context.trace_id, `0x${traceId}`);
    assert.equal(flowSpan.parent_id, create?.context.span_id, "the run continues the call that created it");
    assert.equal(taskSpan.context.trace_id, `0x${traceId}`);
    assert.equal(taskSpan.parent_id, flowSpan.context.span_id);
  } finally {
    await traced.dispose();
    rmSync(workdir, { recursive: true, force: true });
  }
});
