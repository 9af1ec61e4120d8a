//! The audit trail: every security event appended to the hash-chained table, and its check.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::sync::Arc;
use telesoin_core::audit::{self as chain, BrokenAt};
use telesoin_store::{NewAudit, Store, StoreError, parse_hash};

use crate::events::{DomainEvent, Listener};

/// Appends one audit row per domain event. The chain has one writer at a time, so appends that
/// arrive while a transaction is being written wait and go together in the next one (group
/// commit): under a burst of admissions the chain costs one transaction per batch instead of
/// one per event, and each emitter still goes on only once its own row is committed.
pub struct AuditTrail {
    store: Arc<dyn Store>,
    pending: Arc<Mutex<Pending>>,
}

type Waiter = tokio::sync::oneshot::Sender<Result<(), String>>;

#[derive(Default)]
struct Pending {
    entries: Vec<(NewAudit, Waiter)>,
    /// A writer task is running; it takes what is pending when its transaction is done.
    writing: bool,
}

/// Rows per transaction at most.
const BATCH: usize = 256;

impl AuditTrail {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(AuditTrail {
            store,
            pending: Arc::new(Mutex::new(Pending::default())),
        })
    }

    /// Appends `entry` and waits until it is committed (alone or with others).
    async fn append(&self, entry: NewAudit) -> Result<(), String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = {
            let mut p = self.pending.lock();
            p.entries.push((entry, tx));
            !std::mem::replace(&mut p.writing, true)
        };
        if start {
            // A task of its own: the writer goes on even if this emitter is cancelled.
            let (store, pending) = (self.store.clone(), self.pending.clone());
            tokio::spawn(async move {
                loop {
                    let batch: Vec<(NewAudit, Waiter)> = {
                        let mut p = pending.lock();
                        if p.entries.is_empty() {
                            p.writing = false;
                            return;
                        }
                        let n = p.entries.len().min(BATCH);
                        p.entries.drain(..n).collect()
                    };
                    let (entries, waiters): (Vec<NewAudit>, Vec<Waiter>) =
                        batch.into_iter().unzip();
                    let written = store.append_audits(&entries).await;
                    for w in waiters {
                        let _ = w.send(written.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                    }
                }
            });
        }
        rx.await
            .unwrap_or_else(|_| Err("the audit writer stopped".into()))
    }
}

/// Who did it, what it was about, and the codes worth keeping: ids and codes, never personal data.
fn describe(e: &DomainEvent) -> (String, String, String) {
    use DomainEvent::*;
    match e {
        LoginSucceeded { kine, method } => (
            format!("kine:{kine}"),
            String::new(),
            format!("method={method}"),
        ),
        LoginFailed { method } => (
            "anonymous".into(),
            String::new(),
            format!("method={method}"),
        ),
        LoginLocked {
            kine,
            scope,
            seconds,
        } => (
            "anonymous".into(),
            kine.map(|k| format!("kine:{k}")).unwrap_or_default(),
            format!("scope={scope} seconds={seconds}"),
        ),
        LinkIssued {
            kine,
            session,
            role,
            jti,
        } => (
            format!("kine:{kine}"),
            format!("session:{session}"),
            format!("role={} jti={jti}", role.as_str()),
        ),
        LinkRevoked { kine, session, jti } => (
            format!("kine:{kine}"),
            format!("session:{session}"),
            format!("jti={jti}"),
        ),
        SessionScheduled { kine, session } | SessionCancelled { kine, session } => (
            format!("kine:{kine}"),
            format!("session:{session}"),
            String::new(),
        ),
        SessionEnded {
            session,
            billable_seconds,
            reason,
        } => (
            "system".into(),
            format!("session:{session}"),
            format!("billable_seconds={billable_seconds} reason={reason}"),
        ),
        ParticipantWaiting {
            session,
            participant,
            role,
            reason,
        } => (
            format!("participant:{participant}"),
            format!("session:{session}"),
            format!("role={} reason={reason}", role.as_str()),
        ),
        ParticipantAdmitted {
            session,
            participant,
            role,
        } => (
            format!("participant:{participant}"),
            format!("session:{session}"),
            format!("role={}", role.as_str()),
        ),
        AdmissionRefused {
            session,
            participant,
            role,
            code,
        } => (
            format!("participant:{participant}"),
            format!("session:{session}"),
            format!("role={} code={code}", role.as_str()),
        ),
        JoinRefused { code } => ("anonymous".into(), String::new(), format!("code={code}")),
        CallConnected { session } => ("system".into(), format!("session:{session}"), String::new()),
        ConsentRecorded { kine, patient, by } => (
            format!("{by}"),
            format!("patient:{patient}"),
            format!("kine={kine}"),
        ),
        InsRecorded {
            kine,
            patient,
            status,
        } => (
            format!("kine:{kine}"),
            format!("patient:{patient}"),
            format!("status={status}"),
        ),
        ConsentWithdrawn { kine, patient } => (
            format!("kine:{kine}"),
            format!("patient:{patient}"),
            String::new(),
        ),
        ReportWritten {
            kine,
            session,
            version,
        } => (
            format!("kine:{kine}"),
            format!("session:{session}"),
            format!("version={version}"),
        ),
        Exported { kine, format } => (
            format!("kine:{kine}"),
            String::new(),
            format!("format={format}"),
        ),
        MessageDelivery {
            session,
            message,
            kind,
            channel,
            ..
        } => (
            "system".into(),
            format!("session:{session}"),
            format!("message={message} kind={kind} channel={channel}"),
        ),
    }
}

