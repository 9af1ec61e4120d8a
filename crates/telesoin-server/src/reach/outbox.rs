//! What is sent when, and the worker that sends it.
//!
//! Scheduling writes `message_outbox` rows, one per message and channel, with a dedupe key so
//! that scheduling twice queues once:
//! - [`send_link`] ("Envoyer le lien"): an invitation per channel, sent at once by the request
//!   itself (claimed like any row: if the request dies, the worker sends it after the lease);
//! - [`reminder_rows`], [`schedule_reminders`]: at the kiné's offsets
//!   (`telesoin_core::reach::reminder_due`), written with the session itself when it is
//!   scheduled (`records::schedule`), and kept queued by the reconciler every minute (after a
//!   move, a change of offsets; the same keys are queued once);
//! - [`cancel_notices`], [`move_session`]: the session's pending messages are cancelled and the
//!   notice queued in the one transaction that cancels or moves the session, with the webhooks
//!   (`telesoin_store::outbound`); a crash cannot keep one without the other.
//!
//! [`spawn_worker`] claims due rows one `UPDATE` at a time (lease `message_lease_seconds`, a
//! fresh claim id each time), re-reads the session and the contact, sends, and marks the row
//! with the claim id: a restart, a crash between claim and send, or a second node never sends a
//! row twice nor drops one (a crash after the relay accepted and before the mark is the one
//! window left; the SMS `id` / Idempotency-Key lets a gateway drop that duplicate).

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use telesoin_core::SessionId;
use telesoin_core::reach::{self, Channel, MessageKind, Wording};
use telesoin_store::{MessageRow, MessageState, NewMessage, SessionRow, StoreError};
use uuid::Uuid;

use crate::app::AppState;
use crate::events::DomainEvent;

type StoreResult<T> = Result<T, StoreError>;

/// The kiné's reminder offsets, or the server's default.
pub async fn offsets(app: &AppState, kine: telesoin_core::KineId) -> StoreResult<Vec<i64>> {
    Ok(app
        .store
        .reminder_offsets(kine)
        .await?
        .unwrap_or_else(|| app.cfg.reminder_offsets_minutes.clone()))
}

/// The reminder rows of a session at its current start time.
pub async fn reminder_rows(
    app: &AppState,
    row: &SessionRow,
    now: DateTime<Utc>,
) -> StoreResult<Vec<NewMessage>> {
    let s = &row.session;
    let offsets = offsets(app, s.kine).await?;
    let mut out = Vec::new();
    for (offset, due) in reach::reminder_due(s.starts_at, &offsets, now) {
        for channel in Channel::ALL {
            out.push(NewMessage {
                id: Uuid::new_v4(),
                session: s.id,
                kind: MessageKind::Reminder,
                channel,
                dedupe_key: format!(
                    "reminder:{}:{}:{offset}:{}",
                    s.id,
                    s.starts_at.timestamp_millis(),
                    channel.as_str()
                ),
                due_at: due,
            });
        }
    }
    Ok(out)
}

/// Queues the reminders of a scheduled session (idempotent).
pub async fn schedule_reminders(
    app: &AppState,
    row: &SessionRow,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let rows = reminder_rows(app, row, now).await?;
    app.store.enqueue_messages(&rows, now).await
}

/// Whether the patient was told of the session (a message with the link went out).
async fn patient_was_told(app: &AppState, session: SessionId) -> StoreResult<bool> {
    Ok(app
        .store
        .messages(session)
        .await?
        .iter()
        .any(|m| m.state == MessageState::Sent && m.kind.has_link()))
}

fn notice_rows(
    session: SessionId,
    kind: MessageKind,
    tag: i64,
    now: DateTime<Utc>,
) -> Vec<NewMessage> {
    Channel::ALL
        .into_iter()
        .map(|channel| NewMessage {
            id: Uuid::new_v4(),
            session,
            kind,
            channel,
            dedupe_key: format!("{}:{session}:{tag}:{}", kind.as_str(), channel.as_str()),
            due_at: now,
        })
        .collect()
}

/// The kinds of pending messages a cancellation or a move stops.
pub const STOPPED_BY_CLOSE: [MessageKind; 3] = [
    MessageKind::Invitation,
    MessageKind::Reminder,
    MessageKind::Moved,
];

/// The notice of a cancellation, if the patient had been told of the session: written in the
/// cancellation's own transaction (`Hub::cancel_session`), with the reminders stopped.
pub async fn cancel_notices(
    app: &AppState,
    session: SessionId,
    now: DateTime<Utc>,
) -> StoreResult<Vec<NewMessage>> {
    Ok(if patient_was_told(app, session).await? {
        notice_rows(session, MessageKind::Cancelled, 0, now)
    } else {
        Vec::new()
    })
}

