/**
 * jobwire's client for browsers and Node ≥ 20: the REST API, and every
 * update of the tenant's jobs over one WebSocket that reconnects with
 * full-jitter backoff, resumes from the last cursor (so no update is
 * missed), and drops any update older than the newest version it has seen of
 * its job. With a worker token, `worker()` runs handlers for leased jobs over
 * HTTP. No runtime dependencies.
 */

export type Status = "scheduled" | "queued" | "running" | "succeeded" | "failed" | "cancelled";
export type Priority = "critical" | "high" | "default" | "low";

/** A job as the API returns it. */
export interface Job {
  id: string;
  tenantId: string;
  type: string;
  payload: unknown;
  priority: Priority;
  status: Status;
  attempt: number;
  maxAttempts: number;
  runAt: string | null;
  timeoutMs: number | null;
  idempotencyKey: string | null;
  /** How long the job is kept once finished, as humantime text (`"1h 30m"`); `null`: its final status's retention. */
  retainFor: string | null;
  result: unknown;
  error: string | null;
  /**
   * Every attempt that ended without success, newest last (`error` holds only
   * the last one). `attempt` repeats after a retry by hand, which counts from
   * 1 again; an attempt handed back unfinished (a stopping worker, an embedded
   * restart) or cancelled has no entry. Not in `JobUpdate`: read the job.
   */
  attemptErrors: { attempt: number; startedAt: string | null; endedAt: string; error: string }[];
  progress: unknown;
  version: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
}

/** One change of one job, as the WebSocket delivers it. */
export interface JobUpdate {
  tenantId: string;
  jobId: string;
  type: string;
  status: Status;
  version: number;
  attempt: number;
  error: string | null;
  progress?: unknown;
  result?: unknown;
  /** The result is over 64 KiB: read it with `get(jobId)`. */
  resultOmitted?: boolean;
  runAt?: string;
  at: string;
  cursor: string;
}

/** What `create` takes. */
export interface NewJob {
  type: string;
  payload?: unknown;
  priority?: Priority;
  maxAttempts?: number;
  runAt?: string;
  delayMs?: number;
  timeoutMs?: number;
  idempotencyKey?: string;
  /** How long to keep the job once finished (`"90s"`, `"7d"`; 1 s to 10 years). */
  retainFor?: string;
}

export interface ListFilter {
  status?: Status;
  type?: string;
  /** Jobs per page (the API's limit). */
  limit?: number;
}

/** Queue depth per priority: the tenant's scheduled, queued and running jobs. */
export interface Stats {
  /** The tenant's bucket, "00" to "15": the `tenant_bucket` label its jobs are counted under in `/metrics`. */
  tenantBucket: string;
  queues: Record<Priority, { scheduled: number; queued: number; running: number }>;
}

/** One tenant's unfinished jobs and its bucket, as the operators' view lists them. */
export interface TenantDepth {
  tenantId: string;
  /** "00" to "15": the `tenant_bucket` label of its jobs in `/metrics`. */
  tenantBucket: string;
  scheduled: number;
  queued: number;
  running: number;
}

/** The tenants with unfinished jobs, most queued first, and how many there are in all. */
export interface TenantList {
  tenants: TenantDepth[];
  total: number;
}

/**
 * How a reconnect caught up: `replayed` changes since the last cursor, or
 * (`reset`) a snapshot of the most recently changed jobs because the cursor
 * was past the server's resume window.
 */
export interface ResumeInfo {
  replayed: number;
  reset: boolean;
}

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "disconnected";

/** The part of a WebSocket this client uses: the browser's, or Node's `ws`. */
export interface WebSocketLike {
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface JobwireOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** A fixed token; or give `getToken`. */
  token?: string;
  /** Called for a token at first, before the current one expires, and after an auth failure. */
  getToken?: () => Promise<string>;
  /** Where there is no global `WebSocket` (Node 20): `import WebSocket from "ws"`. */
  WebSocket?: WebSocketConstructor;
  /** Backoff of reconnects, and of a worker's retries: full jitter between 0 and min(maxMs, baseMs × 2^n). */
  backoff?: { baseMs?: number; maxMs?: number };
}

