-- The size of a job's result as JSON text, in bytes (see the Postgres
-- migration of the same name); SQLite keeps the result as text.
alter table jobs add column result_bytes integer
    generated always as (length(cast(result as blob))) virtual;
