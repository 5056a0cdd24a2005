//! Creating jobs: commit, then announce. Creates that arrive while a write
//! is in flight are written together in the next one: one multi-row INSERT
//! (one commit) and one broker round trip for all of them (group commit).
//! Nothing waits for a timer, so a lone create goes at once.
//!
//! Only requests without an idempotency key are coalesced: each of those
//! can fail alone (a key used with another body), so they are written on
//! their own, through the same commit-then-announce path.

use std::sync::Arc;

use jobwire_broker::{Broker, Outbox};
use jobwire_core::{Job, NewJob};
use jobwire_store::{Inserted, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::{ApiError, Failpoint};

/// Most jobs written in one coalesced INSERT: SQLite takes at most 32,766
/// parameters per statement, and its insert binds 14 per job.
const MAX_JOBS_PER_WRITE: usize = 2000;
/// Requests waiting for the writer before new ones wait to be queued.
const QUEUE: usize = 4096;

type Reply = Result<Vec<Inserted>, Arc<StoreError>>;

struct Request {
    jobs: Vec<NewJob>,
    reply: oneshot::Sender<Reply>,
}

/// The handle requests create jobs through. Its writer task ends once the
/// last handle is dropped (with the server state), after its last write.
#[derive(Debug, Clone)]
pub(crate) struct Intake {
    writer: Arc<Writer>,
    requests: mpsc::Sender<Request>,
}

impl Intake {
    /// Starts the writer task; call within the Tokio runtime.
    pub(crate) fn start(store: Store, broker: Broker, failpoint: Option<Failpoint>) -> Self {
        let (requests, queue) = mpsc::channel(QUEUE);
        let writer = Arc::new(Writer {
            store,
            broker,
            failpoint,
        });
        tokio::spawn(Arc::clone(&writer).run(queue));
        Self { writer, requests }
    }

    /// Commits the jobs, all or none, then announces the created ones and
    /// queues those due now. Once the insert has committed the jobs exist: a
    /// broker failure after it is logged, not returned (so a client does not
    /// retry and create them twice), and re-dispatch enqueues them later.
    pub(crate) async fn create(&self, jobs: Vec<NewJob>) -> Result<Vec<Inserted>, ApiError> {
        if jobs.iter().any(|job| job.idempotency.is_some()) {
            return Ok(self.writer.write(&jobs).await?);
        }
        let (reply, answer) = oneshot::channel();
        let request = Request { jobs, reply };
        let unavailable = || ApiError::Unavailable("the server is shutting down; try again".into());
        self.requests
            .send(request)
            .await
            .map_err(|_| unavailable())?;
        match answer.await.map_err(|_| unavailable())? {
            Ok(inserted) => Ok(inserted),
            // The writer logged the whole chain once.
            Err(e) if e.is_unavailable() => Err(ApiError::Unavailable(
                "the database is unavailable; try again".into(),
            )),
            Err(e) => Err(ApiError::Internal(format!("creating jobs failed: {e}"))),
        }
    }
}

#[derive(Debug)]
struct Writer {
    store: Store,
    broker: Broker,
    failpoint: Option<Failpoint>,
}

impl Writer {
    /// Writes whatever waits, at most [`MAX_JOBS_PER_WRITE`] jobs at a time
    /// (a request that would go past it starts the next write); ends when
    /// the queue closes.
    async fn run(self: Arc<Self>, mut queue: mpsc::Receiver<Request>) {
        let mut next: Option<Request> = None;
        loop {
            let first = match next.take() {
                Some(request) => request,
                None => match queue.recv().await {
                    Some(request) => request,
                    None => return,
                },
            };
            let mut jobs = first.jobs.len();
            let mut batch = vec![first];
            while let Ok(request) = queue.try_recv() {
                if jobs + request.jobs.len() > MAX_JOBS_PER_WRITE {
                    next = Some(request);
                    break;
                }
                jobs += request.jobs.len();
                batch.push(request);
            }
            self.write_for(batch).await;
        }
    }

    /// Writes the requests' jobs together and answers each request with its share.
    async fn write_for(&self, requests: Vec<Request>) {
        let mut jobs = Vec::new();
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            answers.push((request.reply, request.jobs.len()));
            jobs.extend(request.jobs);
        }
        match self.write(&jobs).await {
            Ok(inserted) => {
                let mut inserted = inserted.into_iter();
                for (reply, size) in answers {
                    // A requester that gave up is no reason to stop answering the others.
                    let _ = reply.send(Ok(inserted.by_ref().take(size).collect()));
                }
            }
            Err(e) => {
                tracing::error!(error = ?e, jobs = jobs.len(), "cannot create jobs");
                let e = Arc::new(e);
                for (reply, _) in answers {
                    let _ = reply.send(Err(Arc::clone(&e)));
                }
            }
        }
    }

    /// Commit, then announce.
    async fn write(&self, jobs: &[NewJob]) -> Result<Vec<Inserted>, StoreError> {
        let inserted = self.store.insert(jobs).await?;
        if self.failpoint == Some(Failpoint::ExitAfterCommit) {
            tracing::error!(
                jobs = inserted.len(),
                "failpoint exit-after-commit: exiting before enqueue"
            );
            std::process::exit(86);
        }
        let created = inserted.iter().filter_map(|i| match i {
            Inserted::Created(job) => Some(job),
            Inserted::Existing(_) => None,
        });
        let outbox = Outbox::announcing(created.inspect(|job| record_created(job)));
        if self.failpoint == Some(Failpoint::ExitMidEnqueue) {
            tracing::error!("failpoint exit-mid-enqueue: exiting in the middle of the enqueue");
            if let Err(e) = self.broker.send_cut_short(outbox).await {
                tracing::error!(error = ?e, "failpoint exit-mid-enqueue: the cut-short send failed");
            }
            std::process::exit(86);
        }
        announce(&self.broker, outbox).await;
        Ok(inserted)
    }
}

/// Sends committed changes to the broker; a failure is logged, not returned
/// (the change is committed; re-dispatch and resync cover what was not sent).
pub(crate) async fn announce(broker: &Broker, outbox: Outbox) {
    let jobs = outbox.updates.len();
    if let Err(e) = broker.send(outbox).await {
        tracing::error!(error = ?e, jobs, "changes committed but not announced; re-dispatch will queue them");
    }
}

/// Announces one committed change (a cancel, a retry).
pub(crate) async fn announce_job(broker: &Broker, job: &Job) {
    announce(broker, Outbox::announcing([job])).await;
}

/// Counts a created job, before it is announced: whoever sees it `queued`
/// finds it counted.
fn record_created(job: &Job) {
    metrics::counter!(
        jobwire_metrics::JOBS_CREATED,
        "type" => jobwire_metrics::type_label(job.job_type.as_str()),
        "priority" => job.priority.as_str()
    )
    .increment(1);
    jobwire_metrics::count_created(job.tenant_id.bucket());
}
