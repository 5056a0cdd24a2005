-- The embedded store: the same jobs table as Postgres, in SQLite's types.
-- IDs are hyphenated UUIDv7 text (sorts by creation), JSON is text,
-- timestamps are RFC 3339 text written by jobwire.
create table jobs (
    id          text primary key,
    tenant_id   text not null,
    job_type    text not null,
    payload     text not null,
    priority    text not null check (priority in ('critical', 'high', 'default', 'low')),
    status      text not null
        check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempt     integer not null default 0,
    result      text,
    error       text,
    progress    text,
    version     integer not null default 1,
    created_at  text not null,
    started_at  text,
    finished_at text,
    updated_at  text not null
);

create index jobs_tenant_id_idx on jobs (tenant_id, id desc);
create index jobs_tenant_status_id_idx on jobs (tenant_id, status, id desc);
create index jobs_tenant_type_id_idx on jobs (tenant_id, job_type, id desc);
create index jobs_status_idx on jobs (status);
