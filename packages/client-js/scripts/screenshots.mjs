// Regenerates the dashboard screenshots in docs/img (`npm run screenshots`,
// after `cargo build`): an embedded jobwire with a few jobs in every state,
// in Debian's chromium.
import { resolve } from "node:path";
import { chromium } from "playwright-core";
import WebSocket from "ws";

import { JobwireClient } from "../dist/index.js";
import { embedded, token } from "../test/servers.mjs";

const OUT = resolve(import.meta.dirname, "../../../docs/img");
const server = await embedded();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  await page.goto(`${server.url}/?token=${token("acme")}`);
  await page.waitForSelector('#connection[data-state="connected"]');
  const jobwire = new JobwireClient({ url: server.url, token: token("acme"), WebSocket });
  const flaky = await jobwire.create({ type: "fail", payload: { message: "upstream returned 503" }, maxAttempts: 3 });
  await jobwire.createMany([
    { type: "echo", payload: { to: "ada@example.com" } },
    { type: "noop", priority: "high" },
    { type: "sleep", payload: { ms: 60_000 }, priority: "critical" },
    { type: "sleep", payload: { ms: 60_000 } },
    { type: "noop", delayMs: 3_600_000, priority: "low" },
    ...Array.from({ length: 6 }, () => ({ type: "noop" })),
  ]);
  await jobwire.waitFor(flaky.id).catch(() => {});
  // The running sleeps report 50% at half time; wait for their bars.
  await page.waitForFunction(() => document.querySelectorAll("#jobs tr[data-status=running] progress[value]").length === 2, null, { timeout: 60_000 });
  // The queue cards refresh every 2 s.
  await page.waitForSelector('.card[data-priority="critical"] .sub:text("1 running")');
  await page.screenshot({ path: `${OUT}/dashboard.png` });
  await page.click(`#jobs tr[data-job-id="${flaky.id}"] td.id button`);
  await page.waitForSelector("#detail:not([hidden]) table.attempts");
  await page.screenshot({ path: `${OUT}/dashboard-detail.png` });
  console.log(`wrote ${OUT}/dashboard.png and dashboard-detail.png`);
} finally {
  await browser.close();
  await server.close();
}
process.exit(0);
