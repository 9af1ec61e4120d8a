//! The audit trail: every security event appended to the hash-chained table, and its check.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use telesoin_core::audit::{self as chain, BrokenAt};
use telesoin_store::{NewAudit, Store, StoreError, parse_hash};

use crate::events::{DomainEvent, Listener};

/// Appends one audit row per domain event.
pub struct AuditTrail {
    store: Arc<dyn Store>,
}

impl AuditTrail {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(AuditTrail { store })
    }
}

/// Who did it, what it was about, and the codes worth keeping: ids and codes, never personal data.
fn describe(e: &DomainEvent) -> (String, String, String) {
    use DomainEvent::*;
    match e {
        LoginSucceeded { kine } => (format!("kine:{kine}"), String::new(), String::new()),
        LoginFailed => ("anonymous".into(), String::new(), String::new()),
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
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, action = event.name(), "audit append failed");
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
