// The dashboard at `/`, in a real browser (Debian's chromium driven by
// playwright-core) against real jobwire processes: what a user sees on the
// page, with no reload.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import WebSocket from "ws";

import { JobwireClient } from "../dist/index.js";
import { embedded, operatorToken, shared, token, workerToken } from "./servers.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

let browser;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM)`);
  // --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
});

/** A page signed in as `tenant` through `?token=`, with the live connection up. */
async function openBoard(server, tenant) {
  return openWith(server, token(tenant));
}

/** A page signed in with `bearer` through `?token=`, with the live connection up. */
async function openWith(server, bearer) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error));
  await page.goto(`${server.url}/?token=${bearer}`);
  await page.waitForSelector('#connection[data-state="connected"]');
  assert.equal(new URL(page.url()).searchParams.get("token"), null, "the token leaves the address bar");
  // Gone after a reload: the checks below prove the page never reloaded.
  await page.evaluate(() => {
    window.notReloaded = true;
  });
  return {
    page,
    errors,
    async close() {
      assert.equal(await page.evaluate(() => window.notReloaded), true, "the page was never reloaded");
      assert.deepEqual(errors, [], "no script error on the page");
      await context.close();
    },
  };
}

/** Records every status each job's row shows, in order, from now on. */
async function recordStatuses(page) {
  await page.evaluate(() => {
    window.seen = {};
    const note = (tr) => {
      const list = (window.seen[tr.dataset.jobId] ??= []);
      if (list.at(-1) !== tr.dataset.status) list.push(tr.dataset.status);
    };
    document.querySelectorAll("#jobs tbody tr").forEach(note);
    new MutationObserver((mutations) => {
      for (const m of mutations) {
        if (m.type === "attributes") note(m.target);
        for (const node of m.addedNodes) if (node.dataset?.jobId) note(node);
      }
    }).observe(document.querySelector("#jobs tbody"), { childList: true, subtree: true, attributeFilter: ["data-status"] });
  });
}

function row(page, id, status) {
  return page.locator(`#jobs tr[data-job-id="${id}"]${status ? `[data-status="${status}"]` : ""}`);
}

function client(server, tenant) {
  return new JobwireClient({ url: server.url, token: token(tenant), WebSocket });
}

/** Rows shown, as id → status. */
async function shownStatuses(page) {
  return new Map(
    await page.$$eval("#jobs tbody tr", (rows) => rows.map((tr) => [tr.dataset.jobId, tr.dataset.status])),
  );
}

/**
 * The operators' view: opened with an operator token, the page shows a Tenants table (no job
 * list) that follows every tenant's queued, running and scheduled jobs as they change, most queued
 * first, without a reload. Jobs of types no worker runs stay as the test leaves them; `hold` jobs
 * are leased by the test as a remote worker, so they are running.
 */
