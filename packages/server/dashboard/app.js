// jobwire's dashboard: the tenant's jobs, live. Everything it knows comes
// through the public client (REST and the one WebSocket); rows are patched
// in place as updates arrive, and a reconnect re-reads the first page so the
// page ends equal to the store whatever it missed.

import { JobwireClient, JobwireError } from "./client.js";

const TOKEN_KEY = "jobwire.token";
const PRIORITIES = ["critical", "high", "default", "low"];
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const ACTIVE = new Set(["scheduled", "queued", "running"]);
/** Seconds of history in the throughput sparkline. */
const SPARK_SECONDS = 120;
/** Rows kept on the page at most; the oldest go first. */
const MAX_ROWS = 2000;
const STATS_EVERY_MS = 2000;
/** Tenants the operators' view lists: the most queued. */
const TENANTS_SHOWN = 100;

const $ = (selector) => document.querySelector(selector);

/** Builds an element: `el("td", { class: "x" }, "text", child)`. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** The claims of a JWT, unverified (the server verifies): for showing the tenant and expiry. */
function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

// ---- sign-in ----

function takeToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    // Out of the address bar and the history, so it is not shared by copying the URL.
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    localStorage.setItem(TOKEN_KEY, fromUrl.trim());
  }
  return localStorage.getItem(TOKEN_KEY);
}

/** Whether a token's claims open a page: a tenant's board, or the operators' view. */
function signsIn(claims) {
  return Boolean(claims?.tenant) || claims?.role === "operator";
}

function showSignIn(message) {
  $("#board").hidden = true;
  $("#operators").hidden = true;
  $("#tenant").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  const error = $("#sign-in-error");
  error.hidden = !message;
  error.textContent = message ?? "";
  $("#token-input").focus();
}

$("#sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("#token-input").value.trim();
  const claims = claimsOf(token);
  if (!signsIn(claims)) {
    showSignIn("That is not a jobwire token (a JWT with a `tenant` claim, or an operator's).");
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  location.reload();
});

$("#sign-out").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  location.reload();
});

// ---- formatting ----

function shortId(id) {
  return id.slice(-8);
}

function time(at) {
  return at ? new Date(at).toLocaleTimeString() : "";
}

