-- At-least-once execution: leases with fencing tokens, retries with backoff,
-- delayed jobs, timeouts, idempotency keys, and a change sequence for resume.
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt.
create table jobs_new (
    id               text primary key,
    tenant_id        text not null,
    job_type         text not null,
    payload          text not null,
    priority         text not null check (priority in ('critical', 'high', 'default', 'low')),
    status           text not null
        check (status in ('scheduled', 'queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempt          integer not null default 0,
    result           text,
    error            text,
    progress         text,
    version          integer not null default 1,
    created_at       text not null,
    started_at       text,
    finished_at      text,
    updated_at       text not null,
    max_attempts     integer not null default 3,
    run_at           text,
    timeout_ms       integer,
    lease_token      text,
    lease_owner      text,
    lease_expires_at text,
    idempotency_key  text,
    request_hash     text,
    change_seq       integer not null default 0
);

insert into jobs_new (id, tenant_id, job_type, payload, priority, status, attempt, result, error,
    progress, version, created_at, started_at, finished_at, updated_at, change_seq)
select id, tenant_id, job_type, payload, priority, status, attempt, result, error,
    progress, version, created_at, started_at, finished_at, updated_at, rowid
from jobs;

drop table jobs;
alter table jobs_new rename to jobs;

create index jobs_tenant_id_idx on jobs (tenant_id, id desc);
create index jobs_tenant_status_id_idx on jobs (tenant_id, status, id desc);
create index jobs_tenant_type_id_idx on jobs (tenant_id, job_type, id desc);
create index jobs_status_idx on jobs (status);
create unique index jobs_idempotency_key_idx on jobs (tenant_id, idempotency_key)
    where idempotency_key is not null;
create index jobs_tenant_change_idx on jobs (tenant_id, change_seq);
-- Every write sets change_seq to max + 1 (SQLite has no sequences; writes are serialised).
create index jobs_change_seq_idx on jobs (change_seq);
create index jobs_due_idx on jobs (status, run_at);
create index jobs_lease_idx on jobs (status, lease_expires_at);
create index jobs_lease_owner_idx on jobs (lease_owner, status);
