/**
 * The README's "From TypeScript" snippet, run as written: the flows of its "Serving flows and
 * workers" section are served by Python against a real server, and the snippet (type-checked
 * by tsc, then run by node with HEADWATER_API_URL) runs a deployment, watches it to COMPLETED,
 * prints its logs and cancels a later run.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";

import { NotFoundError, createHeadwaterClient } from "@headwater/client";

import { REPO_ROOT, ServerProcess, VENV_BIN } from "./server.js";

const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
const PACKAGE_ROOT = join(REPO_ROOT, "typescript_client");
const DEADLINE_MS = 120_000;

/** The body of the only ```language block in the section under `title`. */
function block(title: string, language: string): string {
  const start = README.indexOf(`\n${title}\n`);
  assert.ok(start >= 0, `README has no "${title}"`);
  const rest = README.slice(start + title.length + 2);
  const section = rest.split(/\n#{2,3} /, 1)[0] ?? "";
  const blocks = [...section.matchAll(new RegExp("```" + language + "\\n([\\s\\S]*?)```", "g"))];
  assert.equal(blocks.length, 1, `"${title}" should hold one ${language} block`);
  return blocks[0]?.[1] ?? "";
}

let server: ServerProcess;
let serving: ChildProcess | undefined;
let workdir: string;

before(async () => {
  server = await new ServerProcess().start();
  workdir = mkdtempSync(join(tmpdir(), "headwater-ts-readme-"));
  writeFileSync(join(workdir, "flows.py"), block("## Serving flows and workers", "python"));
  const log = openSync(join(workdir, "serve.log"), "a");
  serving = spawn(join(VENV_BIN, "python"), ["flows.py"], {
    cwd: workdir,
    env: { ...process.env, HEADWATER_API_URL: server.address, HEADWATER_HOME: join(workdir, "home") },
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  await untilDeployed("hello/daily").catch((error: unknown) => {
    throw new Error(`flows.py never served hello/daily (${String(error)}):\n${readFileSync(join(workdir, "serve.log"), "utf8")}`);
  });
});

after(async () => {
  if (serving && serving.exitCode === null) {
    const exited = new Promise((resolve) => serving?.once("exit", resolve));
    serving.kill("SIGTERM");
    await exited;
  }
  await server?.dispose();
  rmSync(workdir, { recursive: true, force: true });
});

async function untilDeployed(name: string): Promise<void> {
  const client = createHeadwaterClient({ address: server.address });
  const deadline = Date.now() + DEADLINE_MS;
  try {
    for (;;) {
      try {
        await client.getDeployment(name);
        return;
      } catch (error) {
        if (!(error instanceof NotFoundError) || serving?.exitCode !== null || Date.now() > deadline) {
          throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  } finally {
    client.close();
  }
}

it("the README's TypeScript snippet runs a served deployment to COMPLETED", () => {
  // Inside the package, so `@headwater/client` resolves to it as it does for an installed one.
  const dir = join(PACKAGE_ROOT, "build", "readme");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "snippet.ts"), block("### From TypeScript", "ts"));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      extends: "../../tsconfig.json",
      compilerOptions: { rootDir: ".", outDir: "out", declaration: false, sourceMap: false },
      include: ["snippet.ts"],
    }),
  );
  const compiled = spawnSync(join(PACKAGE_ROOT, "node_modules", ".bin", "tsc"), ["-p", dir], {
    encoding: "utf8",
  });
  assert.equal(compiled.status, 0, `tsc rejected the snippet:\n${compiled.stdout}${compiled.stderr}`);
  const env: Record<string, string | undefined> = { ...process.env, HEADWATER_API_URL: server.address };
  const ran = spawnSync(process.execPath, [join(dir, "out", "snippet.js")], {
    encoding: "utf8",
    env,
    timeout: DEADLINE_MS,
  });
  assert.equal(ran.status, 0, ran.stderr);
  const lines = ran.stdout.trim().split("\n");
  assert.deepEqual(lines.slice(0, 4), ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"], ran.stdout);
  assert.ok(lines.includes("hello ada"), ran.stdout);
  assert.equal(lines.at(-1), "CANCELLED");
});
