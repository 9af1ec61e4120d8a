//! The outbound rows of a change, written in the change's own transaction.
//!
//! A change that platforms or the patient must hear of (a session scheduled, cancelled, moved
//! or ended, a message to the patient done) writes what announces it — the webhook deliveries of
//! every endpoint concerned, the patient's notice, the reminders it queues or stops — in the one
//! database transaction that makes the change. Either both are there or neither: a crash (kill -9, the
//! node lost) between the change and its announcement cannot lose the event, and a change that
//! failed never announces anything. The delivery workers (webhooks, messages) then send what is
//! queued, after a restart too.
//!
//! Webhook rows: one per endpoint of every platform the session's kiné gave access to, read in
//! the same transaction; the body is `{"id", "type", "created_at", "data"}` where `data` always
//! holds `session` and `kine`; the order key is the session, so a session's events arrive in
//! the order they were written. Message events are `message.sent`, `message.failed`,
//! `message.skipped` and `message.cancelled`, with `message`, `kind`, `channel`, `state` and
//! `detail` (a code and short words, never an address).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use telesoin_core::billing::PresenceKind;
use telesoin_core::model::Session;
use telesoin_core::reach::MessageKind;
use telesoin_core::{KineId, PatientId, SessionId};
use uuid::Uuid;

use crate::reach::{MessageState, NewMessage, insert_messages};
use crate::sql::{get, insert_session, ms, unavailable, uuid};
use crate::{Result, SessionBilling, SqlStore};

/// An event about a session, for the platforms' webhooks.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// `session.cancelled`, `session.moved`, `session.ended`, `message.sent`, ...
    pub event_type: String,
    pub at: DateTime<Utc>,
    /// The event's data (an object); `session` and `kine` are added.
    pub data: serde_json::Value,
}

impl Announcement {
    pub fn new(event_type: &str, at: DateTime<Utc>, data: serde_json::Value) -> Announcement {
        Announcement {
            event_type: event_type.to_owned(),
            at,
            data,
        }
    }

    /// The event of a message's delivery state.
    pub fn message(
        message: Uuid,
        kind: MessageKind,
        channel: &str,
        state: MessageState,
        detail: Option<&str>,
        at: DateTime<Utc>,
    ) -> Announcement {
        Announcement::new(
            &format!("message.{}", state.as_str()),
            at,
            serde_json::json!({
                "message": message, "kind": kind.as_str(), "channel": channel,
                "state": state.as_str(), "detail": detail,
            }),
        )
    }
}

/// Queues the webhook deliveries of `events` about `session`, on `conn` (inside the caller's
/// transaction). One read finds the session's kiné and the endpoints of the platforms it gave
/// access to (none: nothing more is done). Returns how many rows were written.
pub(crate) async fn queue_webhooks(
    conn: &mut AnyConnection,
    session: SessionId,
    events: &[Announcement],
    now: DateTime<Utc>,
) -> Result<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let targets = sqlx::query(
        "SELECT s.kine_id AS kine_id, w.id AS endpoint_id FROM sessions s
         JOIN platform_kines pk ON pk.kine_id = s.kine_id
         JOIN webhook_endpoints w ON w.platform_id = pk.platform_id
         WHERE s.id = $1 AND w.deleted_at IS NULL ORDER BY w.created_at, w.id",
    )
    .bind(session.to_string())
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    let Some(first) = targets.first() else {
        return Ok(0);
    };
    let kine = uuid(&get::<String>(first, "kine_id")?)?;
    let endpoints = targets
        .iter()
        .map(|t| get::<String>(t, "endpoint_id"))
        .collect::<Result<Vec<_>>>()?;
    let about = serde_json::json!({ "session": session.0, "kine": kine });
    let order_key = format!("session:{session}");
    insert_rows(conn, &endpoints, &order_key, &about, events, now).await
}

