/**
 * The package exports every generated module: `src/v1.ts` re-exports each file protoc-gen-es
 * wrote (a proto added later must be added there too), from the root and from "./v1".
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";

import * as root from "@headwater/client";
import * as v1 from "@headwater/client/v1";

import { REPO_ROOT } from "./server.js";

const SRC = join(REPO_ROOT, "typescript_client", "src");

it("src/v1.ts re-exports every generated file", () => {
  const generated = readdirSync(join(SRC, "gen", "headwater", "v1"))
    .map((name) => name.replace(/\.ts$/, ""))
    .sort();
  const reexported = [...readFileSync(join(SRC, "v1.ts"), "utf8").matchAll(/gen\/headwater\/v1\/(\w+)\.js/g)]
    .map((match) => match[1])
    .sort();
  assert.deepEqual(reexported, generated);
});

it("the service descriptors and messages are importable from the root and from ./v1", () => {
  assert.equal(root.FlowRunService.typeName, "headwater.v1.FlowRunService");
  assert.equal(v1.DeploymentService.typeName, "headwater.v1.DeploymentService");
  assert.equal(root.StateType.COMPLETED, v1.StateType.COMPLETED);
  assert.equal(typeof root.createHeadwaterClient, "function");
});

it("the hand-written public surface is exactly this list", () => {
  const handWritten = Object.keys(root)
    .filter((name) => !(name in v1))
    .sort();
  assert.deepEqual(handWritten, [
    "ADDRESS_FORMS",
    "AlreadyExistsError",
    "FailedPreconditionError",
    "HeadwaterClient",
    "HeadwaterError",
    "InvalidArgumentError",
    "NotFoundError",
    "UnavailableError",
    "createHeadwaterClient",
    "isTerminal",
    "toHeadwaterError",
    "traceContextInterceptor",
  ]);
});

it("the published package holds the compiled JavaScript with its declarations, and no tests", () => {
  const packed = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: join(REPO_ROOT, "typescript_client"),
    encoding: "utf8",
  });
  assert.equal(packed.status, 0, packed.stderr);
  const [manifest] = JSON.parse(packed.stdout) as [{ files: { path: string }[] }];
  const files = manifest.files.map((f) => f.path);
  for (const file of ["dist/index.js", "dist/index.d.ts", "dist/v1.js", "dist/v1.d.ts", "dist/watch.js"]) {
    assert.ok(files.includes(file), `${file} is not packed`);
  }
  assert.deepEqual(files.filter((f) => /^(test|build|node_modules)\//.test(f)), []);
});