/** A problem+json error from the API, or a failure to reach it (status 0). */
export class JobwireError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly type: string;
  readonly requestId?: string;

  constructor(problem: { status: number; title?: string; detail?: string; type?: string; requestId?: string }) {
    super(problem.detail ?? problem.title ?? `HTTP ${problem.status}`);
    this.name = "JobwireError";
    this.status = problem.status;
    this.title = problem.title ?? "";
    this.detail = problem.detail ?? "";
    this.type = problem.type ?? "about:blank";
    this.requestId = problem.requestId;
  }
}

/** A job that ended `failed` or `cancelled`, from `waitFor`. */
export class JobFailedError extends Error {
  readonly job: Job;

  constructor(job: Job) {
    super(job.error ?? `job ${job.id} ended ${job.status}`);
    this.name = "JobFailedError";
    this.job = job;
  }
}

/**
 * A handler's failure that retrying cannot fix (a bad payload, say): the job
 * fails at once, whatever attempts it has left. Any error with
 * `retryable === false` does the same; other errors are retried.
 */
export class NonRetryableError extends Error {
  readonly retryable = false;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}

/** A job leased by `worker()`, as its handler gets it. */
export interface LeasedJob {
  id: string;
  tenantId: string;
  type: string;
  payload: unknown;
  /** 1 on the first attempt. */
  attempt: number;
  maxAttempts: number;
  timeoutMs: number | null;
  /** Proves this worker holds the job: every report about it carries the token. */
  leaseToken: string;
  /** When the lease runs out unless renewed (the worker renews it for you). */
  leaseExpiresAt: string;
}

/** What a handler gets beside its job. */
export interface WorkerContext {
  /**
   * Aborted when the job was cancelled or this worker lost its lease (it ran
   * out, and the job may be running elsewhere): stop working on it; what the
   * handler then returns or throws is not reported. `signal.reason` says which.
   */
  signal: AbortSignal;
  /**
   * Publishes progress (any JSON) to the tenant's live clients; rejects with
   * a 409 `JobwireError` once the lease is lost.
   */
  progress(value: unknown): Promise<void>;
}

export interface WorkerOptions {
  /** The job types to take, all allowed by the worker token. */
  types: string[];
  /** Handlers running at once (default 1): the worker leases only as many jobs as it has room for. */
  concurrency?: number;
  /**
   * Runs one job. What it returns (JSON) is the job's result; what it throws
   * fails the attempt with the error's message, to be retried with the
   * server's backoff unless the error has `retryable === false`
   * (`NonRetryableError`) or no attempts are left.
   */
  handler: (job: LeasedJob, ctx: WorkerContext) => unknown;
  /** How long a lease lasts, 1000 to 600000 ms (default 30000); renewed every leaseMs/3 while the handler runs. */
  leaseMs?: number;
  /** How long one lease request waits for a job, 0 to 60000 ms (default 30000). */
  waitMs?: number;
  /** Aborting it is `stop()`. */
  signal?: AbortSignal;
  /** Errors the worker rides out (the API unreachable or failing, a missed heartbeat), for your logs. */
  onError?: (error: unknown) => void;
}

/** A running `worker()`. */
export interface WorkerHandle {
  /** Stops leasing, waits for the running handlers to finish and report, then resolves (as `done`). */
  stop(): Promise<void>;
  /**
   * Settles once the worker has stopped and its handlers have finished.
   * Rejects with the `JobwireError` when the API refuses the worker (401 bad
   * token, 403 a type or tenant it does not allow, 422 bad options):
   * retrying would not help.
   */
  done: Promise<void>;
}

const TERMINAL: ReadonlySet<Status> = new Set(["succeeded", "failed", "cancelled"]);

/** Jobs whose newest version is remembered, for dropping stale updates. */
const MAX_VERSIONS = 10_000;

/** Close code of a client dropped for not keeping up. */
export const CLOSE_SLOW_CONSUMER = 4008;