function duration(row) {
  if (!row.startedAt) return "";
  const end = row.finishedAt ? Date.parse(row.finishedAt) : Date.now();
  const ms = Math.max(0, end - Date.parse(row.startedAt));
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** A progress value as a fraction 0..1, if it reads as one: a number (0..1 or 0..100) or `{percent}`, `{done, total}`. */
function fraction(progress) {
  if (progress === null || progress === undefined) return null;
  if (typeof progress === "number") return progress > 1 ? progress / 100 : progress;
  if (typeof progress === "object") {
    if (typeof progress.percent === "number") return progress.percent / 100;
    if (typeof progress.done === "number" && typeof progress.total === "number" && progress.total > 0) {
      return progress.done / progress.total;
    }
  }
  return null;
}

function pretty(value) {
  return value === undefined || value === null ? "—" : JSON.stringify(value, null, 2);
}

// ---- the board ----

class Board {
  constructor(client, claims) {
    this.client = client;
    this.claims = claims;
    /** id → row state (a job, or what updates told of it). */
    this.rows = new Map();
    /** id → its <tr>. */
    this.rowEls = new Map();
    this.dirty = new Set();
    this.frame = 0;
    this.filter = { status: "", type: "", limit: 50 };
    this.pages = null;
    this.exhausted = false;
    this.finished = new Array(SPARK_SECONDS).fill(0);
    this.second = Math.floor(Date.now() / 1000);
    this.detail = null;
    this.returnFocus = null;
  }

  start() {
    $("#tenant").hidden = false;
    $("#tenant").replaceChildren("tenant ", el("strong", {}, this.claims.tenant));
    $("#sign-out").hidden = false;
    $("#board").hidden = false;
    this.client.onState((state) => this.showConnection(state));
    this.client.onResume((info) => this.resumed(info));
    this.client.onClose((close) => {
      if (close.unauthorized) {
        this.client.close();
        localStorage.removeItem(TOKEN_KEY);
        showSignIn("The server refused this token (expired, or signed with another secret). Paste a new one.");
      }
    });
    this.client.subscribe((update) => this.onUpdate(update));
    this.wireForms();
    this.reload();
    this.refreshStats();
    setInterval(() => this.refreshStats(), STATS_EVERY_MS);
    setInterval(() => this.tick(), 1000);
  }

  showConnection(state, note) {
    const box = $("#connection");
    box.dataset.state = state;
    const text = {
      connecting: "connecting…",
      connected: "live",
      reconnecting: "reconnecting…",
      disconnected: "disconnected",
    }[state];
    $("#connection-text").textContent = note ? `${text} · ${note}` : text;
    if (state === "connected" && !note) delete box.dataset.resumed;
  }

  resumed(info) {
    const note = info.reset ? `resynced (${info.replayed} jobs)` : `resumed (${info.replayed} missed)`;
    $("#connection").dataset.resumed = info.reset ? "reset" : "resumed";
    this.showConnection(this.client.state, note);
    // Jobs the replay told of may lie outside the rows shown; the first page, re-read, is current.
    this.reload({ keepOlder: true });
    this.refreshStats();
  }

  // -- rows --

  matches(row) {
    return (!this.filter.status || row.status === this.filter.status) && (!this.filter.type || row.type === this.filter.type);
  }

  /** Whether a job not on the page belongs to its window: newer than the oldest row shown, or every row is shown. */
  inWindow(id) {
    if (this.exhausted || this.rows.size === 0) return true;
    let oldest = null;
    for (const key of this.rows.keys()) if (oldest === null || key < oldest) oldest = key;
    return id > oldest;
  }

  onUpdate(update) {
    if (TERMINAL.has(update.status)) this.finished[this.finished.length - 1] += 1;
    const row = this.rows.get(update.jobId);
    if (row) {
      if (update.version <= row.version) return;
      applyUpdate(row, update);
      this.markDirty(row.id);
    } else {
      const fresh = rowFromUpdate(update);
      if (!this.matches(fresh) || !this.inWindow(fresh.id)) return;
      this.rows.set(fresh.id, fresh);
      this.markDirty(fresh.id);
      this.trim();
    }
    if (this.detail?.id === update.jobId) this.detailUpdate(update);
  }

  /** Takes a job read over REST unless the page already shows a newer version of it. */
  takeJob(job) {
    const row = this.rows.get(job.id);
    if (row && row.version >= job.version) {
      row.maxAttempts ??= job.maxAttempts;
      row.createdAt ??= job.createdAt;
      return;
    }
    this.rows.set(job.id, rowFromJob(job));
    this.markDirty(job.id);
  }

  trim() {
    if (this.rows.size <= MAX_ROWS) return;
    const ids = [...this.rows.keys()].sort();
    for (const id of ids.slice(0, this.rows.size - MAX_ROWS)) {
      this.rows.delete(id);
      this.markDirty(id);
    }
    this.exhausted = false;
  }

  markDirty(id) {
    this.dirty.add(id);
    this.scheduleRender();
  }

  scheduleRender() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    const body = $("#jobs tbody");
    for (const id of this.dirty) {
      const row = this.rows.get(id);
      const existing = this.rowEls.get(id);
      if (!row) {
        existing?.remove();
        this.rowEls.delete(id);
        continue;
      }
      const tr = this.rowElement(row);
      if (existing) {
        patchRow(existing, tr);
        continue;
      } else {
        // Newest first: IDs are UUIDv7, so they sort by creation time.
        let before = null;
        for (const other of body.children) {
          if (other.dataset.jobId < id) {
            before = other;
            break;
          }
        }
        body.insertBefore(tr, before);
      }
      this.rowEls.set(id, tr);
    }
    this.dirty.clear();
    $("#empty").hidden = this.rows.size > 0;
    $("#older").hidden = this.exhausted || this.rows.size === 0;
  }

  rowElement(row) {
    const share = fraction(row.progress);
    const open = () => this.openDetail(row.id);
    return el(
      "tr",
      { "data-job-id": row.id, "data-status": row.status },
      el("td", { class: "id mono" }, el("button", { type: "button", onclick: open, title: row.id, "aria-label": `Job ${row.id}` }, shortId(row.id))),
      el("td", {}, row.type),
      el("td", {}, el("span", { class: `chip ${row.status}` }, row.status)),
      el(
        "td",
        { class: "wide" },
        share === null
          ? row.status === "running" ? el("progress", { "aria-label": "running" }) : ""
          : el("progress", { max: 1, value: Math.min(1, Math.max(0, share)), "aria-label": `${Math.round(share * 100)}%` }),
      ),
      el("td", {}, row.maxAttempts ? `${row.attempt}/${row.maxAttempts}` : String(row.attempt)),
      el("td", { class: "wide" }, time(row.createdAt)),
      el("td", { class: "wide duration" }, duration(row)),
      el("td", {}, this.actionButton(row, true)),
    );
  }

  actionButton(row, small) {
    const cls = small ? "quiet small" : "quiet";
    if (ACTIVE.has(row.status)) {
      return el("button", { type: "button", class: cls, onclick: () => this.act("cancel", row.id) }, "Cancel");
    }
    if (row.status === "failed" || row.status === "cancelled") {
      return el("button", { type: "button", class: cls, onclick: () => this.act("retry", row.id) }, "Retry");
    }
    return "";
  }

  async act(action, id) {
    try {
      const job = await this.client[action](id);
      this.takeJob(job);
      if (this.detail?.id === id) this.openDetail(id, true);
    } catch (e) {
      this.showListError(e);
    }
  }

  showListError(e) {
    const box = $("#list-error");
    box.hidden = false;
    box.textContent = e instanceof JobwireError ? `${e.title || "error"}: ${e.detail}` : String(e);
  }

  // -- listing --

  async reload({ keepOlder = false } = {}) {
    const filter = { limit: this.filter.limit };
    if (this.filter.status) filter.status = this.filter.status;
    if (this.filter.type) filter.type = this.filter.type;
    if (!keepOlder) {
      this.rows.clear();
      for (const tr of this.rowEls.values()) tr.remove();
      this.rowEls.clear();
      this.exhausted = false;
    }
    const pages = this.client.list(filter);
    if (!keepOlder) this.pages = pages;
    await this.pull(pages, this.filter.limit, !keepOlder);
    if (keepOlder) await pages.return();
  }

  async older() {
    if (this.pages) await this.pull(this.pages, this.filter.limit, true);
  }

  async pull(pages, count, ownsEnd) {
    $("#list-error").hidden = true;
    try {
      for (let i = 0; i < count; i += 1) {
        const next = await pages.next();
        if (next.done) {
          if (ownsEnd) this.exhausted = true;
          break;
        }
        this.takeJob(next.value);
      }
    } catch (e) {
      this.showListError(e);
    }
    this.scheduleRender();
  }

  // -- overview --

  async refreshStats() {
    if (document.hidden) return;
    let stats;
    try {
      stats = await this.client.stats();
    } catch {
      return;
    }
    const cards = PRIORITIES.map((priority) => {
      const q = stats.queues[priority];
      return el(
        "div",
        { class: "card", "data-priority": priority },
        el("h3", {}, priority),
        el("div", { class: "depth", title: "queued" }, q.queued),
        el("div", { class: "sub" }, `${q.running} running · ${q.scheduled} scheduled`),
      );
    });
    $("#queues").replaceChildren(...cards);
    // Per job type: a type no live worker runs waits, and says so.
    const types = (stats.types ?? []).map((t) => {
      const idle = t.workers === 0 && t.queued > 0;
      return el(
        "li",
        { class: idle ? "type idle" : "type", "data-type": t.type },
        el("span", { class: "name" }, t.type),
        el("span", { class: "sub" }, `${t.queued} queued · ${t.running} running · ${t.scheduled} scheduled`),
        el(
          "span",
          { class: idle ? "workers chip failed" : "workers" },
          idle ? "no worker runs this type" : `${t.workers} worker${t.workers === 1 ? "" : "s"}`,
        ),
      );
    });
    $("#types").replaceChildren(...types);
  }

  tick() {
    const now = Math.floor(Date.now() / 1000);
    while (this.second < now) {
      this.finished.shift();
      this.finished.push(0);
      this.second += 1;
    }
    const max = Math.max(1, ...this.finished);
    const points = this.finished.map((n, i) => `${((i / (SPARK_SECONDS - 1)) * 120).toFixed(1)},${(31 - (n / max) * 30).toFixed(1)}`);
    $("#sparkline polyline").setAttribute("points", points.join(" "));
    const last = this.finished.slice(-6, -1);
    $("#rate").textContent = String(Math.round(last.reduce((a, b) => a + b, 0) / last.length));
    for (const row of this.rows.values()) {
      if (row.status === "running") this.markDirty(row.id);
    }
  }

  // -- forms --

  wireForms() {
    $("#filters").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      this.filter = {
        status: String(form.get("status") ?? ""),
        type: String(form.get("type") ?? "").trim(),
        limit: Number(form.get("limit") ?? 50),
      };
      this.reload();
    });
    $("#filters").addEventListener("change", (event) => {
      if (event.target.tagName === "SELECT") event.target.form.requestSubmit();
    });
    $("#older").addEventListener("click", () => this.older());
    $("#create-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create(event.target);
    });
    $("#detail-close").addEventListener("click", () => this.closeDetail());
    $("#detail").addEventListener("click", (event) => {
      if (event.target.id === "detail") this.closeDetail();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.detail) this.closeDetail();
    });
  }

  async create(form) {
    const data = new FormData(form);
    const error = $("#create-error");
    const result = $("#create-result");
    error.hidden = true;
    result.textContent = "";
    let payload;
    try {
      payload = JSON.parse(String(data.get("payload") || "{}"));
    } catch (e) {
      error.hidden = false;
      error.textContent = `The payload is not JSON: ${e.message}`;
      return;
    }
    const job = { type: String(data.get("type")).trim(), payload, priority: String(data.get("priority")) };
    if (data.get("delayMs")) job.delayMs = Number(data.get("delayMs"));
    if (data.get("maxAttempts")) job.maxAttempts = Number(data.get("maxAttempts"));
    try {
      const created = await this.client.create(job);
      if (this.matches(created)) this.takeJob(created);
      result.textContent = `Created ${shortId(created.id)}`;
    } catch (e) {
      error.hidden = false;
      error.textContent = e instanceof JobwireError ? `${e.title || e.status}: ${e.detail}` : String(e);
    }
  }

  // -- detail --

  async openDetail(id, refresh = false) {
    if (!refresh) {
      this.returnFocus = document.activeElement;
      this.detail = { id, job: null, live: [] };
    }
    const box = $("#detail");
    box.hidden = false;
    $("#detail-title").textContent = `Job ${shortId(id)}`;
    try {
      const job = await this.client.get(id);
      if (this.detail?.id !== id) return;
      this.detail.job = job;
      this.takeJob(job);
    } catch (e) {
      $("#detail-body").replaceChildren(el("p", { class: "error" }, e instanceof JobwireError ? e.detail : String(e)));
      return;
    }
    this.renderDetail();
    if (!refresh) box.querySelector(".detail-box").focus();
  }

  detailUpdate(update) {
    const detail = this.detail;
    detail.live.push(update);
    if (!detail.job || update.version <= detail.job.version) return;
    // Payload, result and timestamps come from a fresh read; the live entry is kept for the timeline.
    this.openDetail(detail.id, true);
  }

  closeDetail() {
    const id = this.detail.id;
    $("#detail").hidden = true;
    this.detail = null;
    const back = this.returnFocus?.isConnected ? this.returnFocus : document.querySelector(`#jobs tr[data-job-id="${id}"] td.id button`);
    back?.focus();
  }

  renderDetail() {
    const job = this.detail.job;
    const facts = [
      ["ID", el("span", { class: "mono" }, job.id)],
      ["Type", job.type],
      ["Status", el("span", { class: `chip ${job.status}` }, job.status)],
      ["Priority", job.priority],
      ["Attempt", `${job.attempt} of ${job.maxAttempts}`],
      ["Created", new Date(job.createdAt).toLocaleString()],
      ["Duration", duration(rowFromJob(job)) || "—"],
    ];
    if (job.runAt) facts.push(["Runs at", new Date(job.runAt).toLocaleString()]);
    if (job.idempotencyKey) facts.push(["Idempotency key", job.idempotencyKey]);
    const action = this.actionButton(job, false);
    $("#detail-body").replaceChildren(
      el("div", { class: "actions" }, action),
      el("dl", {}, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      el("h3", {}, "Payload"),
      el("pre", { class: "payload" }, pretty(job.payload)),
      el("h3", {}, "Result"),
      el("pre", { class: "result" }, pretty(job.result)),
      el("h3", {}, "Error"),
      el("pre", { class: "job-error" }, job.error ?? "—"),
      job.progress !== null && job.progress !== undefined ? [el("h3", {}, "Progress"), el("pre", {}, pretty(job.progress))] : [],
      el("h3", {}, "Attempts"),
      attemptsTable(job),
      el("h3", {}, "Timeline"),
      el(
        "ol",
        { class: "timeline" },
        timeline(job, this.detail.live).map((entry) =>
          el("li", { class: entry.status ?? "" }, el("time", { datetime: entry.at }, time(entry.at)), entry.text),
        ),
      ),
    );
  }
}

