// Real jobwire processes for the client's tests: the embedded all-in-one
// (`jobwire`, SQLite) and the shared shape (`jobwire-api` + `jobwire-worker`
// on Postgres and Redis), each on its own data, on a fixed port so that a
// restarted API comes back where the client reconnects.
import { spawn, execFileSync } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

export const SECRET = "client-js-test-secret-of-at-least-32-bytes";
const BIN = process.env.JOBWIRE_BIN_DIR ?? resolve(import.meta.dirname, "../../../target/debug");
const PG = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432";
const REDIS = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** An HS256 JWT of `claims`, signed with the servers' secret. */
function sign(claims) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}

/** A token for `tenant`, minted as a backend would (HS256). */
export function token(tenant, ttlSeconds = 3600) {
  const now = Math.floor(Date.now() / 1000);
  return sign({ tenant, iat: now, exp: now + ttlSeconds });
}

/** A worker's token for job `types` of any tenant, as `jobwire token --worker` mints it. */
export function workerToken(types, { tenants = ["*"], name = "client-js-test", ttlSeconds = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return sign({ role: "worker", sub: name, tenants, types, iat: now, exp: now + ttlSeconds });
}

/** An operator's token (`role: operator`), as `jobwire token --operator` mints it. */
export function operatorToken({ name = "client-js-ops", ttlSeconds = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return sign({ role: "operator", sub: name, iat: now, exp: now + ttlSeconds });
}

async function freePort() {
  const server = createServer();
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

/** Starts a binary and waits for its `listening on http://…` line. */
async function start(binary, env) {
  const child = spawn(join(BIN, binary), [], {
    env: { PATH: process.env.PATH, RUST_LOG: "warn", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`${binary} did not start`)), 30_000);
    child.once("exit", (code) => reject(new Error(`${binary} exited with ${code}`)));
    lines.on("line", (line) => {
      const match = /listening on (http:\/\/\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolveUrl(match[1]);
      }
    });
  });
  lines.on("line", () => {});
  return { child, url };
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once("exit", done));
  child.kill("SIGKILL");
  await exited;
}

/** `jobwire` embedded: SQLite in a temp dir, the in-process broker. */
export async function embedded() {
  const dir = mkdtempSync(join(tmpdir(), "jobwire-client-js-"));
  const port = await freePort();
  const env = {
    JOBWIRE_DB_FILE: join(dir, "jobs.db"),
    JOBWIRE_ADDR: `127.0.0.1:${port}`,
    JOBWIRE_JWT_SECRET: SECRET,
  };
  let api = await start("jobwire", env);
  return {
    name: "embedded",
    url: api.url,
    /** Kills the API (here: the whole process) and returns a function that starts it again. */
    async killApi() {
      await stop(api.child);
      return async () => {
        api = await start("jobwire", env);
      };
    },
    async close() {
      await stop(api.child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * `jobwire-api` and `jobwire-worker` on a fresh Postgres database and Redis
 * prefix; with `{ worker: false }` the worker waits for `startWorker()`.
 */
export async function shared({ worker: withWorker = true } = {}) {
  const id = randomUUID().replaceAll("-", "");
  const database = `jobwire_client_js_${id}`;
  const port = await freePort();
  const env = {
    DATABASE_URL: `${PG}/${database}`,
    REDIS_URL: REDIS,
    JOBWIRE_PREFIX: `client-js-${id}:`,
    JOBWIRE_ADDR: `127.0.0.1:${port}`,
    JOBWIRE_JWT_SECRET: SECRET,
  };
  let api = await start("jobwire-api", env);
  let worker;
  const startWorker = () => {
    worker ??= spawn(join(BIN, "jobwire-worker"), [], {
      // Its metrics on a free port, not the default 9091 another process may hold.
      env: { PATH: process.env.PATH, RUST_LOG: "warn", JOBWIRE_METRICS_ADDR: "127.0.0.1:0", ...env },
      stdio: ["ignore", "ignore", "inherit"],
    });
  };
  if (withWorker) startWorker();
  return {
    name: "shared",
    url: api.url,
    database: `${PG}/${database}`,
    startWorker,
    async killApi() {
      await stop(api.child);
      return async () => {
        api = await start("jobwire-api", env);
      };
    },
    async close() {
      await stop(api.child);
      if (worker) await stop(worker);
      execFileSync("psql", [`${PG}/postgres`, "-qc", `drop database if exists ${database} with (force)`]);
    },
  };
}