type Listener<T> = (value: T) => void;

/** How the live connection closed. */
export interface CloseInfo {
  code: number;
  reason: string;
  /** The server refused the token. */
  unauthorized: boolean;
}

interface Subscriber {
  onUpdate: Listener<JobUpdate>;
  jobIds?: ReadonlySet<string>;
}

export class JobwireClient {
  private readonly base: string;
  private readonly options: JobwireOptions;
  private token?: string;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private socket?: WebSocketLike;
  private readonly subscribers = new Set<Subscriber>();
  private readonly versions = new Map<string, number>();
  private cursor?: string;
  private attempt = 0;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private currentState: ConnectionState = "disconnected";
  private readonly stateListeners = new Set<Listener<ConnectionState>>();
  private readonly closeListeners = new Set<Listener<CloseInfo>>();
  private readonly resumeListeners = new Set<Listener<ResumeInfo>>();

  constructor(options: JobwireOptions) {
    if (!options.token && !options.getToken) {
      throw new Error("JobwireClient needs `token` or `getToken`");
    }
    this.options = options;
    this.base = options.url.replace(/\/+$/, "");
    this.token = options.token;
  }

  // ---- REST ----

  create(job: NewJob): Promise<Job> {
    return this.request("POST", "/v1/jobs", job);
  }

  async createMany(jobs: NewJob[]): Promise<Job[]> {
    const created: { jobs: Job[] } = await this.request("POST", "/v1/jobs/batch", { jobs });
    return created.jobs;
  }

  get(id: string): Promise<Job> {
    return this.request("GET", `/v1/jobs/${encodeURIComponent(id)}`);
  }

  cancel(id: string): Promise<Job> {
    return this.request("POST", `/v1/jobs/${encodeURIComponent(id)}/cancel`, {});
  }

  retry(id: string): Promise<Job> {
    return this.request("POST", `/v1/jobs/${encodeURIComponent(id)}/retry`, {});
  }

  /** The tenant's queue depth per priority. */
  stats(): Promise<Stats> {
    return this.request("GET", "/v1/stats");
  }

  /**
   * Every tenant with scheduled, queued or running jobs, most queued first, at most `limit`
   * (100 by default, 1000 at most). Needs an operator token (`jobwire token --operator`);
   * a tenant's token gets 403.
   */
  tenants(options: { limit?: number } = {}): Promise<TenantList> {
    const query = options.limit === undefined ? "" : `?limit=${encodeURIComponent(String(options.limit))}`;
    return this.request("GET", `/v1/tenants${query}`);
  }