/// Events that are not security events stay out of the trail (they are in the session record).
fn is_security_event(e: &DomainEvent) -> bool {
    !matches!(
        e,
        DomainEvent::ParticipantWaiting { .. }
            | DomainEvent::CallConnected { .. }
            | DomainEvent::MessageDelivery { .. }
    )
}

#[async_trait]
impl Listener for AuditTrail {
    async fn on(&self, at: DateTime<Utc>, event: &DomainEvent) {
        if !is_security_event(event) {
            return;
        }
        let (actor, subject, detail) = describe(event);
        let entry = NewAudit {
            at,
            actor,
            action: event.name().to_owned(),
            subject,
            detail,
        };
        if let Err(e) = self.append(entry).await {
            tracing::error!(error = %e, action = event.name(), "audit append failed");
        }
    }

    async fn flush(&self) {
        // The writer clears `writing` once nothing is pending; each try ends in a commit or an
        // error, so this ends.
        while self.pending.lock().writing {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// What `telesoin audit verify` finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact {
        rows: usize,
    },
    /// The first row that does not chain (changed, removed, reordered, or cut off the end).
    Broken {
        seq: i64,
    },
}

pub async fn verify(store: &dyn Store) -> Result<Verdict, StoreError> {
    let rows = store.audit_rows().await?;
    let mut chain_rows = Vec::with_capacity(rows.len());
    for r in &rows {
        match parse_hash(&r.hash) {
            Some(h) => chain_rows.push((r.canonical(), h)),
            None => return Ok(Verdict::Broken { seq: r.seq }),
        }
    }
    let head = store.audit_head().await?;
    let result = match head {
        Some((seq, hash)) => match parse_hash(&hash) {
            Some(h) => chain::verify_chain_with_head(&chain_rows, chain::GENESIS, (seq, h)),
            None => Err(BrokenAt { seq }),
        },
        None if rows.is_empty() => Ok(()),
        None => chain::verify_chain(&chain_rows, chain::GENESIS),
    };
    Ok(match result {
        Ok(()) => Verdict::Intact { rows: rows.len() },
        Err(b) => Verdict::Broken { seq: b.seq },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use telesoin_core::KineId;
    use uuid::Uuid;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_events_is_chained_whole_in_group_commits() {
        let dir = tempfile::tempdir().expect("dir");
        let store: Arc<dyn Store> = Arc::new(
            telesoin_store::SqlStore::open_sqlite(&dir.path().join("t.db"))
                .await
                .expect("store"),
        );
        let trail = AuditTrail::new(store.clone());
        let mut tasks = Vec::new();
        for _ in 0..300 {
            let trail = trail.clone();
            tasks.push(tokio::spawn(async move {
                let kine = KineId(Uuid::new_v4());
                trail
                    .on(
                        Utc::now(),
                        &DomainEvent::LoginSucceeded {
                            kine,
                            method: "password",
                        },
                    )
                    .await;
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        // Every emitter returned after its row was committed: all 300 are there, chained.
        assert_eq!(
            verify(store.as_ref()).await.expect("verify"),
            Verdict::Intact { rows: 300 }
        );
        let rows = store.audit_rows().await.expect("rows");
        let mut actors: Vec<_> = rows.iter().map(|r| r.actor.clone()).collect();
        actors.sort();
        actors.dedup();
        assert_eq!(actors.len(), 300, "each event once");
    }
}
