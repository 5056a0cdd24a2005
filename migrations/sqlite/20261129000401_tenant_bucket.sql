-- Each job's tenant bucket (see the Postgres migration of the same name).
alter table jobs add column tenant_bucket integer;
