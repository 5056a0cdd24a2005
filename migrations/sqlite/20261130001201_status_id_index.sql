-- The lost-ID sweep walks the queued jobs in ID order, a batch at a time.
-- With only (status) to go by, SQLite read every queued job and sorted them
-- for each batch: a million-job backlog stalled the one writer for 150 ms
-- every 2 s. (status, id) serves that walk in order, from where the last
-- batch ended, and everything (status) served, so that index goes.
create index jobs_status_id_idx on jobs (status, id);
drop index jobs_status_idx;
