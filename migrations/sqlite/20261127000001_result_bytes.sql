-- The size of a job's result as JSON text (see the Postgres migration of
-- the same name); SQLite keeps the result as text, so it is its length.
alter table jobs add column result_bytes integer
    generated always as (length(result)) virtual;
