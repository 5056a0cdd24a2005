-- What the sweeper reads, so that each of its statements walks an index from
-- the oldest expired row and stops after a batch: never a scan of `jobs`.
-- Each holds finished jobs only (`finished_at` is set exactly when a job is
-- succeeded, failed or cancelled), so a write that does not finish a job adds
-- nothing to them, and a finish adds one entry.
--
-- On a large existing table, building them here blocks writes while it runs:
-- create them beforehand with `create index concurrently` (same names and
-- definitions) and this migration skips them.

-- Jobs kept for their status's retention, without an idempotency key: by
-- when they finished.
create index if not exists jobs_retention_idx on jobs (status, finished_at)
    where retain_ms is null and idempotency_key is null and finished_at is not null;

-- The same with an idempotency key, which must also be 24 hours old: by when
-- they were created (a job finishes after its creation, so the two bounds
-- leave out only the jobs that lived across them).
create index if not exists jobs_retention_keyed_idx on jobs (status, created_at)
    where retain_ms is null and idempotency_key is not null and finished_at is not null;

-- Jobs with a retention of their own: by when they expire.
create index if not exists jobs_expires_idx on jobs (expires_at)
    where expires_at is not null;
