//! Audit writes committed together: opening an intent and appending an entry (settling its
//! intent) are queued, and whoever takes the next turn writes every queued one in a single
//! transaction, in the order they were queued.
//!
//! Each change through the API makes two audit writes, and writes to one database take turns
//! (one SQLite writer at a time; on PostgreSQL every append locks the chain's head). With one
//! transaction each, fifty concurrent changes waited for a hundred commits, each flushed to
//! disk. Committed together, a write waits for the batch being written and then for its own.
//!
//! What each caller gets is unchanged: its write is durable when the call returns, entries are
//! appended in the order they were queued, and the chain never forks. A batch that fails
//! fails every write in it, with the same kind of error (one cause, many callers), and writes
//! none of them.

use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::audit::{AuditEntry, StoredEntry, append_in};
use crate::error::{Error, Result, db};
use crate::intents::Settle;
use crate::{PoolExt as _, Store, with_pool};

/// An audit write waiting for its turn.
#[derive(Debug)]
pub(crate) enum Write {
    /// Insert an open intent.
    Open {
        /// Its random id.
        id: String,
        /// When it was opened, in microseconds.
        opened_us: i64,
        /// The entry it would append, as JSON.
        entry: String,
    },
    /// Append `entry` (bounded and checked), first deleting the intent it settles if any.
    Append {
        /// The entry.
        entry: Box<AuditEntry>,
        /// The intent it settles, and what to do if that intent is gone.
        settling: Option<(String, Settle)>,
    },
}

/// What a write did.
#[derive(Debug)]
pub(crate) enum Written {
    /// The intent is stored.
    Opened,
    /// The entry as stored, with the previous and its own hash; `None` when nothing was
    /// appended because the intent was already settled ([`Settle::OnlyIfOpen`]).
    Appended(Option<Box<(StoredEntry, String, String)>>),
}

struct Queued {
    write: Write,
    reply: oneshot::Sender<Result<Written>>,
}

/// The queue of audit writes of one store (shared by its clones).
#[derive(Default)]
pub(crate) struct AuditQueue {
    queued: Mutex<Vec<Queued>>,
    turn: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for AuditQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditQueue").finish_non_exhaustive()
    }
}

const DOING: &str = "writing to the audit log";

impl Store {
    /// Queues `write` and returns once it is committed (or failed), writing the queue itself
    /// when its turn comes before another writer has taken it.
    pub(crate) async fn audit_write(&self, write: Write) -> Result<Written> {
        let queue = &self.audit;
        let (reply, mut answer) = oneshot::channel();
        queue
            .queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Queued { write, reply });
        let turn = queue.turn.clone().lock_owned().await;
        match answer.try_recv() {
            Ok(done) => return done,
            // The writer that took this write stopped before answering (it panicked).
            Err(oneshot::error::TryRecvError::Closed) => return Err(lost()),
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        let batch =
            std::mem::take(&mut *queue.queued.lock().unwrap_or_else(PoisonError::into_inner));
        // Written by a task of its own: a caller that goes away while its batch is written
        // cancels nothing, and every write in the batch is answered with what happened to it.
        let store = self.clone();
        tokio::spawn(async move {
            let writes: Vec<&Write> = batch.iter().map(|q| &q.write).collect();
            let results = store.write_batch(&writes).await;
            drop(turn);
            match results {
                Ok(done) => {
                    for (queued, written) in batch.into_iter().zip(done) {
                        let _ = queued.reply.send(Ok(written));
                    }
                }
                Err(error) => {
                    for queued in batch {
                        let _ = queued.reply.send(Err(error.same_kind()));
                    }
                }
            }
        });
        answer.await.unwrap_or_else(|_| Err(lost()))
    }

    /// Writes `writes` in one transaction, in order.
    async fn write_batch(&self, writes: &[&Write]) -> Result<Vec<Written>> {
        let mut done = Vec::with_capacity(writes.len());
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(db(DOING))?;
            for write in writes {
                match write {
                    Write::Open { id, opened_us, entry } => {
                        sqlx::query(
                            "INSERT INTO audit_intents (id, opened_us, entry) VALUES ($1, $2, $3)",
                        )
                        .bind(id)
                        .bind(opened_us)
                        .bind(entry)
                        .execute(&mut *tx)
                        .await
                        .map_err(db(DOING))?;
                        done.push(Written::Opened);
                    }
                    Write::Append { entry, settling } => {
                        if let Some((intent, settle)) = settling {
                            let deleted = sqlx::query("DELETE FROM audit_intents WHERE id = $1")
                                .bind(intent)
                                .execute(&mut *tx)
                                .await
                                .map_err(db(DOING))?
                                .rows_affected();
                            if deleted == 0 && *settle == Settle::OnlyIfOpen {
                                done.push(Written::Appended(None));
                                continue;
                            }
                        }
                        let appended = append_in!(pool, tx, entry, DOING);
                        done.push(Written::Appended(Some(Box::new(appended))));
                    }
                }
            }
            tx.commit().await.map_err(db(DOING))?;
        });
        Ok(done)
    }
}

/// The error of a write whose batch's writer stopped before answering (it panicked).
fn lost() -> Error {
    Error::Unavailable {
        doing: DOING,
        source: sqlx::Error::WorkerCrashed,
    }
}
