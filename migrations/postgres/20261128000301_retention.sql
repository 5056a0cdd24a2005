-- Retention: finished jobs are deleted once kept long enough.
-- retain_ms: the job's own retention (`retainFor`), null for its final
-- status's (a setting of the sweeper, so that changing it applies to jobs
-- already finished). expires_at: when a job with its own retention may go,
-- set by the write that finishes it (never before 24 hours after its creation
-- when it has an idempotency key), null otherwise.
alter table jobs
    add column retain_ms bigint,
    add column expires_at timestamptz;

-- Per tenant, the newest place in the change feed of a job the sweeper
-- deleted: a client resuming from before it may have missed that job's last
-- change, which no replay can show any more, so it gets a reset instead. Its
-- maximum also keeps the newest place known from going back when the newest
-- jobs are deleted.
create table retention_swept (
    tenant_id text primary key,
    through   bigint not null
);
create index retention_swept_through_idx on retention_swept (through);
