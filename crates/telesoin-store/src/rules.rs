//! What the rules in force in 2026 need stored (issue 9):
//! - the territory of the practice and of the patient (the convention's territory check);
//! - the legal representative who consented for a minor (name and relation, on the consent);
//! - the acceptance of an HN session's price on the join page (traced like a consent);
//! - who was attested present next to the patient (a parent or an aidant, by name and
//!   relation): an attestation, never an incident;
//! - invoice numbers: a continuous, chronological, gapless sequence per kiné. The number is
//!   taken under a lock (SQLite `BEGIN IMMEDIATE`, Postgres `LOCK TABLE ... IN EXCLUSIVE
//!   MODE`) from a per-kiné counter that never goes back, in the same transaction as the
//!   invoice row: two issuers never get the same number, a failed issue leaves no gap, and a
//!   restart continues the sequence. A session has at most one invoice: issuing again returns it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Executor;
use telesoin_core::model::Companion;
use telesoin_core::{KineId, ParticipantId, PatientId, SessionId};
use uuid::Uuid;

use crate::sql::{Backend, get, instant, ms, unavailable, uuid};
use crate::{Result, SqlStore};

/// The representative who consented for a minor patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Representative {
    pub name: String,
    /// `mere`, `pere`, `tuteur`... as the kiné or the parent wrote it.
    pub relation: String,
}

/// An HN price accepted on the join page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceAcceptance {
    pub session: SessionId,
    pub participant: ParticipantId,
    pub price_cents: i64,
    pub accepted_at: DateTime<Utc>,
}

/// A companion attested present next to the patient, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRow {
    pub session: SessionId,
    /// The seat that attested (the patient's).
    pub participant: ParticipantId,
    pub companion: Companion,
    pub name: String,
    pub relation: String,
    pub attested_at: DateTime<Utc>,
}

/// An issued invoice: the kiné's `seq`-th.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRow {
    pub kine: KineId,
    pub seq: i64,
    pub session: SessionId,
    pub issued_at: DateTime<Utc>,
}

