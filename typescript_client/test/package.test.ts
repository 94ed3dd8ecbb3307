/**
 * The packed package works for a project outside this repository: installed from the tarball
 * `npm pack` makes (so only its `dependencies` come along, not the devDependencies the other
 * tests enjoy), type-checked against its .d.ts by tsc, and run by node as ESM.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";

import { REPO_ROOT } from "./server.js";

const PACKAGE_ROOT = join(REPO_ROOT, "typescript_client");

const CONSUMER = `import { createHeadwaterClient, isTerminal, NotFoundError, StateType } from "@headwater/client";
import { FlowRunService } from "@headwater/client/v1";

const client = createHeadwaterClient({ address: "127.0.0.1:4200" });
client.close();
const final: boolean = isTerminal(StateType.COMPLETED);
console.log(final, FlowRunService.typeName, new NotFoundError("x", { code: 5 }).codeName);
`;

function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: "utf8" });
  assert.equal(result.status, 0, `${command} ${args.join(" ")}:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

it("a project installs the tarball, type-checks against it and runs it", () => {
  const project = mkdtempSync(join(tmpdir(), "headwater-ts-consumer-"));
  try {
    const tarball = run("npm", ["pack", "--ignore-scripts", "--pack-destination", project], PACKAGE_ROOT)
      .trim()
      .split("\n")
      .at(-1);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", type: "module", private: true }));
    run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", `./${tarball}`], project);
    writeFileSync(join(project, "consumer.ts"), CONSUMER);
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          lib: ["ES2022", "DOM"],
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          types: [],
        },
        files: ["consumer.ts"],
      }),
    );
    run(join(PACKAGE_ROOT, "node_modules", ".bin", "tsc"), ["-p", project], project);
    const output = run(process.execPath, [join(project, "consumer.js")], project);
    assert.equal(output.trim(), "true headwater.v1.FlowRunService NOT_FOUND");
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
});