  /** The tenant's jobs, newest first, fetched a page at a time as you iterate. */
  async *list(filter: ListFilter = {}): AsyncGenerator<Job> {
    let cursor: string | undefined;
    do {
      const query = new URLSearchParams();
      if (filter.status) query.set("status", filter.status);
      if (filter.type) query.set("type", filter.type);
      if (filter.limit) query.set("limit", String(filter.limit));
      if (cursor) query.set("cursor", cursor);
      const page: { jobs: Job[]; nextCursor?: string | null } = await this.request("GET", `/v1/jobs?${query}`);
      yield* page.jobs;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  // ---- Worker ----

  /**
   * Runs `handler` for jobs of `types`, leased over HTTP; the client must hold
   * a worker token. It long-polls for up to (concurrency − running) jobs,
   * renews each lease every leaseMs/3 while its handler runs, and reports the
   * outcome; a job cancelled meanwhile, or whose lease was lost, aborts
   * `ctx.signal`. The API unreachable or failing (status 0, 408, 429, 5xx)
   * is retried with full-jitter backoff (`backoff`), for as long as it takes.
   */
  worker(options: WorkerOptions): WorkerHandle {
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new Error(`worker: concurrency must be a whole number of at least 1, not ${concurrency}`);
    }
    if (!Array.isArray(options.types) || options.types.length === 0) {
      throw new Error("worker: `types` must list the job types to take");
    }
    if (typeof options.handler !== "function") {
      throw new Error("worker: `handler` must be a function");
    }
    const loop = new WorkerLoop(
      (path, body, signal) => this.request("POST", path, body, { signal }),
      (attempt) => fullJitter(this.options.backoff, attempt),
      { ...options, concurrency },
    );
    return { stop: () => loop.stop(), done: loop.done };
  }

  // ---- Live ----

  /** Calls `onUpdate` with every new update (of `jobIds` only, if given); returns the unsubscribe function. */
  subscribe(onUpdate: Listener<JobUpdate>, options: { jobIds?: string[] } = {}): () => void {
    const subscriber: Subscriber = {
      onUpdate,
      jobIds: options.jobIds ? new Set(options.jobIds) : undefined,
    };
    this.subscribers.add(subscriber);
    if (!this.socket && !this.reconnectTimer) void this.connect();
    return () => {
      this.subscribers.delete(subscriber);
      if (this.subscribers.size === 0) this.disconnect();
    };
  }

  /** One job's updates, starting with its current state, ending at a terminal status. */
  async *watch(id: string): AsyncGenerator<JobUpdate> {
    const queue: JobUpdate[] = [];
    let wake: (() => void) | undefined;
    let last = -1;
    const push = (update: JobUpdate) => {
      if (update.version <= last) return;
      last = update.version;
      queue.push(update);
      wake?.();
    };
    const unsubscribe = this.subscribe(push, { jobIds: [id] });
    try {
      // Read the current state only once the socket is live: a change after
      // the read then arrives on it, and one before it is in the read.
      await this.connected();
      push(toUpdate(await this.get(id)));
      for (;;) {
        while (queue.length > 0) {
          const update = queue.shift()!;
          yield update;
          if (TERMINAL.has(update.status)) return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      unsubscribe();
    }
  }

  /** Resolves with the job once it succeeded; rejects with `JobFailedError` if it failed or was cancelled. */
  async waitFor(id: string): Promise<Job> {
    for await (const update of this.watch(id)) {
      if (TERMINAL.has(update.status)) break;
    }
    const job = await this.get(id);
    if (job.status === "succeeded") return job;
    throw new JobFailedError(job);
  }

  /** Resolves once the live connection is up (now, or when it next connects). */
  private connected(): Promise<void> {
    if (this.currentState === "connected") return Promise.resolve();
    return new Promise((resolve) => {
      const stop = this.onState((state) => {
        if (state === "connected") {
          stop();
          resolve();
        }
      });
    });
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  /** Connection state changes: `connecting`, `connected`, `reconnecting`, `disconnected`. */
  onState(listener: Listener<ConnectionState>): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /**
   * Every close of the live connection: its code (`CLOSE_SLOW_CONSUMER`,
   * 4008, when the server dropped this client for not keeping up; 1001 on
   * server shutdown; 1006 when the connection was lost or refused), and
   * whether the token was refused (`unauthorized`). The client reconnects
   * after each while anyone is subscribed.
   */
  onClose(listener: Listener<CloseInfo>): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** Every reconnect that has caught up with what it missed (after its updates were delivered). */
  onResume(listener: Listener<ResumeInfo>): () => void {
    this.resumeListeners.add(listener);
    return () => this.resumeListeners.delete(listener);
  }

  /** Closes the live connection and stops reconnecting. */
  close(): void {
    this.subscribers.clear();
    this.disconnect();
    clearTimeout(this.refreshTimer);
  }

  // ---- internals ----

  private setState(state: ConnectionState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    for (const listener of this.stateListeners) listener(state);
  }

  private async connect(): Promise<void> {
    this.reconnectTimer = undefined;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    const Socket = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Socket) {
      throw new Error("no global WebSocket here (Node 20): pass `WebSocket` from the `ws` package");
    }
    let token: string;
    try {
      token = await this.currentToken();
    } catch {
      this.scheduleReconnect();
      return;
    }
    if (this.subscribers.size === 0) {
      this.setState("disconnected");
      return;
    }
    const ws = this.base.replace(/^http/, "ws");
    const query = new URLSearchParams({ token });
    if (this.cursor) query.set("cursor", this.cursor);
    const socket = new Socket(`${ws}/v1/ws?${query}`);
    this.socket = socket;
    let connected = false;
    socket.onmessage = (event) => {
      const frame = JSON.parse(String(event.data)) as {
        event?: string;
        replayed?: number;
        jobs?: number;
      } & Partial<JobUpdate>;
      if (frame.event === "connected") {
        // A first connection starts from the server's newest place, so that a client that
        // hears nothing before the connection drops still catches up on what it missed.
        if (this.cursor === undefined && frame.cursor) this.cursor = frame.cursor;
        connected = true;
        this.attempt = 0;
        this.setState("connected");
      } else if (frame.event === undefined) {
        this.deliver(frame as JobUpdate);
      } else if (frame.event === "resumed" || frame.event === "snapshot") {
        const info = { replayed: frame.replayed ?? frame.jobs ?? 0, reset: frame.event === "snapshot" };
        for (const listener of this.resumeListeners) listener(info);
      }
    };
    socket.onerror = () => {};
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      void this.closed({ code: event.code, reason: event.reason, unauthorized: false }, connected);
    };
  }

  /**
   * Reports a close and reconnects. A socket refused before it said
   * `connected` may have been refused for its token (a browser cannot see the
   * upgrade's 401): one cheap REST call tells, and the close is reported as
   * `unauthorized`; with `getToken`, the next attempt takes a fresh token.
   */
  private async closed(close: CloseInfo, connected: boolean): Promise<void> {
    if (!connected) {
      try {
        await this.request("GET", "/v1/jobs?limit=1", undefined, { retried: true });
      } catch (e) {
        close.unauthorized = e instanceof JobwireError && e.status === 401;
      }
      if (close.unauthorized) this.token = this.options.getToken ? undefined : this.token;
    }
    for (const listener of this.closeListeners) listener(close);
    if (this.subscribers.size > 0 && !this.socket && !this.reconnectTimer) this.scheduleReconnect();
    else if (this.subscribers.size === 0) this.setState("disconnected");
  }

  private deliver(update: JobUpdate): void {
    const newest = this.versions.get(update.jobId) ?? 0;
    // The cursor moves on with every frame: a replay may repeat an old version.
    this.cursor = update.cursor;
    if (update.version <= newest) return;
    this.versions.delete(update.jobId);
    this.versions.set(update.jobId, update.version);
    if (this.versions.size > MAX_VERSIONS) {
      // The least recently changed job is forgotten (Maps iterate in insertion order).
      this.versions.delete(this.versions.keys().next().value!);
    }
    for (const subscriber of [...this.subscribers]) {
      if (!subscriber.jobIds || subscriber.jobIds.has(update.jobId)) subscriber.onUpdate(update);
    }
  }

  private scheduleReconnect(): void {
    this.setState("reconnecting");
    const delay = fullJitter(this.options.backoff, this.attempt);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  private disconnect(): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    socket?.close(1000, "unsubscribed");
    this.attempt = 0;
    this.setState("disconnected");
  }

  private async currentToken(): Promise<string> {
    if (this.token) return this.token;
    if (!this.options.getToken) throw new Error("no token");
    const token = await this.options.getToken();
    this.token = token;
    clearTimeout(this.refreshTimer);
    const expiresAt = expiry(token);
    if (expiresAt !== undefined) {
      // A fresh token a little before this one expires.
      const inMs = Math.max(1_000, expiresAt * 1000 - Date.now() - 30_000);
      this.refreshTimer = setTimeout(() => {
        this.token = undefined;
      }, inMs);
      (this.refreshTimer as { unref?: () => void }).unref?.();
    }
    return token;
  }

  /**
   * One API call. A body that is not JSON-serialisable throws its `TypeError`
   * as is; a failure to reach the API is a `JobwireError` with status 0, and
   * an error answer that is not problem+json (a proxy's 502 page) keeps its
   * status, with the text as `detail`.
   */
  private async request<T>(
    method: string,
    path: string,
    body?: unknown,
    options: { retried?: boolean; signal?: AbortSignal } = {},
  ): Promise<T> {
    const token = await this.currentToken();
    const json = body === undefined ? undefined : JSON.stringify(body);
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(json === undefined ? {} : { "content-type": "application/json" }),
        },
        body: json,
        signal: options.signal,
      });
    } catch (e) {
      throw new JobwireError({ status: 0, title: "unreachable", detail: `cannot reach ${this.base}: ${e}` });
    }
    if (response.status === 401 && this.options.getToken && !options.retried) {
      this.token = undefined;
      return this.request(method, path, body, { ...options, retried: true });
    }
    const text = await response.text();
    if (!response.ok) {
      let problem: { title?: string; detail?: string; type?: string; requestId?: string } = {
        detail: text.slice(0, 500),
      };
      try {
        problem = text ? JSON.parse(text) : {};
      } catch {
        // Not problem+json: the text is the detail.
      }
      throw new JobwireError({ ...problem, status: response.status });
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }
}

