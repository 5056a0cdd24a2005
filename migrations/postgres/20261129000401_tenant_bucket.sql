-- Each job's tenant bucket (`TenantId::bucket` in jobwire-core, 0 to 15),
-- written at insert, so that the per-bucket gauges are one grouped count of
-- the unfinished jobs rather than a row per tenant to hash in Rust. Nullable
-- and without a default, so adding it rewrites nothing: jobs inserted before
-- it have none, and the sampler buckets those by their tenant ID instead
-- (only until they finish).
alter table jobs add column tenant_bucket smallint;