// ---- rows from jobs and updates ----

/**
 * Brings a shown row up to date cell by cell, leaving unchanged cells (and
 * so a focused button) where they are.
 */
function patchRow(shown, fresh) {
  shown.dataset.status = fresh.dataset.status;
  [...fresh.children].forEach((cell, i) => {
    const old = shown.children[i];
    if (old.outerHTML !== cell.outerHTML) old.replaceWith(cell);
  });
}

function rowFromJob(job) {
  return {
    id: job.id,
    type: job.type,
    status: job.status,
    attempt: job.attempt,
    maxAttempts: job.maxAttempts,
    progress: job.progress,
    error: job.error,
    version: job.version,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
  };
}

function rowFromUpdate(update) {
  const row = {
    id: update.jobId,
    type: update.type,
    status: "queued",
    attempt: 0,
    maxAttempts: null,
    progress: null,
    error: null,
    version: 0,
    createdAt: null,
    startedAt: null,
    finishedAt: null,
  };
  // The first update of a new job is its creation.
  if (update.version === 1) row.createdAt = update.at;
  applyUpdate(row, update);
  return row;
}

function applyUpdate(row, update) {
  if (update.status === "running" && (row.status !== "running" || update.attempt !== row.attempt)) {
    row.startedAt = update.at;
    row.finishedAt = null;
  }
  if (TERMINAL.has(update.status) && !TERMINAL.has(row.status)) row.finishedAt = update.at;
  if (ACTIVE.has(update.status) && update.status !== "running") row.finishedAt = null;
  row.status = update.status;
  row.attempt = update.attempt;
  row.error = update.error;
  if (update.progress !== undefined) row.progress = update.progress;
  row.version = update.version;
}

