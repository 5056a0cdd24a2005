// The client against real jobwire processes, on both engines.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { JobFailedError, JobwireClient, JobwireError } from "../dist/index.js";
import { embedded, shared, token } from "./servers.mjs";

const client = (server, tenant = "acme") =>
  new JobwireClient({ url: server.url, token: token(tenant), WebSocket, backoff: { baseMs: 50, maxMs: 500 } });

/** Resolves when `predicate()` holds, checking on every call of the returned `poke`. */
function until(predicate, what, timeoutMs = 30_000) {
  let poke;
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
    poke = () => {
      if (predicate()) {
        clearTimeout(timer);
        resolve();
      }
    };
  });
  return { done, poke };
}

for (const engine of [embedded, shared]) {
  describe(`on ${engine.name}`, () => {
    let server;
    before(async () => {
      server = await engine();
    });
    after(async () => {
      await server?.close();
    });

    test("a job's full life through the client", async () => {
      const jobwire = client(server);
      const seen = [];
      const states = [];
      jobwire.onState((state) => states.push(state));
      const connected = until(() => jobwire.state === "connected", "connected");
      jobwire.onState(connected.poke);
      const unsubscribe = jobwire.subscribe((update) => seen.push(update));
      await connected.done;

      const job = await jobwire.create({ type: "echo", payload: { hello: "world" }, priority: "high" });
      assert.equal(job.status, "queued");
      const done = await jobwire.waitFor(job.id);
      assert.equal(done.status, "succeeded");
      assert.deepEqual(done.result, { hello: "world" });

      const mine = () => seen.filter((u) => u.jobId === job.id);
      const all = until(() => mine().some((u) => u.status === "succeeded"), "succeeded on the stream");
      all.poke();
      jobwire.subscribe(all.poke);
      await all.done;
      const versions = mine().map((u) => u.version);
      assert.deepEqual(versions, [...versions].sort((a, b) => a - b), "versions only go up");
      assert.deepEqual(mine().map((u) => u.status), ["queued", "running", "succeeded"]);

      const watched = [];
      for await (const update of jobwire.watch(job.id)) watched.push(update.status);
      assert.deepEqual(watched, ["succeeded"], "watch starts at the current state and ends at a terminal one");

      const listed = [];
      for await (const each of jobwire.list({ limit: 1 })) listed.push(each.id);
      assert.ok(listed.includes(job.id), "list pages through the tenant's jobs");

      const many = await jobwire.createMany([{ type: "noop" }, { type: "noop" }]);
      assert.equal(many.length, 2);

      const sleeper = await jobwire.create({ type: "sleep", payload: { ms: 60_000 } });
      const cancelled = jobwire.waitFor(sleeper.id);
      await jobwire.cancel(sleeper.id);
      await assert.rejects(cancelled, (e) => e instanceof JobFailedError && e.job.status === "cancelled");
      const again = await jobwire.retry(sleeper.id);
      assert.equal(again.status, "queued");
      await jobwire.cancel(sleeper.id);

      await assert.rejects(
        jobwire.create({ type: "" }),
        (e) => e instanceof JobwireError && e.status === 422 && e.detail.length > 0 && !!e.requestId,
      );
      unsubscribe();
      jobwire.close();
      assert.equal(states[0], "connecting");
      assert.equal(jobwire.state, "disconnected");
    });

    test("the API killed and restarted mid-stream: the client resumes and ends equal to the store", async () => {
      const jobwire = client(server);
      const latest = new Map();
      const states = [];
      jobwire.onState((state) => states.push(state));
      const connected = until(() => jobwire.state === "connected", "connected");
      jobwire.onState(connected.poke);
      jobwire.subscribe((update) => latest.set(update.jobId, update));
      await connected.done;

      const first = await jobwire.createMany(Array.from({ length: 100 }, () => ({ type: "sleep", payload: { ms: 30 } })));
      const restart = await server.killApi();
      const reconnecting = until(() => states.includes("reconnecting"), "reconnecting");
      reconnecting.poke();
      jobwire.onState(reconnecting.poke);
      await reconnecting.done;
      await restart();
      const back = until(() => jobwire.state === "connected", "connected again");
      back.poke();
      jobwire.onState(back.poke);
      await back.done;
      const second = await jobwire.createMany(Array.from({ length: 100 }, () => ({ type: "noop" })));

      const ids = [...first, ...second].map((job) => job.id);
      const store = new Map();
      const settled = until(() => ids.every((id) => latest.get(id)?.status === "succeeded"), "every job succeeded on the stream", 60_000);
      const check = setInterval(settled.poke, 50);
      await settled.done.finally(() => clearInterval(check));
      for await (const job of jobwire.list({ limit: 200 })) store.set(job.id, job);
      for (const id of ids) {
        assert.equal(latest.get(id).status, store.get(id).status, `job ${id}`);
        assert.equal(latest.get(id).version, store.get(id).version, `job ${id}`);
      }
      jobwire.close();
    });

    test("a refused token is reported as such, apart from other closes", async () => {
      const expired = new JobwireClient({ url: server.url, token: token("acme", -60), WebSocket, backoff: { baseMs: 50, maxMs: 200 } });
      const refused = new Promise((resolve) => expired.onClose((close) => close.unauthorized && resolve(close)));
      expired.subscribe(() => {});
      const close = await refused;
      assert.equal(close.unauthorized, true);
      expired.close();
    });

    test("two tenants are isolated", async () => {
      const acme = client(server, "acme");
      const globex = client(server, "globex");
      const seenByGlobex = [];
      const connected = until(() => globex.state === "connected", "globex connected");
      globex.onState(connected.poke);
      globex.subscribe((update) => seenByGlobex.push(update));
      await connected.done;

      const job = await acme.create({ type: "noop" });
      await acme.waitFor(job.id);
      await assert.rejects(globex.get(job.id), (e) => e instanceof JobwireError && e.status === 404);
      // A barrier of globex's own, after acme's job: everything before it has arrived.
      const own = await globex.create({ type: "noop" });
      await globex.waitFor(own.id);
      const barrier = until(() => seenByGlobex.some((u) => u.jobId === own.id && u.status === "succeeded"), "globex's own job");
      barrier.poke();
      globex.subscribe(barrier.poke);
      await barrier.done;
      assert.ok(seenByGlobex.every((u) => u.tenantId === "globex"), "globex saw only its own jobs");
      acme.close();
      globex.close();
    });
  });
}
