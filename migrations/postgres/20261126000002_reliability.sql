-- At-least-once execution: leases with fencing tokens, retries with backoff,
-- delayed jobs, timeouts, idempotency keys, and a change sequence for resume.
alter table jobs
    add column max_attempts     integer not null default 3,
    add column run_at           timestamptz,           -- when a scheduled job becomes due
    add column timeout_ms       bigint,
    add column lease_token      uuid,                  -- fencing token of the current attempt
    add column lease_owner      text,                  -- the worker holding the lease
    add column lease_expires_at timestamptz,
    add column idempotency_key  text,
    add column request_hash     text,                  -- of the body that first used the key
    add column change_seq       bigint;

create sequence jobs_change_seq;
update jobs set change_seq = nextval('jobs_change_seq');
alter table jobs
    alter column change_seq set default nextval('jobs_change_seq'),
    alter column change_seq set not null;

alter table jobs drop constraint jobs_status_check;
alter table jobs add constraint jobs_status_check
    check (status in ('scheduled', 'queued', 'running', 'succeeded', 'failed', 'cancelled'));

create unique index jobs_idempotency_key_idx on jobs (tenant_id, idempotency_key)
    where idempotency_key is not null;
create index jobs_due_idx on jobs (run_at) where status = 'scheduled';
create index jobs_lease_idx on jobs (lease_expires_at) where status = 'running';
create index jobs_lease_owner_idx on jobs (lease_owner) where status = 'running';
create index jobs_queued_idx on jobs (id) where status = 'queued';
create index jobs_tenant_change_idx on jobs (tenant_id, change_seq);