// ---- the operators' view ----

/**
 * Every tenant with unfinished jobs, most queued first, for an operator
 * token (which reads no tenant's jobs, so there is no job list or WebSocket
 * here): `GET /v1/tenants`, read again every few seconds like the queue
 * cards of a tenant's board, rows patched in place by tenant.
 */
class OperatorBoard {
  constructor(client, claims) {
    this.client = client;
    this.claims = claims;
    /** tenant → its <tr>. */
    this.rowEls = new Map();
  }

  start() {
    $("#tenant").hidden = false;
    $("#tenant").replaceChildren("operator ", el("strong", {}, this.claims.sub ?? "operator"));
    $("#sign-out").hidden = false;
    $("#operators").hidden = false;
    this.showConnection("connecting");
    this.refresh();
    setInterval(() => this.refresh(), STATS_EVERY_MS);
  }

  showConnection(state, text) {
    $("#connection").dataset.state = state;
    $("#connection-text").textContent = text ?? { connecting: "connecting…", connected: "live", reconnecting: "retrying…" }[state];
  }

  async refresh() {
    if (document.hidden) return;
    let list;
    try {
      list = await this.client.tenants({ limit: TENANTS_SHOWN });
    } catch (e) {
      if (e instanceof JobwireError && (e.status === 401 || e.status === 403)) {
        localStorage.removeItem(TOKEN_KEY);
        showSignIn("The server refused this token (expired, or signed with another secret). Paste a new one.");
        return;
      }
      this.showConnection("reconnecting");
      const box = $("#tenants-error");
      box.hidden = false;
      box.textContent = e instanceof JobwireError ? `${e.title || "error"}: ${e.detail}` : String(e);
      return;
    }
    $("#tenants-error").hidden = true;
    this.showConnection("connected", `live · every ${STATS_EVERY_MS / 1000} s`);
    this.render(list);
  }