#[async_trait]
pub trait RulesStore: Send + Sync {
    async fn practice_departement(&self, kine: KineId) -> Result<Option<String>>;
    async fn set_practice_departement(&self, kine: KineId, dep: Option<&str>) -> Result<()>;
    async fn patient_departement(&self, patient: PatientId) -> Result<Option<String>>;
    async fn set_patient_departement(&self, patient: PatientId, dep: Option<&str>) -> Result<()>;
    /// The representative of a consent, if one was recorded.
    async fn consent_representative(&self, consent: Uuid) -> Result<Option<Representative>>;
    /// Traces the acceptance of the HN price by a participant. The same price accepted again
    /// changes nothing (the first acceptance stands); another price (the kiné changed it since)
    /// replaces that participant's acceptance.
    async fn accept_hn_price(&self, a: &PriceAcceptance) -> Result<()>;
    /// The latest acceptance of the session's HN price, by anyone of the patient's side.
    async fn hn_price_acceptance(&self, session: SessionId) -> Result<Option<PriceAcceptance>>;
    /// Traces an attested presence (each attestation is kept, in order).
    async fn add_attestation(&self, a: &AttestationRow) -> Result<()>;
    /// The attestations of a session, oldest first.
    async fn attestations(&self, session: SessionId) -> Result<Vec<AttestationRow>>;
    /// The invoice of `session`, issuing it with the kiné's next number if it has none.
    async fn issue_invoice(
        &self,
        kine: KineId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<InvoiceRow>;
    async fn invoice(&self, session: SessionId) -> Result<Option<InvoiceRow>>;
    /// A kiné's invoices, by number.
    async fn invoices(&self, kine: KineId) -> Result<Vec<InvoiceRow>>;
}

fn invoice_row(r: &sqlx::any::AnyRow) -> Result<InvoiceRow> {
    Ok(InvoiceRow {
        kine: KineId(uuid(&get::<String>(r, "kine_id")?)?),
        seq: get(r, "seq")?,
        session: SessionId(uuid(&get::<String>(r, "session_id")?)?),
        issued_at: instant(get(r, "issued_at")?)?,
    })
}

#[async_trait]
impl RulesStore for SqlStore {
    async fn practice_departement(&self, kine: KineId) -> Result<Option<String>> {
        let row = sqlx::query("SELECT practice_departement FROM kines WHERE id = $1")
            .bind(kine.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        match row {
            Some(r) => get(&r, "practice_departement"),
            None => Ok(None),
        }
    }

    async fn set_practice_departement(&self, kine: KineId, dep: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE kines SET practice_departement = $1 WHERE id = $2")
            .bind(dep.map(str::to_owned))
            .bind(kine.to_string())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn patient_departement(&self, patient: PatientId) -> Result<Option<String>> {
        let row = sqlx::query("SELECT departement FROM patients WHERE id = $1")
            .bind(patient.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        match row {
            Some(r) => get(&r, "departement"),
            None => Ok(None),
        }
    }

    async fn set_patient_departement(&self, patient: PatientId, dep: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE patients SET departement = $1 WHERE id = $2")
            .bind(dep.map(str::to_owned))
            .bind(patient.to_string())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn consent_representative(&self, consent: Uuid) -> Result<Option<Representative>> {
        let row = sqlx::query(
            "SELECT representative_name, representative_relation FROM consents WHERE id = $1",
        )
        .bind(consent.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(r) = row else { return Ok(None) };
        let name: Option<String> = get(&r, "representative_name")?;
        let relation: Option<String> = get(&r, "representative_relation")?;
        Ok(name.map(|name| Representative {
            name,
            relation: relation.unwrap_or_default(),
        }))
    }

    async fn accept_hn_price(&self, a: &PriceAcceptance) -> Result<()> {
        sqlx::query(
            "INSERT INTO hn_price_acceptances (session_id, participant_id, price_cents, accepted_at) VALUES ($1, $2, $3, $4) ON CONFLICT (session_id, participant_id) DO UPDATE SET price_cents = excluded.price_cents, accepted_at = excluded.accepted_at WHERE hn_price_acceptances.price_cents <> excluded.price_cents",
        )
        .bind(a.session.to_string())
        .bind(a.participant.to_string())
        .bind(a.price_cents)
        .bind(ms(a.accepted_at))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn hn_price_acceptance(&self, session: SessionId) -> Result<Option<PriceAcceptance>> {
        let row = sqlx::query(
            "SELECT * FROM hn_price_acceptances WHERE session_id = $1 ORDER BY accepted_at DESC LIMIT 1",
        )
        .bind(session.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(PriceAcceptance {
            session,
            participant: ParticipantId(uuid(&get::<String>(&r, "participant_id")?)?),
            price_cents: get(&r, "price_cents")?,
            accepted_at: instant(get(&r, "accepted_at")?)?,
        }))
    }

    async fn add_attestation(&self, a: &AttestationRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO attestations (session_id, participant_id, companion, name, relation, attested_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(a.session.to_string())
        .bind(a.participant.to_string())
        .bind(companion_str(a.companion))
        .bind(a.name.clone())
        .bind(a.relation.clone())
        .bind(ms(a.attested_at))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn attestations(&self, session: SessionId) -> Result<Vec<AttestationRow>> {
        let rows = sqlx::query(
            "SELECT participant_id, companion, name, relation, attested_at FROM attestations WHERE session_id = $1 ORDER BY attested_at, participant_id",
        )
        .bind(session.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                let companion: String = get(r, "companion")?;
                Ok(AttestationRow {
                    session,
                    participant: ParticipantId(uuid(&get::<String>(r, "participant_id")?)?),
                    companion: match companion.as_str() {
                        "aidant" => Companion::Aidant,
                        _ => Companion::Parent,
                    },
                    name: get(r, "name")?,
                    relation: get(r, "relation")?,
                    attested_at: instant(get(r, "attested_at")?)?,
                })
            })
            .collect()
    }

    async fn issue_invoice(
        &self,
        kine: KineId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<InvoiceRow> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        // One issuer at a time, across processes and nodes.
        match self.backend {
            Backend::Sqlite => conn.execute("BEGIN IMMEDIATE").await.map_err(unavailable)?,
            Backend::Postgres => {
                conn.execute("BEGIN").await.map_err(unavailable)?;
                conn.execute("LOCK TABLE invoice_counters IN EXCLUSIVE MODE")
                    .await
                    .map_err(unavailable)?
            }
        };
        let result = async {
            let existing = sqlx::query("SELECT * FROM invoices WHERE session_id = $1")
                .bind(session.to_string())
                .fetch_optional(&mut *conn)
                .await
                .map_err(unavailable)?;
            if let Some(r) = existing {
                return invoice_row(&r);
            }
            let last = sqlx::query("SELECT last_seq FROM invoice_counters WHERE kine_id = $1")
                .bind(kine.to_string())
                .fetch_optional(&mut *conn)
                .await
                .map_err(unavailable)?;
            let last: i64 = match last {
                Some(r) => get(&r, "last_seq")?,
                None => 0,
            };
            let seq = last + 1;
            sqlx::query(
                "INSERT INTO invoice_counters (kine_id, last_seq) VALUES ($1, $2) ON CONFLICT (kine_id) DO UPDATE SET last_seq = excluded.last_seq",
            )
            .bind(kine.to_string())
            .bind(seq)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
            sqlx::query(
                "INSERT INTO invoices (kine_id, seq, session_id, issued_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(kine.to_string())
            .bind(seq)
            .bind(session.to_string())
            .bind(ms(now))
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
            Ok(InvoiceRow {
                kine,
                seq,
                session,
                issued_at: instant(ms(now))?,
            })
        }
        .await;
        match result {
            Ok(row) => {
                conn.execute("COMMIT").await.map_err(unavailable)?;
                Ok(row)
            }
            Err(e) => {
                let _ = conn.execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    async fn invoice(&self, session: SessionId) -> Result<Option<InvoiceRow>> {
        let row = sqlx::query("SELECT * FROM invoices WHERE session_id = $1")
            .bind(session.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(invoice_row).transpose()
    }

    async fn invoices(&self, kine: KineId) -> Result<Vec<InvoiceRow>> {
        let rows = sqlx::query("SELECT * FROM invoices WHERE kine_id = $1 ORDER BY seq")
            .bind(kine.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(invoice_row).collect()
    }
}

fn companion_str(c: Companion) -> &'static str {
    match c {
        Companion::Parent => "parent",
        Companion::Aidant => "aidant",
    }
}
