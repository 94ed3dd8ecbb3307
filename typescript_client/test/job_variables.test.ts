/**
 * `runDeployment`'s `jobVariables`: the run keeps them, and the service refuses job variables
 * that are not a JSON object, naming the field.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";

import { HeadwaterClient, createHeadwaterClient } from "@headwater/client";

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

describe("runDeployment", () => {
  it("gives the run job variables of its own", async () => {
    const flowName = `ts-jobs-${randomUUID().slice(0, 8)}`;
    await client.services.deployments.createDeployment({
      deployment: { flowName, name: "nightly", jobVariablesJson: '{"env": {"A": "deployment"}}' },
    });
    const jobVariables = { env: { A: "run", B: null }, working_dir: "/srv" };
    const later = new Date(Date.now() + 3_600_000);
    const run = await client.runDeployment(`${flowName}/nightly`, { jobVariables, scheduledTime: later });
    assert.deepEqual(JSON.parse(run.jobVariablesJson), jobVariables);
    const read = await client.services.flowRuns.getFlowRun({ flowRunId: run.id });
    assert.deepEqual(JSON.parse(read.flowRun?.jobVariablesJson ?? ""), jobVariables);

    const refused = client.services.deployments.createFlowRunFromDeployment({
      deploymentId: run.deploymentId,
      jobVariablesJson: "[1, 2]",
    });
    await assert.rejects(refused, (error: Error) => error.message.includes("job_variables_json"));
  });
});
