use std::time::Duration;

use jobwire_core::JobId;

use super::row::{JobRow, bump, columns};
use super::{SqliteStore, now, text};
use crate::{Claim, LeaseToken, StoreError};

impl SqliteStore {
    /// One transaction for the whole batch. A statement per job: SQLite
    /// gives every row of one statement the same `max(change_seq) + 1`.
    pub(crate) async fn claim_many(
        &self,
        jobs: &[(JobId, LeaseToken)],
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("begin claim"))?;
        let mut claims = Vec::with_capacity(jobs.len());
        for (id, token) in jobs {
            let at = now();
            let row: Option<JobRow> = sqlx::query_as(concat!(
                "update jobs set status = 'running', attempt = attempt + 1, started_at = ?2, ",
                "lease_token = ?3, lease_owner = ?4, lease_expires_at = ?5, ",
                bump!("?2"),
                " where id = ?1 and status = 'queued' returning ",
                columns!()
            ))
            .bind(id.to_string())
            .bind(text(at))
            .bind(&token.0)
            .bind(worker)
            .bind(text(at + lease))
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query("claim job"))?;
            if let Some(row) = row {
                claims.push(Claim::try_from(row)?);
            }
        }
        tx.commit()
            .await
            .map_err(StoreError::query("commit claim"))?;
        Ok(claims)
    }

    pub(crate) async fn heartbeat(
        &self,
        worker: &str,
        jobs: &[JobId],
        lease: Duration,
    ) -> Result<Vec<(JobId, LeaseToken)>, StoreError> {
        let ids: Vec<String> = jobs.iter().map(JobId::to_string).collect();
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "update jobs set lease_expires_at = ?2 where lease_owner = ?1 and status = 'running' \
             and id in (select value from json_each(?3)) returning id, lease_token",
        )
        .bind(worker)
        .bind(text(now() + lease))
        .bind(sqlx::types::Json(ids))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("renew leases"))?;
        rows.into_iter()
            .filter_map(|(id, token)| Some((id, token?)))
            .map(|(id, token)| {
                let id = id
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("job {id}: {e}")))?;
                Ok((id, LeaseToken(token)))
            })
            .collect()
    }
}