/// Moves a scheduled session: in one transaction, the new time, the pending messages stopped,
/// the notice (if the patient had been told) and the new reminders.
pub async fn move_session(
    app: &AppState,
    row: &SessionRow,
    starts_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let (window_start, window_end) =
        telesoin_core::model::Session::window_for(starts_at, app.cfg.window());
    let mut moved = row.clone();
    moved.session.starts_at = starts_at;
    moved.session.window_start = window_start;
    moved.session.window_end = window_end;
    let mut add = if patient_was_told(app, row.session.id).await? {
        notice_rows(
            row.session.id,
            MessageKind::Moved,
            starts_at.timestamp_millis(),
            now,
        )
    } else {
        Vec::new()
    };
    let by_platform = app.store.session_platform(row.session.id).await?.is_some();
    if !by_platform || !add.is_empty() {
        add.extend(reminder_rows(app, &moved, now).await?);
    }
    app.store
        .move_session(
            row.session.id,
            starts_at,
            window_start,
            window_end,
            &STOPPED_BY_CLOSE,
            &add,
            now,
        )
        .await
}

/// "Envoyer le lien": queues an invitation per channel and sends them now. Returns the rows as
/// they stand after the attempt.
pub async fn send_link(
    app: &AppState,
    row: &SessionRow,
    channels: &[Channel],
    now: DateTime<Utc>,
) -> StoreResult<Vec<MessageRow>> {
    let batch = Uuid::new_v4();
    let rows: Vec<NewMessage> = channels
        .iter()
        .map(|&channel| NewMessage {
            id: Uuid::new_v4(),
            session: row.session.id,
            kind: MessageKind::Invitation,
            channel,
            dedupe_key: format!("invitation:{}:{batch}:{}", row.session.id, channel.as_str()),
            due_at: now,
        })
        .collect();
    app.store.enqueue_messages(&rows, now).await?;
    // A platform that asks us to send gets the reminders too.
    schedule_reminders(app, row, now).await?;
    let mut out = Vec::new();
    for r in &rows {
        let claim = Uuid::new_v4().to_string();
        let until = now + Duration::seconds(app.cfg.message_lease_seconds);
        if let Some(m) = app.store.claim_message_id(r.id, &claim, now, until).await? {
            process(app, &claim, m).await?;
        }
        if let Some(m) = app.store.message(r.id).await? {
            out.push(m);
        }
    }
    Ok(out)
}

/// The outcome of one attempt.
enum Attempt {
    Done(MessageState, Option<String>),
    Retry(String),
    /// Not yet (a cancellation notice whose cancellation is not visible yet).
    Later,
}

/// Sends one claimed message and records the outcome with `claim`.
pub async fn process(app: &AppState, claim: &str, m: MessageRow) -> StoreResult<()> {
    let now = Utc::now();
    let attempt = attempt(app, &m, now).await;
    let attempt = match attempt {
        Ok(a) => a,
        Err(e) => Attempt::Retry(format!("store: {e}")),
    };
    match attempt {
        Attempt::Done(state, detail) => {
            if app
                .store
                .message_done(m.id, claim, state, detail.as_deref(), Utc::now())
                .await?
            {
                announce(app, &m, state, detail.as_deref()).await;
            }
        }
        Attempt::Later => {
            let next = now + Duration::seconds(5);
            if next - m.created_at > Duration::hours(app.cfg.message_retry_hours) {
                app.store
                    .message_done(
                        m.id,
                        claim,
                        MessageState::Skipped,
                        Some("session_not_cancelled"),
                        now,
                    )
                    .await?;
            } else {
                app.store
                    .message_retry(m.id, claim, next, "waiting_for_cancellation")
                    .await?;
            }
        }
        Attempt::Retry(detail) => {
            let base = app.cfg.message_retry_seconds;
            let delay = (base << (m.attempts - 1).clamp(0, 16)).min(1800);
            let next = now + Duration::seconds(delay);
            let session_start = app
                .store
                .session(m.session)
                .await
                .ok()
                .flatten()
                .map(|r| r.session.starts_at);
            let too_late = m.kind != MessageKind::Cancelled
                && session_start
                    .is_some_and(|s| next >= s + Duration::minutes(app.cfg.link_after_minutes));
            let give_up =
                too_late || next - m.created_at > Duration::hours(app.cfg.message_retry_hours);
            tracing::info!(
                kind = m.kind.as_str(),
                channel = m.channel.as_str(),
                attempts = m.attempts,
                give_up,
                "message not sent"
            );
            if give_up {
                if app
                    .store
                    .message_done(m.id, claim, MessageState::Failed, Some(&detail), now)
                    .await?
                {
                    announce(app, &m, MessageState::Failed, Some(&detail)).await;
                }
            } else {
                app.store.message_retry(m.id, claim, next, &detail).await?;
            }
        }
    }
    Ok(())
}

