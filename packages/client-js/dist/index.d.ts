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
    attemptErrors: {
        attempt: number;
        startedAt: string | null;
        endedAt: string;
        error: string;
    }[];
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
    queues: Record<Priority, {
        scheduled: number;
        queued: number;
        running: number;
    }>;
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
    onmessage: ((event: {
        data: unknown;
    }) => void) | null;
    onclose: ((event: {
        code: number;
        reason: string;
    }) => void) | null;
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
    backoff?: {
        baseMs?: number;
        maxMs?: number;
    };
}
/** A problem+json error from the API, or a failure to reach it (status 0). */
export declare class JobwireError extends Error {
    readonly status: number;
    readonly title: string;
    readonly detail: string;
    readonly type: string;
    readonly requestId?: string;
    constructor(problem: {
        status: number;
        title?: string;
        detail?: string;
        type?: string;
        requestId?: string;
    });
}
/** A job that ended `failed` or `cancelled`, from `waitFor`. */
export declare class JobFailedError extends Error {
    readonly job: Job;
    constructor(job: Job);
}
/**
 * A handler's failure that retrying cannot fix (a bad payload, say): the job
 * fails at once, whatever attempts it has left. Any error with
 * `retryable === false` does the same; other errors are retried.
 */
export declare class NonRetryableError extends Error {
    readonly retryable = false;
    constructor(message: string, options?: ErrorOptions);
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
/** Close code of a client dropped for not keeping up. */
export declare const CLOSE_SLOW_CONSUMER = 4008;
type Listener<T> = (value: T) => void;
/** How the live connection closed. */
export interface CloseInfo {
    code: number;
    reason: string;
    /** The server refused the token. */
    unauthorized: boolean;
}
export declare class JobwireClient {
    private readonly base;
    private readonly options;
    private token?;
    private refreshTimer?;
    private socket?;
    private readonly subscribers;
    private readonly versions;
    private cursor?;
    private attempt;
    private reconnectTimer?;
    private currentState;
    private readonly stateListeners;
    private readonly closeListeners;
    private readonly resumeListeners;
    constructor(options: JobwireOptions);
    create(job: NewJob): Promise<Job>;
    createMany(jobs: NewJob[]): Promise<Job[]>;
    get(id: string): Promise<Job>;
    cancel(id: string): Promise<Job>;
    retry(id: string): Promise<Job>;
    /** The tenant's queue depth per priority. */
    stats(): Promise<Stats>;
    /**
     * Every tenant with scheduled, queued or running jobs, most queued first, at most `limit`
     * (100 by default, 1000 at most). Needs an operator token (`jobwire token --operator`);
     * a tenant's token gets 403.
     */
    tenants(options?: {
        limit?: number;
    }): Promise<TenantList>;
    /** The tenant's jobs, newest first, fetched a page at a time as you iterate. */
    list(filter?: ListFilter): AsyncGenerator<Job>;
    /**
     * Runs `handler` for jobs of `types`, leased over HTTP; the client must hold
     * a worker token. It long-polls for up to (concurrency − running) jobs,
     * renews each lease every leaseMs/3 while its handler runs, and reports the
     * outcome; a job cancelled meanwhile, or whose lease was lost, aborts
     * `ctx.signal`. The API unreachable or failing (status 0, 408, 429, 5xx)
     * is retried with full-jitter backoff (`backoff`), for as long as it takes.
     */
    worker(options: WorkerOptions): WorkerHandle;
    /** Calls `onUpdate` with every new update (of `jobIds` only, if given); returns the unsubscribe function. */
    subscribe(onUpdate: Listener<JobUpdate>, options?: {
        jobIds?: string[];
    }): () => void;
    /** One job's updates, starting with its current state, ending at a terminal status. */
    watch(id: string): AsyncGenerator<JobUpdate>;
    /** Resolves with the job once it succeeded; rejects with `JobFailedError` if it failed or was cancelled. */
    waitFor(id: string): Promise<Job>;
    /** Resolves once the live connection is up (now, or when it next connects). */
    private connected;
    get state(): ConnectionState;
    /** Connection state changes: `connecting`, `connected`, `reconnecting`, `disconnected`. */
    onState(listener: Listener<ConnectionState>): () => void;
    /**
     * Every close of the live connection: its code (`CLOSE_SLOW_CONSUMER`,
     * 4008, when the server dropped this client for not keeping up; 1001 on
     * server shutdown; 1006 when the connection was lost or refused), and
     * whether the token was refused (`unauthorized`). The client reconnects
     * after each while anyone is subscribed.
     */
    onClose(listener: Listener<CloseInfo>): () => void;
    /** Every reconnect that has caught up with what it missed (after its updates were delivered). */
    onResume(listener: Listener<ResumeInfo>): () => void;
    /** Closes the live connection and stops reconnecting. */
    close(): void;
    private setState;
    private connect;
    /**
     * Reports a close and reconnects. A socket refused before it said
     * `connected` may have been refused for its token (a browser cannot see the
     * upgrade's 401): one cheap REST call tells, and the close is reported as
     * `unauthorized`; with `getToken`, the next attempt takes a fresh token.
     */
    private closed;
    private deliver;
    private scheduleReconnect;
    private disconnect;
    private currentToken;
    /**
     * One API call. A body that is not JSON-serialisable throws its `TypeError`
     * as is; a failure to reach the API is a `JobwireError` with status 0, and
     * an error answer that is not problem+json (a proxy's 502 page) keeps its
     * status, with the text as `detail`.
     */
    private request;
}
export {};