  render(list) {
    const body = $("#tenants tbody");
    const shown = new Set();
    let previous = null;
    for (const t of list.tenants) {
      shown.add(t.tenantId);
      const tr = el(
        "tr",
        { "data-tenant": t.tenantId, "data-bucket": t.tenantBucket },
        el("td", { class: "mono" }, t.tenantId),
        el("td", { class: "num queued" }, t.queued),
        el("td", { class: "num running" }, t.running),
        el("td", { class: "num scheduled" }, t.scheduled),
        el("td", { class: "num mono bucket" }, t.tenantBucket),
      );
      let existing = this.rowEls.get(t.tenantId);
      if (existing) {
        // Only the cells whose number changed are replaced.
        [...tr.children].forEach((cell, i) => {
          const old = existing.children[i];
          if (old.outerHTML !== cell.outerHTML) old.replaceWith(cell);
        });
      } else {
        this.rowEls.set(t.tenantId, (existing = tr));
      }
      // In the answer's order (most queued first): move only what moved.
      const want = previous ? previous.nextSibling : body.firstChild;
      if (want !== existing) body.insertBefore(existing, want);
      previous = existing;
    }
    for (const [tenant, tr] of this.rowEls) {
      if (!shown.has(tenant)) {
        tr.remove();
        this.rowEls.delete(tenant);
      }
    }
    const total = list.total;
    $("#tenants-summary").textContent =
      `${total} tenant${total === 1 ? "" : "s"} with unfinished jobs` +
      (list.tenants.length < total ? ` · the ${list.tenants.length} with the most queued shown` : "");
    $("#tenants-empty").hidden = list.tenants.length > 0;
  }
}