/// One try: what the row becomes.
async fn attempt(app: &AppState, m: &MessageRow, now: DateTime<Utc>) -> StoreResult<Attempt> {
    use telesoin_core::model::SessionStatus;
    let Some(row) = app.store.session(m.session).await? else {
        return Ok(Attempt::Done(
            MessageState::Skipped,
            Some("session_gone".into()),
        ));
    };
    let status = row.session.status;
    match m.kind {
        MessageKind::Cancelled if status != SessionStatus::Cancelled => {
            return Ok(if status == SessionStatus::Ended {
                Attempt::Done(MessageState::Skipped, Some("session_not_cancelled".into()))
            } else {
                Attempt::Later
            });
        }
        MessageKind::Cancelled => {}
        _ if status.is_closed() => {
            return Ok(Attempt::Done(
                MessageState::Cancelled,
                Some("session_closed".into()),
            ));
        }
        MessageKind::Reminder if now >= row.session.starts_at => {
            return Ok(Attempt::Done(
                MessageState::Skipped,
                Some("too_late".into()),
            ));
        }
        _ => {}
    }
    let contact = app
        .store
        .contact(row.session.patient)
        .await?
        .unwrap_or_default();
    let address = match contact.address(m.channel) {
        Ok(a) => a.to_owned(),
        Err(skip) => {
            return Ok(Attempt::Done(
                MessageState::Skipped,
                Some(skip.code().into()),
            ));
        }
    };
    if !super::configured(&app.cfg, m.channel) {
        return Ok(Attempt::Done(
            MessageState::Skipped,
            Some("not_configured".into()),
        ));
    }
    let kine = app
        .store
        .kine(row.session.kine)
        .await?
        .map(|k| k.name)
        .unwrap_or_default();
    let link = if m.kind.has_link() {
        match super::codes::message_link(app, row.session.id, now).await {
            Ok(l) => Some(l),
            Err(e) => return Ok(Attempt::Retry(format!("link: {}", e.code.code()))),
        }
    } else {
        None
    };
    let w = Wording {
        kind: m.kind,
        kine_name: kine,
        starts_at: row.session.starts_at,
        link,
    };
    let sent = match m.channel {
        Channel::Email => {
            let host = crate::app::origin_of(&app.public_url)
                .split("://")
                .nth(1)
                .unwrap_or("telesoin")
                .to_owned();
            super::mail::send(&app.cfg, &address, &w, row.session.id.0, &host, now).await
        }
        Channel::Sms => super::sms::send(&app.cfg, &address, &w.sms(), m.id).await,
    };
    Ok(match sent {
        Ok(()) => Attempt::Done(MessageState::Sent, None),
        Err(e) => Attempt::Retry(super::scrub(&e, &address)),
    })
}

/// The delivery state, for the audit trail (the webhook was written with the state itself, by
/// `message_done`).
async fn announce(app: &AppState, m: &MessageRow, state: MessageState, detail: Option<&str>) {
    if !matches!(state, MessageState::Sent | MessageState::Failed) {
        return;
    }
    let event = DomainEvent::MessageDelivery {
        session: m.session,
        message: m.id,
        kind: m.kind.as_str(),
        channel: m.channel.as_str(),
        sent: state == MessageState::Sent,
        detail: detail.map(str::to_owned),
    };
    app.hub.events().emit(Utc::now(), event).await;
}

/// How far ahead the reconciler looks for sessions whose reminders it keeps queued.
const RECONCILE_DAYS: i64 = 31;

/// Queues the missing reminders of upcoming sessions.
async fn reconcile(app: &AppState, now: DateTime<Utc>) -> StoreResult<()> {
    for id in app
        .store
        .reminder_candidates(now, now + Duration::days(RECONCILE_DAYS))
        .await?
    {
        if let Some(row) = app.store.session(id).await? {
            schedule_reminders(app, &row, now).await?;
        }
    }
    Ok(())
}

/// Runs the outbox until aborted: every second, the due messages one claim at a time; every
/// minute (and at start), the reconciler.
pub fn spawn_worker(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(StdDuration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_reconcile: Option<DateTime<Utc>> = None;
        loop {
            tick.tick().await;
            let now = Utc::now();
            if last_reconcile.is_none_or(|t| now - t >= Duration::seconds(60)) {
                last_reconcile = Some(now);
                if let Err(e) = reconcile(&app, now).await {
                    tracing::warn!(error = %e, "reminder reconciler failed");
                }
            }
            // A bounded batch per tick, so one slow relay does not starve the loop forever.
            for _ in 0..32 {
                let now = Utc::now();
                let claim = Uuid::new_v4().to_string();
                let until = now + Duration::seconds(app.cfg.message_lease_seconds);
                match app.store.claim_message(&claim, now, until).await {
                    Ok(Some(m)) => {
                        if let Err(e) = process(&app, &claim, m).await {
                            tracing::warn!(error = %e, "message outcome not stored");
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "message outbox unavailable");
                        break;
                    }
                }
            }
        }
    })
}
