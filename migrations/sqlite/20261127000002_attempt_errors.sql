-- Every failed attempt of a job, oldest first (see the Postgres migration of
-- the same name); SQLite keeps the JSON array as text.
alter table jobs add column attempt_errors text not null default '[]';
