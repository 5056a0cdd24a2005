// worker(): the client as a worker over HTTP, against real jobwire processes on both engines. Each
// test takes job types of its own (`js.*`, which no built-in handler has), so no other worker runs them.
// A handler that waits for the test waits only so long: a failing test still ends its worker.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { JobFailedError, JobwireClient, JobwireError, NonRetryableError } from "../dist/index.js";
import { embedded, shared, token, workerToken } from "./servers.mjs";

const BACKOFF = { baseMs: 50, maxMs: 500 };

const tenant = (server, name = "acme") =>
  new JobwireClient({ url: server.url, token: token(name), WebSocket, backoff: BACKOFF });

const worker = (server, types) => new JobwireClient({ url: server.url, token: workerToken(types), backoff: BACKOFF });

/** A promise and its resolve function. */
function deferred() {
  let resolve;
  const promise = new Promise((done) => (resolve = done));
  return { promise, resolve };
}

/** `promise`, or a rejection naming `what` once `ms` have passed. */
function within(promise, what, ms = 30_000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Subscribes `client` to all its tenant's updates, resolving once the socket is live. */
async function subscribed(client, onUpdate) {
  const live = deferred();
  client.onState((state) => state === "connected" && live.resolve());
  client.subscribe(onUpdate);
  await within(live.promise, "the live connection");
}

for (const [name, start] of [
  ["embedded", () => embedded()],
  // No built-in worker: jobwire-api alone sees to lapsed leases and due retries.
  ["shared", () => shared({ worker: false })],
]) {
  describe(`worker() on ${name}`, () => {
    let server;
    before(async () => {
      server = await start();
    });
    after(async () => {
      await server?.close();
    });

    test("a tenant's job runs in worker(): its progress and result reach the tenant live", async () => {
      const acme = tenant(server);
      const updates = [];
      const succeeded = deferred();
      await subscribed(acme, (update) => {
        updates.push(update);
        if (update.status === "succeeded") succeeded.resolve();
      });
      const leased = [];
      const handle = worker(server, ["js.double"]).worker({
        types: ["js.double"],
        handler: async (job, ctx) => {
          leased.push(job);
          await ctx.progress({ percent: 50 });
          return { doubled: job.payload.n * 2 };
        },
      });

      const job = await acme.create({ type: "js.double", payload: { n: 21 }, maxAttempts: 3 });
      const done = await within(acme.waitFor(job.id), "the job to succeed");
      assert.deepEqual(done.result, { doubled: 42 });
      assert.equal(done.attempt, 1);
      await within(succeeded.promise, "succeeded on the stream");
      await handle.stop();

      assert.equal(leased.length, 1);
      assert.equal(leased[0].id, job.id);
      assert.equal(leased[0].tenantId, "acme");
      assert.deepEqual(leased[0].payload, { n: 21 });
      assert.equal(leased[0].maxAttempts, 3);
      const mine = updates.filter((u) => u.jobId === job.id);
      const versions = mine.map((u) => u.version);
      assert.deepEqual(versions, [...versions].sort((a, b) => a - b), "versions only go up");
      assert.ok(
        mine.some((u) => u.status === "running" && JSON.stringify(u.progress) === '{"percent":50}'),
        `the progress reached the tenant: ${JSON.stringify(mine)}`,
      );
      assert.deepEqual(mine.at(-1).result, { doubled: 42 });
      acme.close();
    });

    test("concurrency: that many handlers run at once, never more", async () => {
      const acme = tenant(server);
      let active = 0;
      let most = 0;
      const two = deferred();
      const handle = worker(server, ["js.pair"]).worker({
        types: ["js.pair"],
        concurrency: 2,
        handler: async () => {
          active += 1;
          most = Math.max(most, active);
          if (active === 2) two.resolve();
          // The first two jobs only finish once both run together.
          await within(two.promise, "two handlers at once");
          active -= 1;
          return null;
        },
      });
      const jobs = await acme.createMany(Array.from({ length: 5 }, () => ({ type: "js.pair" })));
      for (const job of jobs) await within(acme.waitFor(job.id), `job ${job.id}`);
      await handle.stop();
      assert.equal(most, 2);
      acme.close();
    });

    test("a job cancelled while its handler runs aborts ctx.signal, and nothing more is reported", async () => {
      const acme = tenant(server);
      const started = deferred();
      const aborted = deferred();
      const handle = worker(server, ["js.wait"]).worker({
        types: ["js.wait"],
        leaseMs: 1500,
        handler: async (_job, ctx) => {
          started.resolve();
          await within(new Promise((resolve) => ctx.signal.addEventListener("abort", resolve)), "the abort");
          aborted.resolve(ctx.signal.reason);
          return { ignored: true };
        },
      });
      const job = await acme.create({ type: "js.wait" });
      await within(started.promise, "the handler to start");
      await acme.cancel(job.id);
      const reason = await within(aborted.promise, "ctx.signal to abort");
      assert.match(reason.message, /cancelled/);
      await handle.stop();
      const after = await acme.get(job.id);
      assert.equal(after.status, "cancelled");
      assert.equal(after.result, null, "the handler's return value was not reported");
      acme.close();
    });

    test("a thrown NonRetryableError fails the job at attempt 1", async () => {
      const acme = tenant(server);
      const handle = worker(server, ["js.strict"]).worker({
        types: ["js.strict"],
        handler: () => {
          throw new NonRetryableError("payload.n must be a number");
        },
      });
      const job = await acme.create({ type: "js.strict", payload: { n: "x" }, maxAttempts: 3 });
      await assert.rejects(
        within(acme.waitFor(job.id), "the job to fail"),
        (e) => e instanceof JobFailedError && e.job.status === "failed" && e.job.attempt === 1,
      );
      const failed = await acme.get(job.id);
      assert.equal(failed.error, "payload.n must be a number");
      assert.equal(failed.attemptErrors.length, 1);
      await handle.stop();
      acme.close();
    });

    test("any other thrown error is retried, with its message kept", async () => {
      const acme = tenant(server);
      const handle = worker(server, ["js.flaky"]).worker({
        types: ["js.flaky"],
        handler: (job) => {
          if (job.attempt === 1) throw new Error("upstream timed out");
          return { attempt: job.attempt };
        },
      });
      const job = await acme.create({ type: "js.flaky", maxAttempts: 2 });
      const done = await within(acme.waitFor(job.id), "the retried job to succeed");
      assert.deepEqual(done.result, { attempt: 2 });
      assert.deepEqual(
        done.attemptErrors.map((a) => [a.attempt, a.error]),
        [[1, "upstream timed out"]],
      );
      await handle.stop();
      acme.close();
    });

    test("stop() stops leasing and resolves once the running handler has finished and reported", async () => {
      const acme = tenant(server);
      const started = deferred();
      const release = deferred();
      const events = [];
      const handle = worker(server, ["js.stop"]).worker({
        types: ["js.stop"],
        handler: async () => {
          started.resolve();
          await within(release.promise, "the release");
          events.push("handler returned");
          return { finished: true };
        },
      });
      const first = await acme.create({ type: "js.stop" });
      await within(started.promise, "the handler to start");
      const stopped = handle.stop().then(() => events.push("stopped"));
      const second = await acme.create({ type: "js.stop" });
      release.resolve();
      await within(stopped, "stop() to resolve");
      await handle.done;
      assert.deepEqual(events, ["handler returned", "stopped"]);
      assert.equal((await acme.get(first.id)).status, "succeeded", "reported before stop() resolved");
      assert.equal((await acme.get(second.id)).status, "queued", "not leased after stop()");
      acme.close();
    });

    test("a type the token does not allow: done rejects with the API's 403", async () => {
      const handle = worker(server, ["js.allowed"]).worker({ types: ["js.other"], handler: () => null });
      await assert.rejects(within(handle.done, "done to settle"), (e) => e instanceof JobwireError && e.status === 403);
      assert.throws(
        () => worker(server, ["js.allowed"]).worker({ types: ["js.allowed"], concurrency: 0, handler: () => null }),
        /concurrency/,
      );
    });

    // Last: it restarts the API.
    test("the API killed under a polling worker: it backs off, goes on, and runs the next job", async () => {
      const errors = [];
      const unreachable = deferred();
      const handle = worker(server, ["js.restart"]).worker({
        types: ["js.restart"],
        onError: (error) => {
          errors.push(error);
          if (error instanceof JobwireError && error.status === 0) unreachable.resolve();
        },
        handler: (job) => ({ echoed: job.payload }),
      });
      const restart = await server.killApi();
      await within(unreachable.promise, "the worker to meet the dead API");
      await restart();
      const acme = tenant(server);
      const job = await acme.create({ type: "js.restart", payload: { after: "restart" } });
      const done = await within(acme.waitFor(job.id), "the job after the restart");
      assert.deepEqual(done.result, { echoed: { after: "restart" } });
      await handle.stop();
      assert.ok(errors.every((e) => e instanceof JobwireError && e.status === 0), "only the outage was reported");
      acme.close();
    });
  });
}
