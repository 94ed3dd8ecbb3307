/**
 * A watch survives its stream breaking: the server is stopped (cleanly, and by SIGKILL) in the
 * middle of a watch and started again on the same port and database; the watch reconnects and
 * delivers every event once, in order, up to the run's end.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  HeadwaterClient,
  StateType,
  UnavailableError,
  createHeadwaterClient,
  type FlowRunEvent,
} from "@headwater/client";

import { ServerProcess } from "./server.js";

let server: ServerProcess;
let client: HeadwaterClient;

before(async () => {
  server = await new ServerProcess().start();
  client = createHeadwaterClient({ address: server.address });
});

after(async () => {
  client?.close();
  await server?.dispose();
});

describe("watch resume", () => {
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it(`resumes after the server is stopped with ${signal} and started again`, async () => {
      const run = await client.createFlowRun({ flowName: "ts-resume" });
      const watch = client.watchFlowRun(run.id);
      const events: FlowRunEvent[] = [];
      const first = await watch.next();
      assert.equal(first.done, false);
      events.push(first.value as FlowRunEvent);

      await server.stop(signal);
      const rest = (async () => {
        for await (const event of watch) {
          events.push(event);
        }
      })();
      await server.start();
      // A separate client plays the engine, so the watch's own connection is the one that broke.
      const engine = createHeadwaterClient({ address: server.address });
      try {
        const flowRuns = engine.services.flowRuns;
        await flowRuns.setFlowRunState({ flowRunId: run.id, state: { type: StateType.RUNNING } });
        await engine.services.logs.createLogs({
          logs: [{ flowRunId: run.id, level: 20, message: "after the restart", logTime: timestampNow() }],
        });
        await flowRuns.setFlowRunState({ flowRunId: run.id, state: { type: StateType.COMPLETED } });
      } finally {
        engine.close();
      }
      await rest;

      const types = events.flatMap((e) => (e.kind.case === "stateChanged" ? [e.kind.value.type] : []));
      assert.deepEqual(types, [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]);
      const sequences = events.map((e) => Number(e.sequence));
      assert.deepEqual(sequences, sequences.map((_, i) => i + 1), "every event once, in order");
      assert.ok(events.some((e) => e.kind.case === "log" && e.kind.value.message === "after the restart"));
    });
  }

  it("gives up with UnavailableError when the server stays away past resumeTimeoutMs", async () => {
    const run = await client.createFlowRun({ flowName: "ts-gone" });
    const watch = client.watchFlowRun(run.id, { resumeTimeoutMs: 300 });
    await watch.next();
    await server.stop("SIGKILL");
    try {
      await assert.rejects(watch.next(), UnavailableError);
    } finally {
      await server.start();
    }
  });

  it("stops when its AbortSignal fires", async () => {
    const run = await client.createFlowRun({ flowName: "ts-abort" });
    const controller = new AbortController();
    const watch = client.watchFlowRun(run.id, { signal: controller.signal });
    await watch.next();
    controller.abort();
    await assert.rejects(watch.next(), (error: unknown) => {
      assert.ok(error instanceof Error && "codeName" in error);
      assert.equal(error.codeName, "CANCELLED");
      return true;
    });
  });
});
