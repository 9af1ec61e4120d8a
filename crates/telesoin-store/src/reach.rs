//! Reaching the patient: contact details, short link codes, the kiné's reminder offsets, and the
//! message outbox.
//!
//! The outbox holds one row per message and channel. A row is sent exactly once, by whoever
//! claims it: [`ReachStore::claim_message`] is one `UPDATE ... WHERE claimed_until IS NULL OR
//! claimed_until <= now` (a lease), so two workers, two nodes, or a worker restarted after a
//! crash never hold the same row at once; only the claimant may mark it done
//! ([`ReachStore::message_done`], fenced by `claimed_by`), and a claim that lapses (the claimant
//! died between claim and send) is taken again. `dedupe_key` is unique, so scheduling the same
//! reminder twice (a retry, the reconciler, two nodes) inserts it once.
//!
//! Rows never hold an address or a link: both are read when the message goes, so a purge or a
//! changed phone number needs no outbox rewrite, and no secret sits in the table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use telesoin_core::reach::{Channel, Contact, MessageKind, Preference};
use telesoin_core::{KineId, PatientId, SessionId};
use uuid::Uuid;

use crate::outbound::{Announcement, queue_webhooks, stop_messages};
use crate::sql::{corrupt, get, instant, ms, opt_instant, unavailable, uuid};
use crate::{Result, SqlStore};

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub id: Uuid,
    pub session: SessionId,
    pub kind: MessageKind,
    pub channel: Channel,
    /// Unique: the same key is queued once (`reminder:SESSION:STARTS_MS:OFFSET:CHANNEL`).
    pub dedupe_key: String,
    pub due_at: DateTime<Utc>,
}

