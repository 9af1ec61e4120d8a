//! Identity: the patient's INS as entered (checked by `telesoin_core::ins` before it is stored,
//! and again when read back), the kiné found by RPPS, and the OpenID Connect login state (the
//! pending authorization requests, and how each web session was opened).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use telesoin_core::ins::{IdentityInput, PatientIdentity};
use telesoin_core::model::Kine;
use telesoin_core::{KineId, PatientId};

use crate::sql::{date, get, hex, instant, ms, unavailable};
use crate::{Result, SqlStore};

/// A patient's INS as stored: the fields of an [`IdentityInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsRow {
    pub status: String,
    pub matricule: Option<String>,
    pub oid: Option<String>,
    pub birth_names: String,
    pub first_names: String,
    pub birth_date: NaiveDate,
    pub sex: String,
    pub birth_place: String,
    pub updated_at: DateTime<Utc>,
}

impl InsRow {
    /// The row of a checked identity.
    pub fn from_identity(id: &PatientIdentity, now: DateTime<Utc>) -> Self {
        InsRow {
            status: id.status.as_str().to_owned(),
            matricule: id.matricule.as_ref().map(|m| m.value().to_owned()),
            oid: id
                .matricule
                .as_ref()
                .map(|m| m.authority().oid().to_owned()),
            birth_names: id.traits.birth_names.clone(),
            first_names: id.traits.first_names.clone(),
            birth_date: id.traits.birth_date,
            sex: id.traits.sex.as_str().to_owned(),
            birth_place: id.traits.birth_place.clone(),
            updated_at: now,
        }
    }

    /// Checks the stored row again (parse, don't trust): a hand-edited row gives an error.
    pub fn identity(
        &self,
        record_birth_date: NaiveDate,
    ) -> std::result::Result<PatientIdentity, telesoin_core::RefusalCode> {
        telesoin_core::ins::check(&IdentityInput {
            status: &self.status,
            matricule: self.matricule.as_deref(),
            oid: self.oid.as_deref(),
            birth_names: &self.birth_names,
            first_names: &self.first_names,
            birth_date: self.birth_date,
            sex: &self.sex,
            birth_place: &self.birth_place,
            record_birth_date,
        })
    }
}

/// A pending OpenID Connect authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcLogin {
    pub nonce: String,
    pub verifier: String,
    pub expires_at: DateTime<Utc>,
}

#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Sets (or replaces) the INS of this kiné's patient; false if the patient is not theirs.
    async fn set_patient_ins(&self, kine: KineId, patient: PatientId, ins: &InsRow)
    -> Result<bool>;
    async fn patient_ins(&self, patient: PatientId) -> Result<Option<InsRow>>;
    /// The kiné with this RPPS number (the OpenID Connect login's match).
    async fn kine_by_rpps(&self, rpps: &str) -> Result<Option<Kine>>;
    async fn create_oidc_login(&self, state_hash: &[u8], login: &OidcLogin) -> Result<()>;
    /// Takes the pending request for this state, once: a second call (a replay) finds nothing,
    /// and so does a call after it expired at `now`.
    async fn take_oidc_login(
        &self,
        state_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<OidcLogin>>;
    /// Records how a web session was opened (`password` or `oidc`) and the provider's ID token.
    async fn set_web_session_login(
        &self,
        token_hash: &[u8],
        method: &str,
        id_token: Option<&str>,
    ) -> Result<()>;
    /// How this web session was opened, and the ID token for the logout at the provider.
    async fn web_session_login(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<(String, Option<String>)>>;
}

#[async_trait]
impl IdentityStore for SqlStore {
    async fn set_patient_ins(
        &self,
        kine: KineId,
        patient: PatientId,
        ins: &InsRow,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let owned = sqlx::query("SELECT id FROM patients WHERE id = $1 AND kine_id = $2")
            .bind(patient.to_string())
            .bind(kine.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        if owned.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM patient_ins WHERE patient_id = $1")
            .bind(patient.to_string())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO patient_ins (patient_id, status, matricule, oid, birth_names, first_names, birth_date, sex, birth_place, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(patient.to_string())
        .bind(&ins.status)
        .bind(ins.matricule.as_deref())
        .bind(ins.oid.as_deref())
        .bind(&ins.birth_names)
        .bind(&ins.first_names)
        .bind(ins.birth_date.to_string())
        .bind(&ins.sex)
        .bind(&ins.birth_place)
        .bind(ms(ins.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn patient_ins(&self, patient: PatientId) -> Result<Option<InsRow>> {
        let row = sqlx::query("SELECT * FROM patient_ins WHERE patient_id = $1")
            .bind(patient.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| {
            Ok(InsRow {
                status: get(&r, "status")?,
                matricule: get(&r, "matricule")?,
                oid: get(&r, "oid")?,
                birth_names: get(&r, "birth_names")?,
                first_names: get(&r, "first_names")?,
                birth_date: date(&get::<String>(&r, "birth_date")?)?,
                sex: get(&r, "sex")?,
                birth_place: get(&r, "birth_place")?,
                updated_at: instant(get(&r, "updated_at")?)?,
            })
        })
        .transpose()
    }

    async fn kine_by_rpps(&self, rpps: &str) -> Result<Option<Kine>> {
        let row = sqlx::query("SELECT id FROM kines WHERE rpps = $1")
            .bind(rpps)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        match row {
            Some(r) => {
                let id = KineId(crate::sql::uuid(&get::<String>(&r, "id")?)?);
                crate::KineStore::kine(self, id).await
            }
            None => Ok(None),
        }
    }

    async fn create_oidc_login(&self, state_hash: &[u8], login: &OidcLogin) -> Result<()> {
        sqlx::query(
            "INSERT INTO oidc_logins (state_hash, nonce, verifier, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hex(state_hash))
        .bind(&login.nonce)
        .bind(&login.verifier)
        .bind(ms(login.expires_at))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn take_oidc_login(
        &self,
        state_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<OidcLogin>> {
        // Expired requests go at the same time, so the table does not grow with abandoned logins.
        sqlx::query("DELETE FROM oidc_logins WHERE expires_at <= $1")
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        // One DELETE ... RETURNING: of two concurrent callbacks with the same state, one wins.
        let row = sqlx::query(
            "DELETE FROM oidc_logins WHERE state_hash = $1 RETURNING nonce, verifier, expires_at",
        )
        .bind(hex(state_hash))
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|r| {
            Ok(OidcLogin {
                nonce: get(&r, "nonce")?,
                verifier: get(&r, "verifier")?,
                expires_at: instant(get(&r, "expires_at")?)?,
            })
        })
        .transpose()
    }

    async fn set_web_session_login(
        &self,
        token_hash: &[u8],
        method: &str,
        id_token: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO web_session_logins (token_hash, method, id_token) VALUES ($1, $2, $3)",
        )
        .bind(hex(token_hash))
        .bind(method)
        .bind(id_token)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn web_session_login(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<(String, Option<String>)>> {
        let row =
            sqlx::query("SELECT method, id_token FROM web_session_logins WHERE token_hash = $1")
                .bind(hex(token_hash))
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        row.map(|r| Ok((get(&r, "method")?, get(&r, "id_token")?)))
            .transpose()
    }
}
