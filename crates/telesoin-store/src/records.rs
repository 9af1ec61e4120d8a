//! Records: what billing, the patient file and an inspector rely on after the call.
//!
//! - billing facts per kiné (cooperation protocol, default HN price) and per session (direct
//!   access declared, HN price, the class and why), fixed at finalization;
//! - the compte rendu, versioned: an amendment adds a version, nothing is overwritten;
//! - the audit trail, hash-chained (`telesoin_core::audit`): appends are serialized across
//!   processes and nodes (SQLite `BEGIN IMMEDIATE`, Postgres `LOCK TABLE`), and the head
//!   (last seq and hash) is kept apart so that rows cut off the end are detected;
//! - retention: the last care per patient, and the purge of a patient's data.

use std::fmt::Write as _;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Executor;
use telesoin_core::audit::{self, AuditRowCanonical};
use telesoin_core::{KineId, PatientId, SessionId};

use crate::outbound::queue_webhooks;
use crate::sql::{Backend, date, get, instant, ms, opt_instant, unavailable, uuid, value_rows};
use crate::{Announcement, Result, SessionRow, SqlStore, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KineSettings {
    /// The kiné works in a coordinated structure under a cooperation protocol (direct access).
    pub cooperation_protocol: bool,
    /// Default price of a hors-nomenclature session, in cents.
    pub hn_price_cents: i64,
}

/// Billing facts of one session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionBilling {
    /// `acute_low_back_pain` or `ankle_sprain`, when declared.
    pub direct_access: Option<String>,
    /// The HN price for this session, if it differs from the kiné's default.
    pub hn_price_cents: Option<i64>,
    /// Why the class is what it is (`telesoin_core::reimbursement::ClassReason::code`).
    pub class_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub session: SessionId,
    pub version: i64,
    pub text: String,
    pub author: KineId,
    pub written_at: DateTime<Utc>,
}

/// One audit row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    /// Hex SHA-256 chain hash.
    pub hash: String,
}