/// `pending` (to send, or retrying), `sent`, `failed` (given up), `skipped` (no address, or not
/// the patient's channel), `cancelled` (the session was cancelled or moved first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    Pending,
    Sent,
    Failed,
    Skipped,
    Cancelled,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Pending => "pending",
            MessageState::Sent => "sent",
            MessageState::Failed => "failed",
            MessageState::Skipped => "skipped",
            MessageState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<MessageState> {
        [
            MessageState::Pending,
            MessageState::Sent,
            MessageState::Failed,
            MessageState::Skipped,
            MessageState::Cancelled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: Uuid,
    pub session: SessionId,
    pub kind: MessageKind,
    pub channel: Channel,
    pub dedupe_key: String,
    pub due_at: DateTime<Utc>,
    pub state: MessageState,
    /// Claims so far (each claim is an attempt).
    pub attempts: i64,
    pub claimed_by: Option<String>,
    pub claimed_until: Option<DateTime<Utc>>,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait ReachStore: Send + Sync {
    /// Sets (or replaces) a patient's contact details.
    async fn set_contact(
        &self,
        patient: PatientId,
        contact: &Contact,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// A patient's contact details; None when none were given.
    async fn contact(&self, patient: PatientId) -> Result<Option<Contact>>;

    /// The kiné's reminder offsets (minutes before the start); None: the server's default.
    async fn reminder_offsets(&self, kine: KineId) -> Result<Option<Vec<i64>>>;
    async fn set_reminder_offsets(&self, kine: KineId, offsets: &[i64]) -> Result<()>;
    /// Sets the kiné's offsets and, in the same transaction, stops the pending reminders of
    /// their scheduled sessions due at other offsets (`cancelled`, detail `reminders_changed`,
    /// with their `message.cancelled` webhooks); a stopped reminder's dedupe key is freed so
    /// that going back to that offset queues it again. Returns the sessions whose reminders
    /// were pending (the caller queues those the new offsets call for).
    async fn change_reminder_offsets(
        &self,
        kine: KineId,
        offsets: &[i64],
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>>;

    /// Records a short link code (its SHA-256, hex) for a link.
    async fn add_join_code(
        &self,
        code_hash: &str,
        jti: Uuid,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// The link (jti) and session of a code, by its hash.
    async fn join_code(&self, code_hash: &str) -> Result<Option<(Uuid, SessionId)>>;

    /// Queues messages in one transaction; a `dedupe_key` already queued is left as it is.
    /// Returns how many rows were new.
    async fn enqueue_messages(&self, messages: &[NewMessage], now: DateTime<Utc>) -> Result<u64>;
    /// In one transaction: the session's pending messages of `stop` kinds become `cancelled`,
    /// and `add` is queued (the notice of a cancellation or a move, the new reminders), with the
    /// webhook `message.cancelled` of each stopped message.
    async fn replace_messages(
        &self,
        session: SessionId,
        stop: &[MessageKind],
        add: &[NewMessage],
        now: DateTime<Utc>,
    ) -> Result<u64>;
    /// Moves a `scheduled` session to a new start and window, in one transaction with its
    /// links' validity, the pending messages of `stop` kinds cancelled and `add` queued, and the
    /// webhooks `session.moved` and `message.cancelled` (see [`crate::outbound`]); false (and
    /// nothing changed) when the session is no longer scheduled.
    #[allow(clippy::too_many_arguments)]
    async fn move_session(
        &self,
        session: SessionId,
        starts_at: DateTime<Utc>,
        window_start: DateTime<Utc>,
        window_end: DateTime<Utc>,
        stop: &[MessageKind],
        add: &[NewMessage],
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Claims the oldest due pending message whose lease is free or lapsed, until `until`.
    async fn claim_message(
        &self,
        node: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<MessageRow>>;
    /// Claims one message by id (the dashboard's immediate send), on the same terms.
    async fn claim_message_id(
        &self,
        id: Uuid,
        node: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<MessageRow>>;
    /// Ends a claimed message (`sent`, `failed`, `skipped`, `cancelled`), in one transaction
    /// with its webhook (`message.sent`, ...; see [`crate::outbound`]); false (and nothing
    /// written) when `node` no longer holds it.
    async fn message_done(
        &self,
        id: Uuid,
        node: &str,
        state: MessageState,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Releases a claimed message to be tried again at `next`.
    async fn message_retry(
        &self,
        id: Uuid,
        node: &str,
        next: DateTime<Utc>,
        detail: &str,
    ) -> Result<bool>;
    /// Every message of a session, oldest first.
    async fn messages(&self, session: SessionId) -> Result<Vec<MessageRow>>;
    async fn message(&self, id: Uuid) -> Result<Option<MessageRow>>;
    /// Sessions still `scheduled` starting in `(from, to]` whose reminders the reconciler keeps:
    /// those not scheduled through a platform, and those a platform asked us to send for.
    async fn reminder_candidates(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SessionId>>;
}

fn message_row(r: &AnyRow) -> Result<MessageRow> {
    Ok(MessageRow {
        id: uuid(&get::<String>(r, "id")?)?,
        session: SessionId(uuid(&get::<String>(r, "session_id")?)?),
        kind: MessageKind::parse(&get::<String>(r, "kind")?).ok_or_else(|| corrupt("kind"))?,
        channel: Channel::parse(&get::<String>(r, "channel")?).ok_or_else(|| corrupt("channel"))?,
        dedupe_key: get(r, "dedupe_key")?,
        due_at: instant(get(r, "due_at")?)?,
        state: MessageState::parse(&get::<String>(r, "state")?).ok_or_else(|| corrupt("state"))?,
        attempts: get(r, "attempts")?,
        claimed_by: get(r, "claimed_by")?,
        claimed_until: opt_instant(get(r, "claimed_until")?)?,
        detail: get(r, "detail")?,
        created_at: instant(get(r, "created_at")?)?,
        done_at: opt_instant(get(r, "done_at")?)?,
    })
}

const INSERT_MESSAGE: &str = "INSERT INTO message_outbox (id, session_id, kind, channel, dedupe_key, due_at, state, attempts, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7) ON CONFLICT (dedupe_key) DO NOTHING";

pub(crate) async fn insert_messages(
    conn: &mut sqlx::AnyConnection,
    messages: &[NewMessage],
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut n = 0;
    for m in messages {
        let r = sqlx::query(INSERT_MESSAGE)
            .bind(m.id.to_string())
            .bind(m.session.to_string())
            .bind(m.kind.as_str())
            .bind(m.channel.as_str())
            .bind(&m.dedupe_key)
            .bind(ms(m.due_at))
            .bind(ms(now))
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
        n += r.rows_affected();
    }
    Ok(n)
}

/// The lease condition of a claim, shared by both claims.
const CLAIMABLE: &str =
    "state = 'pending' AND due_at <= $3 AND (claimed_until IS NULL OR claimed_until <= $3)";

#[async_trait]
impl ReachStore for SqlStore {
    async fn set_contact(&self, patient: PatientId, c: &Contact, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO patient_contacts (patient_id, phone, email, preference, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (patient_id) DO UPDATE SET phone = excluded.phone, email = excluded.email,
               preference = excluded.preference, updated_at = excluded.updated_at",
        )
        .bind(patient.to_string())
        .bind(&c.phone)
        .bind(&c.email)
        .bind(c.preference.as_str())
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn contact(&self, patient: PatientId) -> Result<Option<Contact>> {
        let row = sqlx::query(
            "SELECT phone, email, preference FROM patient_contacts WHERE patient_id = $1",
        )
        .bind(patient.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|r| {
            Ok(Contact {
                phone: get(&r, "phone")?,
                email: get(&r, "email")?,
                preference: Preference::parse(&get::<String>(&r, "preference")?)
                    .ok_or_else(|| corrupt("preference"))?,
            })
        })
        .transpose()
    }

    async fn reminder_offsets(&self, kine: KineId) -> Result<Option<Vec<i64>>> {
        let row = sqlx::query("SELECT offsets FROM kine_reminders WHERE kine_id = $1")
            .bind(kine.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| {
            telesoin_core::reach::parse_offsets(&get::<String>(&r, "offsets")?)
                .ok_or_else(|| corrupt("offsets"))
        })
        .transpose()
    }

    async fn set_reminder_offsets(&self, kine: KineId, offsets: &[i64]) -> Result<()> {
        let text = offsets
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        sqlx::query(
            "INSERT INTO kine_reminders (kine_id, offsets) VALUES ($1, $2)
             ON CONFLICT (kine_id) DO UPDATE SET offsets = excluded.offsets",
        )
        .bind(kine.to_string())
        .bind(text)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn change_reminder_offsets(
        &self,
        kine: KineId,
        offsets: &[i64],
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>> {
        let text = offsets
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO kine_reminders (kine_id, offsets) VALUES ($1, $2)
             ON CONFLICT (kine_id) DO UPDATE SET offsets = excluded.offsets",
        )
        .bind(kine.to_string())
        .bind(text)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let pending = sqlx::query(
            "SELECT m.id, m.session_id, m.channel, m.dedupe_key FROM message_outbox m JOIN sessions s ON s.id = m.session_id
             WHERE s.kine_id = $1 AND s.status = 'scheduled' AND m.kind = 'reminder' AND m.state = 'pending'
             ORDER BY m.session_id, m.due_at, m.id",
        )
        .bind(kine.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let mut sessions: Vec<SessionId> = Vec::new();
        for r in &pending {
            let id: String = get(r, "id")?;
            let session = SessionId(uuid(&get::<String>(r, "session_id")?)?);
            if !sessions.contains(&session) {
                sessions.push(session);
            }
            // `reminder:SESSION:STARTS_MS:OFFSET:CHANNEL`
            let key: String = get(r, "dedupe_key")?;
            let offset = key.split(':').nth(3).and_then(|o| o.parse::<i64>().ok());
            if offset.is_some_and(|o| offsets.contains(&o)) {
                continue;
            }
            let stopped = sqlx::query(
                "UPDATE message_outbox SET state = 'cancelled', detail = 'reminders_changed', done_at = $1,
                   claimed_by = NULL, claimed_until = NULL, dedupe_key = dedupe_key || ':stopped:' || id
                 WHERE id = $2 AND state = 'pending'",
            )
            .bind(ms(now))
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            if stopped.rows_affected() == 1 {
                let event = Announcement::message(
                    uuid(&id)?,
                    MessageKind::Reminder,
                    &get::<String>(r, "channel")?,
                    MessageState::Cancelled,
                    Some("reminders_changed"),
                    now,
                );
                queue_webhooks(&mut tx, session, &[event], now).await?;
            }
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(sessions)
    }

    async fn add_join_code(
        &self,
        code_hash: &str,
        jti: Uuid,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO join_codes (code_hash, jti, session_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(code_hash)
        .bind(jti.to_string())
        .bind(session.to_string())
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn join_code(&self, code_hash: &str) -> Result<Option<(Uuid, SessionId)>> {
        let row = sqlx::query("SELECT jti, session_id FROM join_codes WHERE code_hash = $1")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| {
            Ok((
                uuid(&get::<String>(&r, "jti")?)?,
                SessionId(uuid(&get::<String>(&r, "session_id")?)?),
            ))
        })
        .transpose()
    }

    async fn enqueue_messages(&self, messages: &[NewMessage], now: DateTime<Utc>) -> Result<u64> {
        if messages.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let n = insert_messages(&mut tx, messages, now).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n)
    }

    async fn replace_messages(
        &self,
        session: SessionId,
        stop: &[MessageKind],
        add: &[NewMessage],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let stopped = stop_messages(&mut tx, session, stop, "session_closed", now).await?;
        let n = insert_messages(&mut tx, add, now).await?;
        queue_webhooks(&mut tx, session, &stopped, now).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(n)
    }

    async fn move_session(
        &self,
        session: SessionId,
        starts_at: DateTime<Utc>,
        window_start: DateTime<Utc>,
        window_end: DateTime<Utc>,
        stop: &[MessageKind],
        add: &[NewMessage],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let moved = sqlx::query(
            "UPDATE sessions SET starts_at = $1, window_start = $2, window_end = $3 WHERE id = $4 AND status = 'scheduled'",
        )
        .bind(ms(starts_at))
        .bind(ms(window_start))
        .bind(ms(window_end))
        .bind(session.to_string())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if moved.rows_affected() != 1 {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(false);
        }
        sqlx::query("UPDATE links SET not_before = $1, expires_at = $2 WHERE session_id = $3")
            .bind(ms(window_start))
            .bind(ms(window_end))
            .bind(session.to_string())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let stopped = stop_messages(&mut tx, session, stop, "session_moved", now).await?;
        insert_messages(&mut tx, add, now).await?;
        let mut events = vec![Announcement::new(
            "session.moved",
            now,
            serde_json::json!({
                "starts_at": starts_at, "window_start": window_start, "window_end": window_end,
            }),
        )];
        events.extend(stopped);
        queue_webhooks(&mut tx, session, &events, now).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn claim_message(
        &self,
        node: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<MessageRow>> {
        // One statement: the inner SELECT picks a candidate, the outer WHERE re-checks the lease
        // on the row it updates, so of two concurrent claimants only one gets a row (Postgres
        // re-evaluates the WHERE after the row lock; SQLite has one writer at a time).
        let q = format!(
            "UPDATE message_outbox SET claimed_by = $1, claimed_until = $2, attempts = attempts + 1
             WHERE id = (SELECT id FROM message_outbox WHERE {CLAIMABLE} ORDER BY due_at, id LIMIT 1)
               AND {CLAIMABLE}
             RETURNING *"
        );
        let row = sqlx::query(&q)
            .bind(node)
            .bind(ms(until))
            .bind(ms(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| message_row(&r)).transpose()
    }

    async fn claim_message_id(
        &self,
        id: Uuid,
        node: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<MessageRow>> {
        let q = format!(
            "UPDATE message_outbox SET claimed_by = $1, claimed_until = $2, attempts = attempts + 1
             WHERE id = $4 AND {CLAIMABLE} RETURNING *"
        );
        let row = sqlx::query(&q)
            .bind(node)
            .bind(ms(until))
            .bind(ms(now))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| message_row(&r)).transpose()
    }

    async fn message_done(
        &self,
        id: Uuid,
        node: &str,
        state: MessageState,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let rows = sqlx::query(
            "UPDATE message_outbox SET state = $1, detail = $2, done_at = $3, claimed_until = NULL
             WHERE id = $4 AND claimed_by = $5 AND state = 'pending' RETURNING session_id, kind, channel",
        )
        .bind(state.as_str())
        .bind(detail)
        .bind(ms(now))
        .bind(id.to_string())
        .bind(node)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some(r) = rows.first() else {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(false);
        };
        let session = SessionId(uuid(&get::<String>(r, "session_id")?)?);
        let kind = MessageKind::parse(&get::<String>(r, "kind")?).ok_or_else(|| corrupt("kind"))?;
        let channel: String = get(r, "channel")?;
        let event = Announcement::message(id, kind, &channel, state, detail, now);
        queue_webhooks(&mut tx, session, &[event], now).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn message_retry(
        &self,
        id: Uuid,
        node: &str,
        next: DateTime<Utc>,
        detail: &str,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE message_outbox SET due_at = $1, detail = $2, claimed_by = NULL, claimed_until = NULL
             WHERE id = $3 AND claimed_by = $4 AND state = 'pending'",
        )
        .bind(ms(next))
        .bind(detail)
        .bind(id.to_string())
        .bind(node)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(r.rows_affected() == 1)
    }

    async fn messages(&self, session: SessionId) -> Result<Vec<MessageRow>> {
        let rows = sqlx::query(
            "SELECT * FROM message_outbox WHERE session_id = $1 ORDER BY created_at, due_at, id",
        )
        .bind(session.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(message_row).collect()
    }

    async fn message(&self, id: Uuid) -> Result<Option<MessageRow>> {
        let row = sqlx::query("SELECT * FROM message_outbox WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| message_row(&r)).transpose()
    }

    async fn reminder_candidates(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SessionId>> {
        let rows = sqlx::query(
            "SELECT s.id FROM sessions s
             WHERE s.status = 'scheduled' AND s.starts_at > $1 AND s.starts_at <= $2
               AND (NOT EXISTS (SELECT 1 FROM platform_sessions p WHERE p.session_id = s.id)
                    OR EXISTS (SELECT 1 FROM message_outbox m WHERE m.session_id = s.id AND m.kind = 'invitation'))
             ORDER BY s.starts_at",
        )
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| Ok(SessionId(uuid(&get::<String>(r, "id")?)?)))
            .collect()
    }
}
