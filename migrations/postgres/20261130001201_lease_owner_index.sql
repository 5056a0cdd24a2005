-- The heartbeat renews a worker's leases by job ID (the primary key), and
-- nothing else reads this index. While a backlog drained, the planner, its
-- estimates far behind, walked this index instead: every dead entry of the
-- worker's finished jobs, on every heartbeat (170 ms behind a million jobs,
-- the time the claims waited for). Without it the claim writes one index less.
drop index if exists jobs_lease_owner_idx;
