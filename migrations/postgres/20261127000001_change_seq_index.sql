-- The gap filler reads changes by place (`change_seq = any($1)`) and the
-- newest place committed (`max(change_seq)`); without this index both scan
-- the whole table. SQLite has had the same index from the start.
create index jobs_change_seq_idx on jobs (change_seq);
