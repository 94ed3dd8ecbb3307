/**
 * A real `headwater server start` subprocess on 127.0.0.1 with its own home directory (and so
 * its own SQLite database), the same command the Python suite's harness runs.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { createHeadwaterClient } from "@headwater/client";

/** The repository's root (this file runs from typescript_client/build/test/). */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The project's virtualenv `bin`, where `make install` put `headwater` and `python`. */
export const VENV_BIN = process.env.HEADWATER_VENV_BIN ?? join(REPO_ROOT, ".venv", "bin");

const START_TIMEOUT_MS = 30_000;

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") {
          resolve(address.port);
        } else {
          reject(new Error("no port"));
        }
      });
    });
  });
}

/**
 * Creates an empty database on the test PostgreSQL server (the one scripts/ensure-postgres runs,
 * which `make test` starts) and returns its URL for the server and a function that drops it.
 * Through the project's Python and psycopg, as tests/server_harness.py does, so the package needs
 * no PostgreSQL driver.
 */
export function throwawayPostgres(): { url: string; drop: () => void } {
  const port = process.env.HEADWATER_TEST_POSTGRES_PORT ?? "54320";
  const admin = `postgresql://postgres@127.0.0.1:${port}/test`;
  const name = `hw_ts_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const script = [
    "import sys, psycopg",
    "with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=5) as c:",
    "    c.execute(sys.argv[2])",
  ].join("\n");
  const run = (statement: string): void => {
    const result = spawnSync(join(VENV_BIN, "python"), ["-c", script, admin, statement], { encoding: "utf8" });
    if (result.status !== 0) {
      throw new Error(`${statement} on ${admin} failed (run scripts/ensure-postgres):\n${result.stderr}`);
    }
  };
  run(`CREATE DATABASE "${name}"`);
  return {
    url: `postgresql+psycopg://postgres@127.0.0.1:${port}/${name}`,
    drop: () => run(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
  };
}

export class ServerProcess {
  readonly home: string;
  readonly logPath: string;
  address = "";
  private process: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly env: Record<string, string> = {}) {
    this.home = mkdtempSync(join(tmpdir(), "headwater-ts-"));
    this.logPath = join(this.home, "server.log");
  }

  /** Starts the server (on a new port, or on its previous one) and waits until it answers. */
  async start(): Promise<this> {
    if (!this.address) {
      this.address = `127.0.0.1:${await freePort()}`;
    }
    const port = this.address.split(":")[1] ?? "";
    const log = openSync(this.logPath, "a");
    const env: Record<string, string | undefined> = { ...process.env };
    delete env.HEADWATER_API_URL;
    delete env.HEADWATER_DATABASE_URL;
    Object.assign(env, this.env);
    env.HEADWATER_HOME = this.home;
    env.PYTHONUNBUFFERED = "1";
    const child = spawn(
      join(VENV_BIN, "headwater"),
      ["server", "start", "--host", "127.0.0.1", "--port", port],
      { cwd: this.home, env, stdio: ["ignore", log, log] },
    );
    closeSync(log);
    this.process = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    await this.waitUntilServing();
    return this;
  }

  /** Stops the server with `signal` (SIGTERM shuts down cleanly) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      await this.exited;
    }
  }

  /** The server's output so far (its console span exporter writes here too). */
  log(): string {
    return readFileSync(this.logPath, "utf8");
  }

  /** Stops the server and removes its home. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.home, { recursive: true, force: true });
  }

  private async waitUntilServing(): Promise<void> {
    const client = createHeadwaterClient({ address: this.address, timeoutMs: 2000 });
    const deadline = Date.now() + START_TIMEOUT_MS;
    try {
      for (;;) {
        try {
          await client.services.flows.listFlows({ pageSize: 1 });
          return;
        } catch (error) {
          const exited = this.process?.exitCode !== null || this.process?.signalCode !== null;
          if (exited || Date.now() > deadline) {
            throw new Error(`the server did not start: ${String(error)}\n${this.log()}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    } finally {
      client.close();
    }
  }
}