type Post = <T>(path: string, body: unknown, signal?: AbortSignal) => Promise<T>;

/** The API could not be reached or could not answer now: worth trying again. */
function transient(error: unknown): boolean {
  return (
    error instanceof JobwireError &&
    (error.status === 0 || error.status === 408 || error.status === 429 || error.status >= 500)
  );
}

/** Another worker holds the job now or it ended (409), or it is gone (404): nothing more to report. */
function leaseLost(error: unknown): boolean {
  return error instanceof JobwireError && (error.status === 409 || error.status === 404);
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", wake);
      resolve();
    }, ms);
    signal.addEventListener("abort", wake, { once: true });
  });
}

/** The lease loop and the jobs in hand of one `worker()`. */
class WorkerLoop {
  readonly done: Promise<void>;
  private readonly stopping = new AbortController();
  private readonly running = new Set<Promise<void>>();
  /** The lease request in flight, aborted by `stop()` (a job it held comes back when its lease runs out). */
  private poll?: AbortController;
  /** Wakes the loop waiting for room, on a handler's end or on `stop()`. */
  private wake?: () => void;
  private readonly leaseMs: number;

  constructor(
    private readonly post: Post,
    private readonly backoff: (attempt: number) => number,
    private readonly options: WorkerOptions & { concurrency: number },
  ) {
    this.leaseMs = options.leaseMs ?? 30_000;
    if (options.signal?.aborted) this.halt();
    else options.signal?.addEventListener("abort", () => this.halt(), { once: true });
    this.done = this.run();
  }