async function operatorView(server) {
  const prefix = `ops-${server.name}`;
  const [a, b, c] = ["a", "b", "c"].map((t) => `${prefix}-${t}`);
  const board = await openWith(server, operatorToken());
  const { page } = board;
  await page.waitForSelector("#operators:not([hidden])");
  assert.equal(await page.isHidden("#board"), true, "no tenant's board for an operator");
  assert.equal(await page.textContent("#tenant strong"), "client-js-ops");

  const ids = { [a]: [], [b]: [], [c]: [] };
  for (let i = 0; i < 3; i += 1) ids[a].push((await client(server, a).create({ type: "wait" })).id);
  await client(server, b).create({ type: "wait" });
  for (let i = 0; i < 2; i += 1) await client(server, b).create({ type: "hold" });
  const leased = await fetch(`${server.url}/v1/worker/lease`, {
    method: "POST",
    headers: { authorization: `Bearer ${workerToken(["hold"], { tenants: [b] })}`, "content-type": "application/json" },
    body: JSON.stringify({ max: 2, waitMs: 5000, leaseMs: 600000 }),
  });
  assert.equal((await leased.json()).length, 2);
  await client(server, c).create({ type: "wait", delayMs: 3_600_000 });

  const cells = (tenant) => `#tenants tr[data-tenant="${tenant}"]`;
  const shows = async (tenant, queued, running, scheduled) => {
    await page.waitForSelector(`${cells(tenant)} td.queued:text-is("${queued}")`);
    await page.waitForSelector(`${cells(tenant)} td.running:text-is("${running}")`);
    await page.waitForSelector(`${cells(tenant)} td.scheduled:text-is("${scheduled}")`);
  };
  await shows(a, 3, 0, 0);
  await shows(b, 1, 2, 0);
  await shows(c, 0, 0, 1);
  const ours = async () =>
    (await page.$$eval("#tenants tbody tr", (rows) => rows.map((tr) => tr.dataset.tenant))).filter((t) => t.startsWith(prefix));
  assert.deepEqual(await ours(), [a, b, c], "most queued first");
  // Each tenant's bucket, as its own stats tell it.
  for (const tenant of [a, b, c]) {
    const { tenantBucket } = await client(server, tenant).stats();
    assert.match(tenantBucket, /^[0-9]{2}$/);
    assert.equal(await page.textContent(`${cells(tenant)} td.bucket`), tenantBucket);
  }

  // Live: c gets 5 queued jobs and moves to the top; a's jobs are cancelled and its row goes.
  for (let i = 0; i < 5; i += 1) await client(server, c).create({ type: "wait" });
  await shows(c, 5, 0, 1);
  for (const id of ids[a]) await client(server, a).cancel(id);
  await page.waitForSelector(cells(a), { state: "detached" });
  assert.deepEqual(await ours(), [c, b]);
  assert.match(await page.textContent("#tenants-summary"), /tenants? with unfinished jobs/);
  await board.close();
}

describe("dashboard (Postgres + Redis)", () => {
  let server;
  before(async () => {
    server = await shared({ worker: false });
  });
  after(async () => {
    await server?.close();
  });

  test("a job created from the form goes queued → running → succeeded on the page", async () => {
    const board = await openBoard(server, "acme");
    const { page } = board;
    await recordStatuses(page);
    await page.click("#create-panel summary");
    await page.fill('#create-form [name="type"]', "sleep");
    await page.fill('#create-form [name="payload"]', '{"ms": 800}');
    await page.selectOption('#create-form [name="priority"]', "high");
    await page.fill('#create-form [name="maxAttempts"]', "2");
    await page.click('#create-form button[type="submit"]');
    const created = page.locator("#jobs tbody tr").first();
    await created.waitFor();
    const id = await created.getAttribute("data-job-id");
    await row(page, id, "queued").waitFor();
    // Queued, with no worker yet: the queue card counts it, and its type says no worker runs it.
    await page.waitForSelector('.card[data-priority="high"] .depth:text("1")');
    await page.waitForSelector('#types li.idle[data-type="sleep"]:has-text("no worker runs this type")');

    server.startWorker();
    await row(page, id, "succeeded").waitFor({ timeout: 30_000 });
    const seen = await page.evaluate((job) => window.seen[job], id);
    assert.deepEqual(seen, ["queued", "running", "succeeded"]);
    assert.equal(await row(page, id).locator("td").nth(4).textContent(), "1/2");
    await page.waitForSelector("#types li.idle", { state: "detached" });

    // The detail view: payload, result and the attempt.
    await row(page, id).locator("td.id button").click();
    await page.waitForSelector("#detail:not([hidden]) table.attempts");
    assert.match(await page.textContent("#detail .payload"), /"ms": 800/);
    assert.match(await page.textContent("#detail .result"), /"sleptMs": 800/);
    await page.keyboard.press("Escape");
    assert.equal(await page.isHidden("#detail"), true);
    await board.close();
  });

  test("the API killed and restarted: the page shows reconnecting, then ends equal to Postgres", async () => {
    server.startWorker();
    const board = await openBoard(server, "initech");
    const { page } = board;
    const jobwire = client(server, "initech");
    const first = await jobwire.createMany(Array.from({ length: 30 }, () => ({ type: "sleep", payload: { ms: 300 } })));
    await row(page, first[0].id).waitFor();

    const restart = await server.killApi();
    await page.waitForSelector('#connection[data-state="reconnecting"]');
    // While the API is down the worker goes on: these changes reach the page only by its resume.
    await restart();
    await page.waitForSelector('#connection[data-state="connected"][data-resumed]', { timeout: 30_000 });
    const second = await jobwire.createMany(Array.from({ length: 20 }, () => ({ type: "noop" })));

    const ids = [...first, ...second].map((job) => job.id);
    await page.waitForFunction(
      (jobs) => jobs.every((id) => document.querySelector(`#jobs tr[data-job-id="${id}"]`)?.dataset.status === "succeeded"),
      ids,
      { timeout: 60_000 },
    );
    const postgres = new Map(
      execFileSync("psql", [server.database, "-Atc", "select id, status from jobs where tenant_id = 'initech'"])
        .toString()
        .trim()
        .split("\n")
        .map((line) => line.split("|")),
    );
    assert.deepEqual(await shownStatuses(page), postgres);
    await board.close();
  });

  test("an operator token shows the Tenants table, live: queued, running and scheduled per tenant", async () => {
    await operatorView(server);
  });

  test("500 jobs created by a script while the page is open all end in their final state on it", async () => {
    server.startWorker();
    const board = await openBoard(server, "umbrella");
    const { page } = board;
    await page.selectOption('#filters [name="limit"]', "500");
    const jobwire = client(server, "umbrella");
    const jobs = [];
    for (let batch = 0; batch < 5; batch += 1) {
      jobs.push(
        ...(await jobwire.createMany(
          Array.from({ length: 100 }, (_, i) =>
            i % 10 === 0 ? { type: "fail", payload: { message: "on purpose" }, maxAttempts: 1 } : { type: "noop" },
          ),
        )),
      );
    }
    const expected = new Map(jobs.map((job) => [job.id, job.type === "fail" ? "failed" : "succeeded"]));
    await page.waitForFunction(
      (want) => {
        const rows = document.querySelectorAll("#jobs tbody tr");
        return rows.length === want.length && want.every(([id, status]) => document.querySelector(`#jobs tr[data-job-id="${id}"]`)?.dataset.status === status);
      },
      [...expected],
      { timeout: 90_000, polling: 250 },
    );
    assert.deepEqual(await shownStatuses(page), expected);
    await board.close();
  });
});

