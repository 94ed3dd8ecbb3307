/**
 * The thin layer against a real `headwater server start`: runs created by flow name, states
 * proposed the way an engine proposes them, watched to the end, logs read back, cancellation,
 * listing, and the service's errors as typed errors.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";

import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  HeadwaterClient,
  HeadwaterError,
  InvalidArgumentError,
  NotFoundError,
  StateType,
  UnavailableError,
  createHeadwaterClient,
  type FlowRunEvent,
} from "@headwater/client";

import { ServerProcess, freePort, throwawayPostgres } from "./server.js";

let server: ServerProcess;
let client: HeadwaterClient;

// The suite runs twice: on the server's own SQLite file, then on a throwaway PostgreSQL database.
for (const database of ["sqlite", "postgres"] as const) {
  describe(database, () => {
    let dropDatabase = (): void => {};
    before(async () => {
      const env: Record<string, string> = {};
      if (database === "postgres") {
        const postgres = throwawayPostgres();
        env.HEADWATER_DATABASE_URL = postgres.url;
        dropDatabase = postgres.drop;
      }
      server = await new ServerProcess(env).start();
      client = createHeadwaterClient({ address: server.address });
    });

    after(async () => {
      client?.close();
      await server?.dispose();
      dropDatabase();
    });

    describe("runs", runs);
    describe("typed errors", typedErrors);
  });
}

/** Moves a run as an engine does: RUNNING, a log line, then `final`. */
async function execute(flowRunId: string, final: StateType, message = "done"): Promise<void> {
  const flowRuns = client.services.flowRuns;
  const running = await flowRuns.setFlowRunState({ flowRunId, state: { type: StateType.RUNNING } });
  assert.equal(running.result?.state?.type, StateType.RUNNING);
  await client.services.logs.createLogs({
    logs: [{ flowRunId, level: 20, message: `working on ${flowRunId}`, loggerName: "ts.test", logTime: timestampNow() }],
  });
  await flowRuns.setFlowRunState({ flowRunId, state: { type: final, message } });
}

function stateTypes(events: FlowRunEvent[]): StateType[] {
  return events.flatMap((e) => (e.kind.case === "stateChanged" ? [e.kind.value.type] : []));
}

function runs(): void {
  it("creates a run by flow name, watches it to COMPLETED and reads its logs", async () => {
    const flowName = `ts-etl-${randomUUID().slice(0, 8)}`;
    const run = await client.createFlowRun(
      { flowName },
      { parameters: { day: "mon", n: 3 }, tags: ["ts"], name: "from-node" },
    );
    assert.equal(run.flowName, flowName);
    assert.equal(run.name, "from-node");
    assert.deepEqual(JSON.parse(run.parametersJson), { day: "mon", n: 3 });
    assert.equal(run.state?.type, StateType.PENDING);

    const events: FlowRunEvent[] = [];
    const watching = (async () => {
      for await (const event of client.watchFlowRun(run.id)) {
        events.push(event);
      }
    })();
    await execute(run.id, StateType.COMPLETED);
    await watching;

    assert.deepEqual(stateTypes(events), [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]);
    const sequences = events.map((e) => Number(e.sequence));
    assert.deepEqual(sequences, sequences.map((_, i) => i + 1), "every event once, in order");
    assert.ok(events.some((e) => e.kind.case === "log" && e.kind.value.message === `working on ${run.id}`));

    const final = await client.waitForFlowRun(run.id);
    assert.equal(final.state?.type, StateType.COMPLETED);
    const lines = [];
    for await (const line of client.logs(run.id)) {
      lines.push(line.message);
    }
    assert.deepEqual(lines, [`working on ${run.id}`]);
  });

  it("replays only the events after afterSequence", async () => {
    const run = await client.createFlowRun({ flowName: "ts-replay" });
    await execute(run.id, StateType.FAILED, "boom");
    const events: FlowRunEvent[] = [];
    for await (const event of client.watchFlowRun(run.id, { afterSequence: 1, flowRunStatesOnly: true })) {
      events.push(event);
    }
    assert.deepEqual(stateTypes(events), [StateType.RUNNING, StateType.FAILED]);
    assert.equal((await client.getFlowRun(run.id)).state?.message, "boom");
  });

  it("cancels a run that has not started, which ends its watch", async () => {
    const run = await client.createFlowRun({ flowName: "ts-cancel" });
    const cancelled = await client.cancelFlowRun(run.id, { reason: "not needed" });
    assert.equal(cancelled.state?.type, StateType.CANCELLED);
    const final = await client.waitForFlowRun(run.id);
    assert.equal(final.state?.type, StateType.CANCELLED);
    await assert.rejects(client.cancelFlowRun(run.id), FailedPreconditionError);
  });

  it("lists runs by flow, a page at a time", async () => {
    const flowName = `ts-list-${randomUUID().slice(0, 8)}`;
    const ids = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await client.createFlowRun({ flowName })).id);
    }
    const first = await client.listFlowRuns({ flowName }, { pageSize: 2 });
    assert.equal(first.items.length, 2);
    assert.notEqual(first.nextPageToken, "");
    const all = [];
    for await (const run of client.flowRuns({ flowName })) {
      all.push(run.id);
    }
    assert.deepEqual(all.sort(), ids.sort());
    const pending = await client.listFlowRuns({ flowName, stateTypes: [StateType.COMPLETED] });
    assert.deepEqual(pending.items, []);
  });

  it("creates a run SCHEDULED for later", async () => {
    const when = new Date(Date.now() + 3_600_000);
    const run = await client.createFlowRun({ flowName: "ts-later" }, { scheduledTime: when });
    assert.equal(run.state?.type, StateType.SCHEDULED);
    assert.equal(Number(run.state?.scheduledTime?.seconds), Math.floor(when.getTime() / 1000));
  });
}

