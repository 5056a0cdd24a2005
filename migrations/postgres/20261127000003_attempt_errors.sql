-- Every failed attempt of a job, oldest first, as
-- {"attempt", "startedAt", "endedAt", "error"}: the row keeps only the last
-- attempt's error, and a dashboard shows them all. It lives on the row
-- (River's way) rather than in a table of attempts, so that a failure appends
-- to it in the same UPDATE that ends the attempt, and success writes nothing
-- more. A column with a constant default is added without rewriting the table.
alter table jobs add column attempt_errors jsonb not null default '[]';