describe("dashboard (embedded)", () => {
  let server;
  before(async () => {
    server = await embedded();
  });
  after(async () => {
    await server?.close();
  });

  test("an operator token shows the Tenants table, live: queued, running and scheduled per tenant", async () => {
    await operatorView(server);
  });

  test("a second tenant's page shows nothing of the first", async () => {
    const acme = await openBoard(server, "acme");
    const globex = await openBoard(server, "globex");
    const acmeJobs = await client(server, "acme").createMany(Array.from({ length: 20 }, () => ({ type: "noop" })));
    await acme.page.waitForFunction(
      (ids) => ids.every((id) => document.querySelector(`#jobs tr[data-job-id="${id}"]`)?.dataset.status === "succeeded"),
      acmeJobs.map((job) => job.id),
    );
    // Globex's own job, after acme's: by the time it shows, any leak of acme's would have too.
    const own = await client(server, "globex").create({ type: "noop" });
    await row(globex.page, own.id, "succeeded").waitFor();
    assert.deepEqual([...(await shownStatuses(globex.page)).keys()], [own.id]);
    assert.equal(await globex.page.textContent("#tenant strong"), "globex");
    await acme.close();
    await globex.close();
  });

  test("filters, paging back, cancel and retry from the page", async () => {
    const board = await openBoard(server, "hooli");
    const { page } = board;
    const jobwire = client(server, "hooli");
    const done = await jobwire.createMany(Array.from({ length: 30 }, () => ({ type: "noop" })));
    for (const job of done) await jobwire.waitFor(job.id);
    const later = await jobwire.create({ type: "noop", delayMs: 3_600_000 });

    // A fresh page of 25, then the rest from "Load older".
    await page.selectOption('#filters [name="limit"]', "25");
    await page.waitForFunction(() => document.querySelectorAll("#jobs tbody tr").length === 25);
    await page.click("#older");
    await page.waitForFunction(() => document.querySelectorAll("#jobs tbody tr").length === 31);
    assert.equal(await page.isHidden("#older"), true, "nothing older is left");

    // Cancel the scheduled job from its row, then retry it from its detail view.
    await row(page, later.id, "scheduled").locator("button", { hasText: "Cancel" }).click();
    await row(page, later.id, "cancelled").waitFor();
    await row(page, later.id).locator("td.id button").click();
    await page.click('#detail .actions button:text("Retry")');
    await row(page, later.id, "succeeded").waitFor();
    await page.keyboard.press("Escape");

    // Only this type's jobs.
    await page.fill('#filters [name="type"]', "sleep");
    await page.click('#filters button[type="submit"]');
    await page.waitForSelector("#empty:not([hidden])");
    assert.equal(await page.locator("#jobs tbody tr").count(), 0);
    const sleeper = await jobwire.create({ type: "sleep", payload: { ms: 10 } });
    await jobwire.create({ type: "noop" });
    await row(page, sleeper.id, "succeeded").waitFor();
    assert.deepEqual([...(await shownStatuses(page)).keys()], [sleeper.id]);
    await board.close();
  });

  test("usable from the keyboard, and readable at 360 px wide", async () => {
    const board = await openBoard(server, "pied-piper");
    const { page } = board;
    await page.setViewportSize({ width: 360, height: 740 });
    const job = await client(server, "pied-piper").create({ type: "sleep", payload: { ms: 1000 } });
    await row(page, job.id, "running").waitFor();
    // Focus stays on a row while it changes under it.
    const open = row(page, job.id).locator("td.id button");
    await open.focus();
    await row(page, job.id, "succeeded").waitFor();
    assert.equal(await open.evaluate((button) => button === document.activeElement), true, "focus kept through updates");
    // Nothing wider than the screen but the table, which scrolls in its own box.
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), "the page fits 360 px");
    assert.equal(await page.isVisible("#create-panel summary"), true);

    await page.keyboard.press("Enter");
    await page.waitForSelector("#detail:not([hidden]) .result");
    assert.match(await page.textContent("#detail .result"), /"sleptMs": 1000/);
    await page.keyboard.press("Escape");
    assert.equal(await page.isHidden("#detail"), true);
    assert.equal(await open.evaluate((button) => button === document.activeElement), true, "focus returns to the row");
    await board.close();
  });

  test("a failed job's detail lists every attempt with its error, and its timeline", async () => {
    const board = await openBoard(server, "massive-dynamic");
    const { page } = board;
    const job = await client(server, "massive-dynamic").create({ type: "fail", payload: { message: "upstream 503" }, maxAttempts: 2 });
    await row(page, job.id, "failed").waitFor({ timeout: 30_000 });
    await row(page, job.id).locator("td.id button").click();
    const attempts = page.locator("#detail table.attempts tbody tr");
    await attempts.first().waitFor();
    const shown = await attempts.evaluateAll((rows) =>
      rows.map((tr) => [tr.dataset.attempt, tr.querySelector(".chip").textContent, tr.lastElementChild.textContent]),
    );
    assert.deepEqual(shown, [
      ["1", "failed", "upstream 503"],
      ["2", "failed", "upstream 503"],
    ]);
    const timeline = await page.locator("#detail ol.timeline li").allTextContents();
    const steps = timeline.map((entry) => entry.replace(/^[^a-z]*/, ""));
    assert.deepEqual(steps.filter((step) => !step.startsWith("live:")), [
      "created (default)",
      "attempt 1 started",
      "attempt 1 failed: upstream 503",
      "attempt 2 started",
      "attempt 2 failed: upstream 503",
    ]);
    await board.close();
  });

  test("a refused token brings back the sign-in form, and a pasted token signs in", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/?token=${token("acme", -60)}`);
    await page.waitForSelector("#sign-in:not([hidden])");
    await page.fill("#token-input", token("acme"));
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await page.waitForSelector('#connection[data-state="connected"]');
    assert.equal(await page.textContent("#tenant strong"), "acme");
    await context.close();
  });
});