/// Queues the webhook deliveries of `events` about a patient of `kine` (consents), on `conn`:
/// one row per endpoint of every platform the kiné gave access to, `data` with `kine` and
/// `patient`, in the patient's order (`patient:{id}`).
pub(crate) async fn queue_patient_webhooks(
    conn: &mut AnyConnection,
    kine: KineId,
    patient: PatientId,
    events: &[Announcement],
    now: DateTime<Utc>,
) -> Result<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let targets = sqlx::query(
        "SELECT w.id AS endpoint_id FROM platform_kines pk
         JOIN webhook_endpoints w ON w.platform_id = pk.platform_id
         WHERE pk.kine_id = $1 AND w.deleted_at IS NULL ORDER BY w.created_at, w.id",
    )
    .bind(kine.to_string())
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    let endpoints = targets
        .iter()
        .map(|t| get::<String>(t, "endpoint_id"))
        .collect::<Result<Vec<_>>>()?;
    let about = serde_json::json!({ "kine": kine.0, "patient": patient.0 });
    insert_rows(
        conn,
        &endpoints,
        &format!("patient:{patient}"),
        &about,
        events,
        now,
    )
    .await
}

/// One outbox row per endpoint and event; `about`'s fields are added to each event's data.
async fn insert_rows(
    conn: &mut AnyConnection,
    endpoints: &[String],
    order_key: &str,
    about: &serde_json::Value,
    events: &[Announcement],
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut n = 0;
    for endpoint in endpoints {
        for e in events {
            let id = Uuid::new_v4();
            let mut data = match &e.data {
                serde_json::Value::Object(_) => e.data.clone(),
                _ => serde_json::json!({}),
            };
            if let (Some(data), Some(about)) = (data.as_object_mut(), about.as_object()) {
                for (k, v) in about {
                    data.insert(k.clone(), v.clone());
                }
            }
            let body = serde_json::json!({
                "id": id, "type": e.event_type, "created_at": e.at, "data": data,
            });
            sqlx::query(
                "INSERT INTO webhook_outbox (event_id, endpoint_id, order_key, event_type, body, state, attempts, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
            )
            .bind(id.to_string())
            .bind(endpoint)
            .bind(order_key)
            .bind(&e.event_type)
            .bind(body.to_string())
            .bind(ms(now))
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Stops the session's pending messages of `stop` kinds (`cancelled`, with `detail`), on
/// `conn`; returns the event of each stopped message.
pub(crate) async fn stop_messages(
    conn: &mut AnyConnection,
    session: SessionId,
    stop: &[MessageKind],
    detail: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Announcement>> {
    let mut out = Vec::new();
    for kind in stop {
        // A row claimed right now is cancelled too: its claimant's `message_done` then finds it
        // no longer pending and records nothing (the send re-reads the session first).
        let rows = sqlx::query(
            "UPDATE message_outbox SET state = 'cancelled', detail = $1, done_at = $2, claimed_by = NULL, claimed_until = NULL
             WHERE session_id = $3 AND kind = $4 AND state = 'pending' RETURNING id, channel",
        )
        .bind(detail)
        .bind(ms(now))
        .bind(session.to_string())
        .bind(kind.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
        for r in &rows {
            out.push(Announcement::message(
                uuid(&get::<String>(r, "id")?)?,
                *kind,
                &get::<String>(r, "channel")?,
                MessageState::Cancelled,
                Some(detail),
                now,
            ));
        }
    }
    Ok(out)
}

/// A session to schedule and what comes with it, written in one transaction.
#[derive(Debug, Clone)]
pub struct NewSchedule<'a> {
    pub session: &'a Session,
    pub billing_class: &'a str,
    pub billing: &'a SessionBilling,
    /// Privacy mode (media through TURN only).
    pub relay_only: bool,
    /// The platform whose API scheduled it, if any.
    pub platform: Option<Uuid>,
    /// Its reminders (none for a platform that sends its own).
    pub reminders: &'a [NewMessage],
    /// `session.scheduled`.
    pub scheduled: &'a Announcement,
}

#[async_trait]
pub trait OutboundStore: Send + Sync {
    /// Schedules a session: the session with its billing facts, its privacy mode, the platform
    /// that scheduled it, its reminders and the webhook `session.scheduled`, in one transaction.
    async fn schedule_announced(&self, s: &NewSchedule<'_>, now: DateTime<Utc>) -> Result<()>;

    /// Cancels a `scheduled` or `live` session, in one transaction with: its `cancelled`
    /// presence event, its links revoked, its pending messages of `stop` kinds cancelled, `notices` queued (the patient's notice of the
    /// cancellation) and the webhooks `session.cancelled` and `message.cancelled` (one per
    /// stopped message). False, and nothing written, when the session was already closed.
    async fn cancel_announced(
        &self,
        session: SessionId,
        stop: &[MessageKind],
        notices: &[NewMessage],
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Finalizes the session exactly once (as `SessionStore::finalize`), in one transaction with
    /// the webhooks of `ended` (`session.ended`): true for the one call that did it, and only
    /// then are the rows written.
    async fn finalize_announced(
        &self,
        session: SessionId,
        ended_at: DateTime<Utc>,
        billable_seconds: i64,
        ended: &Announcement,
        now: DateTime<Utc>,
    ) -> Result<bool>;
}

#[async_trait]
impl OutboundStore for SqlStore {
    async fn schedule_announced(&self, s: &NewSchedule<'_>, now: DateTime<Utc>) -> Result<()> {
        let id = s.session.id;
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        insert_session(&mut tx, s.session, s.billing_class, now).await?;
        sqlx::query(
            "UPDATE sessions SET direct_access = $1, hn_price_cents = $2, class_reason = $3, relay_only = $4 WHERE id = $5",
        )
        .bind(&s.billing.direct_access)
        .bind(s.billing.hn_price_cents)
        .bind(&s.billing.class_reason)
        .bind(i64::from(s.relay_only))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if let Some(platform) = s.platform {
            sqlx::query("INSERT INTO platform_sessions (session_id, platform_id) VALUES ($1, $2)")
                .bind(id.to_string())
                .bind(platform.to_string())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        insert_messages(&mut tx, s.reminders, now).await?;
        queue_webhooks(&mut tx, id, std::slice::from_ref(s.scheduled), now).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn cancel_announced(
        &self,
        session: SessionId,
        stop: &[MessageKind],
        notices: &[NewMessage],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let moved = sqlx::query(
            "UPDATE sessions SET status = 'cancelled' WHERE id = $1 AND status IN ('scheduled', 'live')",
        )
        .bind(session.to_string())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if moved.rows_affected() != 1 {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE links SET revoked_at = $1 WHERE session_id = $2 AND revoked_at IS NULL",
        )
        .bind(ms(now))
        .bind(session.to_string())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        // The record's own `cancelled` presence event, with the rest.
        sqlx::query(
            "INSERT INTO presence_events (session_id, at, participant_id, role, kind, detail) VALUES ($1, $2, NULL, NULL, $3, NULL)",
        )
        .bind(session.to_string())
        .bind(ms(now))
        .bind(PresenceKind::Cancelled.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let stopped = stop_messages(&mut tx, session, stop, "session_cancelled", now).await?;
        insert_messages(&mut tx, notices, now).await?;
        let mut events = vec![Announcement::new(
            "session.cancelled",
            now,
            serde_json::json!({}),
        )];
        events.extend(stopped);
        queue_webhooks(&mut tx, session, &events, now).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn finalize_announced(
        &self,
        session: SessionId,
        ended_at: DateTime<Utc>,
        billable_seconds: i64,
        ended: &Announcement,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // The same guarded statement as `finalize`: exactly once, never a cancelled session.
        let r = sqlx::query(
            "UPDATE sessions SET status = 'ended', ended_at = $1, billable_seconds = $2, finalized_at = $3
             WHERE id = $4 AND finalized_at IS NULL AND status IN ('scheduled', 'live')",
        )
        .bind(ms(ended_at))
        .bind(billable_seconds)
        .bind(ms(now))
        .bind(session.to_string())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if r.rows_affected() != 1 {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(false);
        }
        queue_webhooks(&mut tx, session, std::slice::from_ref(ended), now).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }
}
