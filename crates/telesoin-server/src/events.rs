//! Domain events: the one place where "something happened" is announced.
//!
//! The hub and the REST handlers emit; listeners chosen at start-up act: the audit trail appends
//! a hash-chained row. (Platform webhooks are not a listener: each change writes its own, in its
//! transaction; see `platform::webhooks`.) A listener never blocks the emitter
//! for long and never changes what happened; one that fails logs why.
//! Events carry ids and codes only: never a token, an SDP or personal data.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use telesoin_core::model::Role;
use telesoin_core::{KineId, ParticipantId, PatientId, SessionId};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    /// `method`: `password` or `oidc`.
    LoginSucceeded {
        kine: KineId,
        method: &'static str,
    },
    LoginFailed {
        method: &'static str,
    },
    /// Failed logins locked an account (`kine` when it exists), a device or a client address
    /// (never named: personal data) for `seconds`.
    LoginLocked {
        kine: Option<KineId>,
        scope: &'static str,
        seconds: u64,
    },
    LinkIssued {
        kine: KineId,
        session: SessionId,
        role: Role,
        jti: Uuid,
    },
    LinkRevoked {
        kine: KineId,
        session: SessionId,
        jti: Uuid,
    },
    SessionScheduled {
        kine: KineId,
        session: SessionId,
    },
    SessionCancelled {
        kine: KineId,
        session: SessionId,
    },
    SessionEnded {
        session: SessionId,
        billable_seconds: i64,
        reason: String,
    },
    ParticipantWaiting {
        session: SessionId,
        participant: ParticipantId,
        role: Role,
        reason: &'static str,
    },
    ParticipantAdmitted {
        session: SessionId,
        participant: ParticipantId,
        role: Role,
    },
    AdmissionRefused {
        session: SessionId,
        participant: ParticipantId,
        role: Role,
        code: &'static str,
    },
    /// A join refused before any seat (bad or revoked token, closed session): no session known.
    JoinRefused {
        code: &'static str,
    },
    CallConnected {
        session: SessionId,
    },
    ConsentRecorded {
        kine: KineId,
        patient: PatientId,
        by: &'static str,
    },
    ConsentWithdrawn {
        kine: KineId,
        patient: PatientId,
    },
    ReportWritten {
        kine: KineId,
        session: SessionId,
        version: i64,
    },
    Exported {
        kine: KineId,
        format: &'static str,
    },
    /// A patient's INS was recorded or changed (the status only: the INS is personal data).
    InsRecorded {
        kine: KineId,
        patient: PatientId,
        status: &'static str,
    },
    /// A message to the patient was sent, or given up (its delivery state). Never the address.
    MessageDelivery {
        session: SessionId,
        message: Uuid,
        /// `invitation`, `reminder`, `cancelled`, `moved`.
        kind: &'static str,
        /// `email`, `sms`.
        channel: &'static str,
        sent: bool,
        /// Why it failed (the relay's or gateway's answer, recipient masked).
        detail: Option<String>,
    },
}

impl DomainEvent {
    /// The stable name of the event (audit `action`, webhook `type`).
    pub fn name(&self) -> &'static str {
        use DomainEvent::*;
        match self {
            LoginSucceeded { .. } => "login.succeeded",
            LoginFailed { .. } => "login.failed",
            LoginLocked { .. } => "login.locked",
            LinkIssued { .. } => "link.issued",
            LinkRevoked { .. } => "link.revoked",
            SessionScheduled { .. } => "session.scheduled",
            SessionCancelled { .. } => "session.cancelled",
            SessionEnded { .. } => "session.ended",
            ParticipantWaiting { .. } => "participant.waiting",
            ParticipantAdmitted { .. } => "participant.admitted",
            AdmissionRefused { .. } => "admission.refused",
            JoinRefused { .. } => "join.refused",
            CallConnected { .. } => "call.connected",
            ConsentRecorded { .. } => "consent.recorded",
            ConsentWithdrawn { .. } => "consent.withdrawn",
            ReportWritten { .. } => "report.written",
            Exported { .. } => "export",
            InsRecorded { .. } => "ins.recorded",
            MessageDelivery { sent: true, .. } => "message.sent",
            MessageDelivery { sent: false, .. } => "message.failed",
        }
    }

    /// The session the event is about, if any.
    pub fn session(&self) -> Option<SessionId> {
        use DomainEvent::*;
        match self {
            LinkIssued { session, .. }
            | LinkRevoked { session, .. }
            | SessionScheduled { session, .. }
            | SessionCancelled { session, .. }
            | SessionEnded { session, .. }
            | ParticipantWaiting { session, .. }
            | ParticipantAdmitted { session, .. }
            | AdmissionRefused { session, .. }
            | CallConnected { session }
            | ReportWritten { session, .. }
            | MessageDelivery { session, .. } => Some(*session),
            _ => None,
        }
    }
}

/// Something that acts on events.
#[async_trait]
pub trait Listener: Send + Sync {
    async fn on(&self, at: DateTime<Utc>, event: &DomainEvent);
    /// Returns once what the listener took is done (its writes committed or failed).
    async fn flush(&self) {}
}

/// The registered listeners; cheap to share.
#[derive(Default)]
pub struct Events {
    listeners: RwLock<Vec<Arc<dyn Listener>>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("listeners", &self.listeners.read().len())
            .finish()
    }
}

impl Events {
    pub fn new() -> Arc<Self> {
        Arc::new(Events::default())
    }

    /// Adds a listener; done once at start-up.
    pub fn listen(&self, listener: Arc<dyn Listener>) {
        self.listeners.write().push(listener);
    }

    /// Waits until every listener is done with what it took: an emit whose end nobody waits
    /// for (an admission's audit row) is committed before the process exits.
    pub async fn flush(&self) {
        let listeners: Vec<Arc<dyn Listener>> = self.listeners.read().clone();
        for l in listeners {
            l.flush().await;
        }
    }

    /// Tells every listener, in registration order.
    pub async fn emit(&self, at: DateTime<Utc>, event: DomainEvent) {
        let listeners: Vec<Arc<dyn Listener>> = self.listeners.read().clone();
        for l in listeners {
            l.on(at, &event).await;
        }
    }
}
