-- The size of a job's result as JSON text, kept at write time, so that a
-- replay of many changes can leave big results in the store without
-- converting each one to text to find out how big it is.
alter table jobs add column result_bytes integer
    generated always as (octet_length(result::text)) stored;