  stop(): Promise<void> {
    this.halt();
    return this.done;
  }

  private halt(): void {
    this.stopping.abort();
    this.poll?.abort();
    this.wake?.();
  }

  private async run(): Promise<void> {
    const { types, concurrency, waitMs } = this.options;
    let failures = 0;
    try {
      while (!this.stopping.signal.aborted) {
        const room = concurrency - this.running.size;
        if (room === 0) {
          await new Promise<void>((resolve) => (this.wake = resolve));
          this.wake = undefined;
          continue;
        }
        this.poll = new AbortController();
        let jobs: LeasedJob[];
        try {
          const body = { types, max: Math.min(room, 100), waitMs: waitMs ?? 30_000, leaseMs: this.leaseMs };
          jobs = await this.post<LeasedJob[]>("/v1/worker/lease", body, this.poll.signal);
          failures = 0;
        } catch (error) {
          if (this.stopping.signal.aborted) break;
          if (!transient(error)) throw error;
          this.options.onError?.(error);
          await pause(this.backoff(failures++), this.stopping.signal);
          continue;
        } finally {
          this.poll = undefined;
        }
        for (const job of jobs) {
          const task: Promise<void> = this.runJob(job).finally(() => {
            this.running.delete(task);
            this.wake?.();
          });
          this.running.add(task);
        }
      }
    } finally {
      await Promise.all(this.running);
    }
  }