impl AuditRow {
    pub fn canonical(&self) -> AuditRowCanonical {
        AuditRowCanonical {
            seq: self.seq,
            at_millis: self.at.timestamp_millis(),
            actor: self.actor.clone(),
            action: self.action.clone(),
            subject: self.subject.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// A new audit entry: ids and codes only.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub at: DateTime<Utc>,
    /// `kine:<id>`, `participant:<id>`, `system`, `cli`...
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

/// The latest day of care of a patient (an in-person visit or a finished session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCare {
    pub patient: PatientId,
    pub kine: KineId,
    pub last_care: NaiveDate,
}

#[async_trait]
pub trait RecordStore: Send + Sync {
    async fn kine_settings(&self, kine: KineId) -> Result<KineSettings>;
    async fn set_kine_settings(&self, kine: KineId, settings: KineSettings) -> Result<()>;
    async fn session_billing(&self, session: SessionId) -> Result<SessionBilling>;
    /// The price of the session if it were HN: its own, or else its kiné's default, in one read
    /// (None when there is no such session).
    async fn hn_price_cents(&self, session: SessionId) -> Result<Option<i64>>;
    /// Records the billing facts and the class (at scheduling, and again at finalization).
    async fn set_session_billing(
        &self,
        session: SessionId,
        billing: &SessionBilling,
        class: &str,
    ) -> Result<()>;
    /// Sets the privacy mode of a session (media through TURN only).
    async fn set_relay_only(&self, session: SessionId, relay_only: bool) -> Result<()>;
    /// Adds a version of the compte rendu; returns its number (1, 2, ...). With `written`
    /// (`report.written`), its webhooks are queued in the same transaction, their data with
    /// the new `version`.
    async fn add_report(
        &self,
        session: SessionId,
        author: KineId,
        text: &str,
        at: DateTime<Utc>,
        written: Option<&Announcement>,
    ) -> Result<i64>;
    async fn reports(&self, session: SessionId) -> Result<Vec<ReportRow>>;
    /// Finalized sessions of `kine` (or of everyone) that started in `[from, to)`.
    async fn finalized_sessions(
        &self,
        kine: Option<KineId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SessionRow>>;
    /// In-person visits recorded by `kine` dated in `[from, to]`.
    async fn in_person_count(&self, kine: KineId, from: NaiveDate, to: NaiveDate) -> Result<u32>;
    /// Appends one row to the audit chain; returns its seq.
    async fn append_audit(&self, entry: &NewAudit) -> Result<i64>;
    /// Appends rows to the audit chain in this order, in one transaction (all or none);
    /// returns their seqs.
    async fn append_audits(&self, entries: &[NewAudit]) -> Result<Vec<i64>>;
    async fn audit_rows(&self) -> Result<Vec<AuditRow>>;
    /// The recorded head of the chain (last seq and hash), if any row was ever written.
    async fn audit_head(&self) -> Result<Option<(i64, String)>>;
    async fn last_care(&self) -> Result<Vec<LastCare>>;
    /// Deletes everything about a patient (sessions, events, links, reports, consents, visits,
    /// prescriptions, the patient). Audit rows stay: they hold ids only.
    async fn purge_patient(&self, patient: PatientId) -> Result<()>;
}

fn hex32(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Parses a stored hex hash (for verification).
pub fn parse_hash(s: &str) -> Option<[u8; 32]> {
    unhex32(s)
}

#[async_trait]
impl RecordStore for SqlStore {
    async fn kine_settings(&self, kine: KineId) -> Result<KineSettings> {
        let row =
            sqlx::query("SELECT cooperation_protocol, hn_price_cents FROM kines WHERE id = $1")
                .bind(kine.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        match row {
            Some(r) => Ok(KineSettings {
                cooperation_protocol: get::<i64>(&r, "cooperation_protocol")? != 0,
                hn_price_cents: get(&r, "hn_price_cents")?,
            }),
            None => Ok(KineSettings::default()),
        }
    }

    async fn set_kine_settings(&self, kine: KineId, s: KineSettings) -> Result<()> {
        sqlx::query(
            "UPDATE kines SET cooperation_protocol = $1, hn_price_cents = $2 WHERE id = $3",
        )
        .bind(i64::from(s.cooperation_protocol))
        .bind(s.hn_price_cents)
        .bind(kine.to_string())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn session_billing(&self, session: SessionId) -> Result<SessionBilling> {
        let row = sqlx::query(
            "SELECT direct_access, hn_price_cents, class_reason FROM sessions WHERE id = $1",
        )
        .bind(session.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        match row {
            Some(r) => Ok(SessionBilling {
                direct_access: get(&r, "direct_access")?,
                hn_price_cents: get(&r, "hn_price_cents")?,
                class_reason: get(&r, "class_reason")?,
            }),
            None => Ok(SessionBilling::default()),
        }
    }

    async fn hn_price_cents(&self, session: SessionId) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT s.hn_price_cents AS own, k.hn_price_cents AS kine_default
             FROM sessions s JOIN kines k ON k.id = s.kine_id WHERE s.id = $1",
        )
        .bind(session.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(r) = row else {
            return Ok(None);
        };
        let own: Option<i64> = get(&r, "own")?;
        Ok(Some(match own {
            Some(p) => p,
            None => get(&r, "kine_default")?,
        }))
    }

    async fn set_relay_only(&self, session: SessionId, relay_only: bool) -> Result<()> {
        sqlx::query("UPDATE sessions SET relay_only = $1 WHERE id = $2")
            .bind(i64::from(relay_only))
            .bind(session.to_string())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn set_session_billing(
        &self,
        session: SessionId,
        b: &SessionBilling,
        class: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET direct_access = $1, hn_price_cents = $2, class_reason = $3, billing_class = $4 WHERE id = $5",
        )
        .bind(b.direct_access.clone())
        .bind(b.hn_price_cents)
        .bind(b.class_reason.clone())
        .bind(class)
        .bind(session.to_string())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn add_report(
        &self,
        session: SessionId,
        author: KineId,
        text: &str,
        at: DateTime<Utc>,
        written: Option<&Announcement>,
    ) -> Result<i64> {
        // The primary key (session, version) makes a concurrent amendment fail rather than
        // overwrite: the caller retries with the next version.
        for _ in 0..3 {
            let mut tx = self.pool.begin().await.map_err(unavailable)?;
            let next: i64 = sqlx::query(
                "SELECT COALESCE(MAX(version), 0) + 1 AS v FROM reports WHERE session_id = $1",
            )
            .bind(session.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)
            .and_then(|r| get(&r, "v"))?;
            let inserted = sqlx::query(
                "INSERT INTO reports (session_id, version, text, author, written_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(session.to_string())
            .bind(next)
            .bind(text)
            .bind(author.to_string())
            .bind(ms(at))
            .execute(&mut *tx)
            .await
            .map_err(unavailable);
            match inserted {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => {
                    tx.rollback().await.map_err(unavailable)?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            if let Some(a) = written {
                let mut a = a.clone();
                if let Some(data) = a.data.as_object_mut() {
                    data.insert("version".into(), serde_json::json!(next));
                }
                queue_webhooks(&mut tx, session, std::slice::from_ref(&a), a.at).await?;
            }
            tx.commit().await.map_err(unavailable)?;
            return Ok(next);
        }
        Err(StoreError::Conflict(
            "report version raced three times".into(),
        ))
    }

    async fn reports(&self, session: SessionId) -> Result<Vec<ReportRow>> {
        let rows = sqlx::query("SELECT * FROM reports WHERE session_id = $1 ORDER BY version")
            .bind(session.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(ReportRow {
                    session,
                    version: get(r, "version")?,
                    text: get(r, "text")?,
                    author: KineId(uuid(&get::<String>(r, "author")?)?),
                    written_at: instant(get(r, "written_at")?)?,
                })
            })
            .collect()
    }

    async fn finalized_sessions(
        &self,
        kine: Option<KineId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SessionRow>> {
        let rows = match kine {
            Some(k) => sqlx::query(
                "SELECT * FROM sessions WHERE kine_id = $1 AND starts_at >= $2 AND starts_at < $3 AND finalized_at IS NOT NULL ORDER BY starts_at",
            )
            .bind(k.to_string())
            .bind(ms(from))
            .bind(ms(to))
            .fetch_all(&self.pool)
            .await,
            None => sqlx::query(
                "SELECT * FROM sessions WHERE starts_at >= $1 AND starts_at < $2 AND finalized_at IS NOT NULL ORDER BY starts_at",
            )
            .bind(ms(from))
            .bind(ms(to))
            .fetch_all(&self.pool)
            .await,
        }
        .map_err(unavailable)?;
        rows.iter().map(crate::sql::session_row).collect()
    }

    async fn in_person_count(&self, kine: KineId, from: NaiveDate, to: NaiveDate) -> Result<u32> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM in_person_visits WHERE kine_id = $1 AND date >= $2 AND date <= $3")
            .bind(kine.to_string())
            .bind(from.format("%Y-%m-%d").to_string())
            .bind(to.format("%Y-%m-%d").to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
            .and_then(|r| get(&r, "n"))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn append_audit(&self, e: &NewAudit) -> Result<i64> {
        let seqs = self.append_audits(std::slice::from_ref(e)).await?;
        seqs.first()
            .copied()
            .ok_or_else(|| StoreError::Corrupt("no audit seq".into()))
    }

    async fn append_audits(&self, entries: &[NewAudit]) -> Result<Vec<i64>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        // Two trips while the chain is locked (SQLite: to the connection's thread, the writers'
        // turn held): the lock and the chain's head, then the rows, the head's row and the
        // commit, where a statement each took five (Postgres six), and one more per row.
        // Postgres takes one statement with parameters per trip: the rows go on their own,
        // three trips in all.
        let result = async {
            // One writer of the chain at a time, across processes and nodes.
            const HEAD: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
            const HEAD_UPSERT: &str = "INSERT INTO audit_head (id, seq, hash)";
            const HEAD_CONFLICT: &str =
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash";
            let prev = match self.backend {
                // `fetch_all`: `fetch_optional` would stop at the first statement's end.
                Backend::Sqlite => sqlx::query(&format!("BEGIN IMMEDIATE; {HEAD}"))
                    .fetch_all(&mut *conn)
                    .await
                    .map(|rows| rows.into_iter().next()),
                // No parameters: Postgres's simple protocol, several statements in one trip.
                Backend::Postgres => conn
                    .fetch_all(
                        format!("BEGIN; LOCK TABLE audit_log IN EXCLUSIVE MODE; {HEAD}").as_str(),
                    )
                    .await
                    .map(|rows| rows.into_iter().next()),
            }
            .map_err(unavailable)?;
            let (mut seq, mut prev_hash) = match prev {
                Some(r) => {
                    let h: String = get(&r, "hash")?;
                    (
                        get::<i64>(&r, "seq")?,
                        unhex32(&h).ok_or_else(|| StoreError::Corrupt("audit hash".into()))?,
                    )
                }
                None => (0, audit::GENESIS),
            };
            let mut seqs = Vec::with_capacity(entries.len());
            let mut hashes = Vec::with_capacity(entries.len());
            for e in entries {
                seq += 1;
                let canonical = AuditRowCanonical {
                    seq,
                    at_millis: ms(e.at),
                    actor: e.actor.clone(),
                    action: e.action.clone(),
                    subject: e.subject.clone(),
                    detail: e.detail.clone(),
                };
                let chained = audit::chain_hash(&prev_hash, &canonical);
                hashes.push(hex32(&chained));
                prev_hash = chained;
                seqs.push(seq);
            }
            // The seqs are chosen here, under the lock, so that they are the ones hashed.
            let mut sql = String::from(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, hash) VALUES ",
            );
            value_rows(&mut sql, entries.len(), 7);
            let last = hashes.last().cloned().unwrap_or_default();
            if self.backend == Backend::Sqlite {
                // The query's parameters are numbered across its statements.
                let n = 7 * entries.len();
                let _ = write!(
                    sql,
                    "; {HEAD_UPSERT} VALUES (1, ${}, ${}) {HEAD_CONFLICT}; COMMIT",
                    n + 1,
                    n + 2
                );
            }
            let mut query = sqlx::query(&sql);
            for ((e, seq), hash) in entries.iter().zip(&seqs).zip(&hashes) {
                query = query
                    .bind(*seq)
                    .bind(ms(e.at))
                    .bind(e.actor.clone())
                    .bind(e.action.clone())
                    .bind(e.subject.clone())
                    .bind(e.detail.clone())
                    .bind(hash.clone());
            }
            match self.backend {
                Backend::Sqlite => {
                    query
                        .bind(seq)
                        .bind(last)
                        .execute(&mut *conn)
                        .await
                        .map_err(unavailable)?;
                }
                Backend::Postgres => {
                    query.execute(&mut *conn).await.map_err(unavailable)?;
                    // The head's values written in (a number and 64 hex digits, both made
                    // here): with no parameters, the head and COMMIT go in one trip.
                    debug_assert!(last.bytes().all(|b| b.is_ascii_hexdigit()));
                    conn.execute(
                        format!(
                            "{HEAD_UPSERT} VALUES (1, {seq}, '{last}') {HEAD_CONFLICT}; COMMIT"
                        )
                        .as_str(),
                    )
                    .await
                    .map_err(unavailable)?;
                }
            }
            Ok(seqs)
        }
        .await;
        if result.is_err() {
            // Whatever part of the transaction was begun (none, when the lock was not taken:
            // then this fails, ignored).
            let _ = conn.execute("ROLLBACK").await;
        }
        result
    }

    async fn audit_rows(&self) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    seq: get(r, "seq")?,
                    at: instant(get(r, "at")?)?,
                    actor: get(r, "actor")?,
                    action: get(r, "action")?,
                    subject: get(r, "subject")?,
                    detail: get(r, "detail")?,
                    hash: get(r, "hash")?,
                })
            })
            .collect()
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| Ok((get(&r, "seq")?, get(&r, "hash")?)))
            .transpose()
    }

    async fn last_care(&self) -> Result<Vec<LastCare>> {
        // Both sources of "care": in-person visits (dates) and finalized sessions (instants).
        let rows = sqlx::query(
            "SELECT p.id AS patient, p.kine_id AS kine,
                    (SELECT MAX(v.date) FROM in_person_visits v WHERE v.patient_id = p.id) AS last_visit,
                    (SELECT MAX(s.starts_at) FROM sessions s WHERE s.patient_id = p.id AND s.finalized_at IS NOT NULL) AS last_session,
                    p.created_at AS created_at
             FROM patients p ORDER BY p.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                let visit = get::<Option<String>>(r, "last_visit")?
                    .map(|d| date(&d))
                    .transpose()?;
                let session =
                    opt_instant(get(r, "last_session")?)?.map(telesoin_core::model::local_date);
                let created = telesoin_core::model::local_date(instant(get(r, "created_at")?)?);
                Ok(LastCare {
                    patient: PatientId(uuid(&get::<String>(r, "patient")?)?),
                    kine: KineId(uuid(&get::<String>(r, "kine")?)?),
                    // A patient never cared for is kept from their creation.
                    last_care: visit.into_iter().chain(session).max().unwrap_or(created),
                })
            })
            .collect()
    }

    async fn purge_patient(&self, patient: PatientId) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        conn.execute(match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        })
        .await
        .map_err(unavailable)?;
        let p = patient.to_string();
        let steps: &[&str] = &[
            "UPDATE maintenance SET purging = 1 WHERE id = 1",
            "DELETE FROM join_codes WHERE session_id IN (SELECT id FROM sessions WHERE patient_id = $1)",
            "DELETE FROM message_outbox WHERE session_id IN (SELECT id FROM sessions WHERE patient_id = $1)",
            "DELETE FROM patient_contacts WHERE patient_id = $1",
            "DELETE FROM presence_events WHERE session_id IN (SELECT id FROM sessions WHERE patient_id = $1)",
            "DELETE FROM seat_states WHERE session_id IN (SELECT id FROM sessions WHERE patient_id = $1)",
            "DELETE FROM links WHERE session_id IN (SELECT id FROM sessions WHERE patient_id = $1)",
            "DELETE FROM participants WHERE session_id IN (SELECT id FROM sessions WHERE patient_id = $1)",
            "DELETE FROM reports WHERE session_id IN (SELECT id FROM sessions WHERE patient_id = $1)",
            "DELETE FROM invoices WHERE session_id IN (SELECT id FROM sessions WHERE patient_id = $1)",
            "DELETE FROM hn_price_acceptances WHERE session_id IN (SELECT id FROM sessions WHERE patient_id = $1)",
            "DELETE FROM attestations WHERE session_id IN (SELECT id FROM sessions WHERE patient_id = $1)",
            "DELETE FROM sessions WHERE patient_id = $1",
            "DELETE FROM consents WHERE patient_id = $1",
            "DELETE FROM in_person_visits WHERE patient_id = $1",
            "DELETE FROM prescriptions WHERE patient_id = $1",
            "DELETE FROM patients WHERE id = $1",
            "UPDATE maintenance SET purging = 0 WHERE id = 1",
        ];
        let result = async {
            for &step in steps {
                let q = sqlx::query(step);
                let q = if step.contains("$1") {
                    q.bind(p.clone())
                } else {
                    q
                };
                q.execute(&mut *conn).await.map_err(unavailable)?;
            }
            Ok::<(), StoreError>(())
        }
        .await;
        match result {
            Ok(()) => conn
                .execute("COMMIT")
                .await
                .map(|_| ())
                .map_err(unavailable),
            Err(e) => {
                let _ = conn.execute("ROLLBACK").await;
                Err(e)
            }
        }
    }
}
