//! Tenant buckets: a stable hash of a tenant ID into [`TENANT_BUCKETS`]
//! buckets. Metrics are labelled by bucket, never by tenant ID, so the number
//! of series stays fixed however many tenants there are; the API shows each
//! tenant its bucket (`/v1/stats`, `/v1/tenants`) so an operator can map a
//! hot bucket back to its tenants.

use crate::TenantId;

/// How many buckets tenants fall into. Sixteen keeps the series few (a
/// gauge per bucket and status is 48 series) while one very busy tenant
/// still stands out from the fifteenth of the others it shares a bucket
/// with. The store keeps each job's bucket (`tenant_bucket`), so changing
/// this number needs a migration that computes it again.
pub const TENANT_BUCKETS: u8 = 16;

/// The label of each bucket, `"00"` to `"15"`: fixed-width so that they sort
/// as numbers in Grafana and the Prometheus UI.
pub const TENANT_BUCKET_LABELS: [&str; TENANT_BUCKETS as usize] = [
    "00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15",
];

impl TenantId {
    /// The tenant's bucket, from 0 to [`TENANT_BUCKETS`] − 1: FNV-1a (64 bit)
    /// of the ID's bytes, mixed by MurmurHash3's 64-bit finaliser, modulo the
    /// number of buckets. The same in every process, on every platform and in
    /// every version, unlike the standard library's hasher, because buckets
    /// are stored with jobs and compared across API and worker processes.
    /// FNV-1a alone is not enough: its last multiplication barely moves the
    /// low or middle bits for the last byte, so `t1`, `t2` and `t3` would all
    /// share a bucket; the finaliser spreads every input bit over all of them.
    pub fn bucket(&self) -> u8 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = self.as_str().bytes().fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        });
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^= hash >> 33;
        // The remainder is below TENANT_BUCKETS, so it fits in a u8.
        (hash % u64::from(TENANT_BUCKETS)) as u8
    }

    /// The tenant's bucket as a metric label, `"00"` to `"15"`.
    pub fn bucket_label(&self) -> &'static str {
        bucket_label(self.bucket())
    }
}

/// The label of bucket `bucket` (taken modulo [`TENANT_BUCKETS`], so any
/// number read back from the store names a bucket).
pub fn bucket_label(bucket: u8) -> &'static str {
    TENANT_BUCKET_LABELS[usize::from(bucket % TENANT_BUCKETS)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails right there")]

    use super::*;

    fn tenant(id: &str) -> TenantId {
        id.parse().unwrap()
    }

    #[test]
    fn a_tenants_bucket_never_changes() {
        // Buckets are stored with jobs and compared across processes and
        // versions: these values are part of the contract.
        let known = [
            ("acme", 6),
            ("globex", 1),
            ("initech", 2),
            ("dev", 15),
            ("t1", 13),
            ("t2", 14),
        ];
        let seen: Vec<(&str, u8)> = known
            .iter()
            .map(|(id, _)| (*id, tenant(id).bucket()))
            .collect();
        assert_eq!(seen, known);
        assert_eq!(tenant("acme").bucket_label(), "06");
    }

    #[test]
    fn tenants_spread_over_every_bucket() {
        let mut counts = [0_u32; TENANT_BUCKETS as usize];
        for n in 0..16_000 {
            counts[usize::from(tenant(&format!("tenant-{n}")).bucket())] += 1;
        }
        // 1,000 each if even; allow 15% either way.
        for (bucket, count) in counts.iter().enumerate() {
            assert!(
                (850..=1150).contains(count),
                "bucket {bucket}: {count} of 16000 ({counts:?})"
            );
        }
    }

    #[test]
    fn labels_are_two_digits_in_order() {
        for (bucket, label) in TENANT_BUCKET_LABELS.iter().enumerate() {
            assert_eq!(*label, format!("{bucket:02}"));
            assert_eq!(bucket_label(bucket as u8), *label);
        }
        assert_eq!(bucket_label(TENANT_BUCKETS), "00");
    }
}
