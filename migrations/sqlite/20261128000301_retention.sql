-- Retention (see the Postgres migration of the same name). SQLite keeps
-- expires_at as Unix milliseconds: it is computed from the row in SQL, where
-- the RFC 3339 text of the other times is awkward to add to.
alter table jobs add column retain_ms integer;
alter table jobs add column expires_at integer;

create table retention_swept (
    tenant_id text primary key,
    through   integer not null
);
create index retention_swept_through_idx on retention_swept (through);

create index jobs_retention_idx on jobs (status, finished_at)
    where retain_ms is null and idempotency_key is null and finished_at is not null;
create index jobs_retention_keyed_idx on jobs (status, created_at)
    where retain_ms is null and idempotency_key is not null and finished_at is not null;
create index jobs_expires_idx on jobs (expires_at)
    where expires_at is not null;