function typedErrors(): void {
  it("an unknown run is a NotFoundError with the service's reason", async () => {
    const id = randomUUID();
    const error = await client.getFlowRun(id).catch((e: unknown) => e);
    assert.ok(error instanceof NotFoundError, String(error));
    assert.ok(error instanceof HeadwaterError);
    assert.equal(error.codeName, "NOT_FOUND");
    assert.equal(error.reason, "FLOW_RUN_NOT_FOUND");
    assert.match(error.message, new RegExp(id));
  });

  it("a malformed id is an InvalidArgumentError naming the field", async () => {
    const error = await client.getFlowRun("not-a-uuid").catch((e: unknown) => e);
    assert.ok(error instanceof InvalidArgumentError, String(error));
    assert.equal(error.codeName, "INVALID_ARGUMENT");
    assert.deepEqual(error.fieldViolations.map((v) => v.field), ["flow_run_id"]);
  });

  it("a watch of an unknown run fails at once with NotFoundError", async () => {
    const watch = client.watchFlowRun(randomUUID());
    await assert.rejects(watch.next(), NotFoundError);
  });

  it("a second run with the same idempotency key is an AlreadyExistsError naming the first", async () => {
    const key = randomUUID();
    const first = await client.createFlowRun({ flowName: "ts-once" }, { idempotencyKey: key });
    const error = await client
      .createFlowRun({ flowName: "ts-once" }, { idempotencyKey: key })
      .catch((e: unknown) => e);
    assert.ok(error instanceof AlreadyExistsError, String(error));
    assert.equal(error.metadata.existing_flow_run_id, first.id);
  });

  it("an unknown deployment name is a NotFoundError", async () => {
    await assert.rejects(client.runDeployment("no-such-flow/nightly"), NotFoundError);
  });

  it("a server that is not there is an UnavailableError", async () => {
    const nobody = createHeadwaterClient({ address: `127.0.0.1:${await freePort()}` });
    try {
      await assert.rejects(nobody.getFlowRun(randomUUID()), UnavailableError);
    } finally {
      nobody.close();
    }
  });

  it("sends the configured headers, then runs the caller's interceptors", async () => {
    const seen: string[] = [];
    const custom = createHeadwaterClient({
      address: server.address,
      headers: { "x-team": "payments" },
      interceptors: [
        (next) => (request) => {
          seen.push(`${request.method.name} ${request.header.get("x-team")}`);
          return next(request);
        },
      ],
    });
    try {
      await assert.rejects(custom.getFlowRun(randomUUID()), NotFoundError);
    } finally {
      custom.close();
    }
    assert.deepEqual(seen, ["GetFlowRun payments"]);
  });

  it("an address that can never work is refused before dialing", () => {
    assert.throws(() => createHeadwaterClient({ address: "localhost" }), /has no port/);
    assert.throws(() => createHeadwaterClient({ address: "http://h:4200/api" }), /a path/);
    assert.throws(() => createHeadwaterClient({ address: "::1:4200" }), /brackets/);
    assert.throws(() => createHeadwaterClient({ address: "h:99999" }), /1 to 65535/);
    const accepted = createHeadwaterClient({ address: "http://127.0.0.1:4200/" });
    accepted.close();
    const saved = process.env.HEADWATER_API_URL;
    delete process.env.HEADWATER_API_URL;
    try {
      assert.throws(() => createHeadwaterClient(), /HEADWATER_API_URL/);
    } finally {
      if (saved !== undefined) process.env.HEADWATER_API_URL = saved;
    }
  });
}