  /** Runs one job's handler with its heartbeats, then reports its outcome; never rejects. */
  private async runJob(job: LeasedJob): Promise<void> {
    const path = `/v1/worker/jobs/${encodeURIComponent(job.id)}`;
    const leaseToken = job.leaseToken;
    const lease = new AbortController();
    const lose = (why: string) => {
      if (!lease.signal.aborted) lease.abort(new Error(`job ${job.id}: ${why}`));
    };
    // By this machine's clock, which may disagree with the server's: the lease
    // started before its answer arrived, so this errs late by that latency.
    let expiresAt = Date.now() + this.leaseMs;
    let beat: ReturnType<typeof setTimeout> | undefined;
    let finished = false;
    const heartbeat = async () => {
      const renewedAt = Date.now();
      try {
        const answer = await this.post<{ cancelled: boolean }>(`${path}/heartbeat`, {
          leaseToken,
          leaseMs: this.leaseMs,
        });
        if (answer.cancelled) lose("cancelled");
        else expiresAt = renewedAt + this.leaseMs;
      } catch (error) {
        if (leaseLost(error)) lose("lease lost (it ran out; the job may be running elsewhere)");
        else this.options.onError?.(error);
      }
      if (!finished && !lease.signal.aborted) beat = setTimeout(heartbeat, this.leaseMs / 3);
    };
    beat = setTimeout(heartbeat, this.leaseMs / 3);

    const ctx: WorkerContext = {
      signal: lease.signal,
      progress: async (value) => {
        try {
          await this.post(`${path}/progress`, { leaseToken, progress: value ?? null });
        } catch (error) {
          if (leaseLost(error)) lose("lease lost (it ran out; the job may be running elsewhere)");
          throw error;
        }
      },
    };
    let outcome: { result: unknown } | { error: unknown };
    try {
      outcome = { result: await this.options.handler(job, ctx) };
    } catch (error) {
      outcome = { error };
    }
    finished = true;
    clearTimeout(beat);
    if (lease.signal.aborted) return;

    try {
      if ("result" in outcome) {
        try {
          await this.deliver(`${path}/complete`, { leaseToken, result: outcome.result ?? null }, expiresAt);
          return;
        } catch (error) {
          if (leaseLost(error) || transient(error)) throw error;
          // The result itself was refused (too large, not JSON): the job fails with the reason.
          outcome = { error: new NonRetryableError(`the result was refused: ${messageOf(error)}`) };
        }
      }
      const retryable = (outcome.error as { retryable?: unknown } | null)?.retryable !== false;
      await this.deliver(`${path}/fail`, { leaseToken, error: messageOf(outcome.error), retryable }, expiresAt);
    } catch (error) {
      if (!leaseLost(error)) this.options.onError?.(error);
    }
  }

  /** Posts a report, retrying while the API is unreachable, until the lease would have run out. */
  private async deliver(path: string, body: unknown, until: number): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.post(path, body);
        return;
      } catch (error) {
        const wait = this.backoff(attempt);
        if (!transient(error) || Date.now() + wait > until) throw error;
        this.options.onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }
}

/** A thrown value's message, never empty. */
function messageOf(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text || "the handler failed";
}

/** Full jitter: a random delay between 0 and min(maxMs, baseMs × 2^attempt). */
function fullJitter(backoff: JobwireOptions["backoff"], attempt: number): number {
  const base = backoff?.baseMs ?? 250;
  const max = backoff?.maxMs ?? 10_000;
  return Math.random() * Math.min(max, base * 2 ** attempt);
}

/** A job's current state as an update. */
function toUpdate(job: Job): JobUpdate {
  return {
    tenantId: job.tenantId,
    jobId: job.id,
    type: job.type,
    status: job.status,
    version: job.version,
    attempt: job.attempt,
    error: job.error,
    progress: job.progress ?? undefined,
    result: job.result ?? undefined,
    runAt: job.runAt ?? undefined,
    at: job.updatedAt,
    cursor: "",
  };
}

/** A JWT's `exp`, if it has one. */
function expiry(token: string): number | undefined {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))) as {
      exp?: number;
    };
    return claims.exp;
  } catch {
    return undefined;
  }
}
