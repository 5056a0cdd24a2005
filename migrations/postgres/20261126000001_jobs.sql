-- Every job, ever: the source of truth. Redis only carries IDs and notifications.
create table jobs (
    id          uuid primary key,            -- UUIDv7: sorts by creation time
    tenant_id   text not null,
    job_type    text not null,
    payload     jsonb not null,
    priority    text not null,
    status      text not null,
    attempt     integer not null default 0,
    result      jsonb,
    error       text,
    progress    jsonb,
    version     bigint not null default 1,   -- +1 on every change of the row
    created_at  timestamptz not null default now(),
    started_at  timestamptz,
    finished_at timestamptz,
    updated_at  timestamptz not null default now(),
    constraint jobs_priority_check
        check (priority in ('critical', 'high', 'default', 'low')),
    constraint jobs_status_check
        check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled'))
);

-- Listing is per tenant, newest first, optionally by status or type.
create index jobs_tenant_id_idx on jobs (tenant_id, id desc);
create index jobs_tenant_status_id_idx on jobs (tenant_id, status, id desc);
create index jobs_tenant_type_id_idx on jobs (tenant_id, job_type, id desc);