// ---- detail parts ----

/**
 * Whether the job's current attempt is one the history holds already: its
 * last attempt failed for good, or ran out of lease (same start time).
 */
function currentInHistory(job) {
  return job.attempt === 0 || (job.attemptErrors ?? []).some((a) => a.startedAt && a.startedAt === job.startedAt);
}

/** Every attempt: the failed ones from the job's history, then the current one. */
function attemptsTable(job) {
  const failed = job.attemptErrors ?? [];
  const rows = failed.map((a) => ({ attempt: a.attempt, startedAt: a.startedAt, endedAt: a.endedAt, outcome: "failed", error: a.error }));
  if (!currentInHistory(job)) {
    rows.push({
      attempt: job.attempt,
      startedAt: job.startedAt,
      endedAt: job.finishedAt,
      outcome: job.status,
      error: job.status === "failed" ? job.error : null,
    });
  }
  if (rows.length === 0) return el("p", { class: "muted" }, "Not run yet.");
  return el(
    "table",
    { class: "attempts" },
    el("thead", {}, el("tr", {}, ["#", "Started", "Ended", "Outcome", "Error"].map((h) => el("th", { scope: "col" }, h)))),
    el(
      "tbody",
      {},
      rows.map((a) =>
        el(
          "tr",
          { "data-attempt": a.attempt },
          el("td", {}, a.attempt),
          el("td", {}, time(a.startedAt)),
          el("td", {}, time(a.endedAt)),
          el("td", {}, el("span", { class: `chip ${a.outcome}` }, a.outcome)),
          el("td", {}, a.error ?? ""),
        ),
      ),
    ),
  );
}

/** The job's story: what its row records (creation, each attempt, the end) and the updates seen live. */
function timeline(job, live) {
  const entries = [{ at: job.createdAt, text: `created (${job.priority})`, status: "queued" }];
  for (const a of job.attemptErrors ?? []) {
    if (a.startedAt) entries.push({ at: a.startedAt, text: `attempt ${a.attempt} started`, status: "running" });
    entries.push({ at: a.endedAt, text: `attempt ${a.attempt} failed: ${a.error}`, status: "failed" });
  }
  const inHistory = currentInHistory(job);
  if (job.startedAt && !inHistory) entries.push({ at: job.startedAt, text: `attempt ${job.attempt} started`, status: "running" });
  // A final failure is in the history already, with its error.
  if (job.finishedAt && !(job.status === "failed" && inHistory)) entries.push({ at: job.finishedAt, text: job.status, status: job.status });
  for (const u of live) {
    const progress = u.progress !== undefined && u.status === "running" ? ` · progress ${JSON.stringify(u.progress)}` : "";
    entries.push({ at: u.at, text: `live: v${u.version} ${u.status}${progress}`, status: u.status });
  }
  return entries.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}

// ---- start ----

const token = takeToken();
const claims = token ? claimsOf(token) : null;
if (!token || !signsIn(claims)) {
  showSignIn(token ? "The saved token is not a jobwire token. Paste a new one." : undefined);
} else if (claims.exp && claims.exp * 1000 < Date.now()) {
  localStorage.removeItem(TOKEN_KEY);
  showSignIn("Your token has expired. Paste a new one.");
} else if (claims.role === "operator") {
  new OperatorBoard(new JobwireClient({ url: location.origin, token }), claims).start();
} else {
  new Board(new JobwireClient({ url: location.origin, token }), claims).start();
}
