//! Platforms: the sites and software that embed telesoin through `/api/v1`.
//!
//! - a platform, its issuer (the `iss` of the join tokens it signs) and the kinés who gave it
//!   access to their patients and sessions;
//! - API keys, kept as a SHA-256 hash only, with the kinés and operations they are scoped to;
//! - the public keys (JWK) a platform signs join tokens with, and the roles each may mint;
//! - the sessions scheduled through a platform (the only ones it may mint tokens for);
//! - idempotency: the first answer to a POST with an `Idempotency-Key`;
//! - webhooks: endpoints, and the durable outbox the delivery worker drains in order.
//!
//! Like the rest of the store, this module stores and reads: which key may do what is decided by
//! the server from what is returned here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use telesoin_core::model::Role;
use telesoin_core::{KineId, ParticipantId, SessionId};
use uuid::Uuid;

use crate::sql::{get, instant, ms, unavailable, uuid};
use crate::{Result, SqlStore, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformRow {
    pub id: Uuid,
    pub name: String,
    pub issuer: String,
    pub created_at: DateTime<Utc>,
}

/// An API key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub platform: Uuid,
    /// SHA-256 of the key, hex.
    pub key_hash: String,
    /// The first characters of the key (not secret), to tell keys apart.
    pub prefix: String,
    pub kines: Vec<KineId>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformJwkRow {
    pub kid: String,
    pub platform: Uuid,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// The public JWK, as registered (JSON text).
    pub jwk: String,
    pub roles: Vec<Role>,
    pub created_at: DateTime<Utc>,
}

/// What an `Idempotency-Key` already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotency {
    /// First use: the caller runs the request, then calls `idempotency_finish`.
    New,
    /// Used before; `status` 0 means the first request is still running.
    Seen {
        request_hash: String,
        status: u16,
        body: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpointRow {
    pub id: Uuid,
    pub platform: Uuid,
    pub url: String,
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

/// A delivery to queue: one event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub event_id: Uuid,
    pub endpoint: Uuid,
    /// Deliveries with the same key go out in order (the session, or the patient).
    pub order_key: String,
    pub event_type: String,
    pub body: String,
}

/// A queued delivery, due now, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub seq: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub body: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub url: String,
    pub secret: String,
}

#[async_trait]
pub trait PlatformStore: Send + Sync {
    async fn create_platform(&self, platform: &PlatformRow) -> Result<()>;
    async fn platform(&self, id: Uuid) -> Result<Option<PlatformRow>>;
    async fn platforms(&self) -> Result<Vec<PlatformRow>>;
    /// Gives a platform access to a kiné's patients and sessions (idempotent).
    async fn attach_kine(&self, platform: Uuid, kine: KineId, now: DateTime<Utc>) -> Result<()>;
    async fn platform_kines(&self, platform: Uuid) -> Result<Vec<KineId>>;
    /// The platforms a kiné gave access to.
    async fn kine_platforms(&self, kine: KineId) -> Result<Vec<Uuid>>;

    /// Stores a key and attaches its kinés to the platform.
    async fn create_api_key(&self, key: &ApiKeyRow) -> Result<()>;
    /// The unrevoked key with this hash.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRow>>;
    async fn api_keys(&self, platform: Uuid) -> Result<Vec<ApiKeyRow>>;
    /// Revokes a key of this platform; false if there was none to revoke.
    async fn revoke_api_key(&self, platform: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<bool>;

    async fn record_platform_session(&self, session: SessionId, platform: Uuid) -> Result<()>;
    /// The platform a session was scheduled through, if any.
    async fn session_platform(&self, session: SessionId) -> Result<Option<Uuid>>;
    /// The role of a participant of this session, if it is one.
    async fn participant_role(
        &self,
        session: SessionId,
        participant: ParticipantId,
    ) -> Result<Option<Role>>;

    async fn add_jwk(&self, jwk: &PlatformJwkRow) -> Result<()>;
    /// The unrevoked key with this `kid`.
    async fn jwk(&self, kid: &str) -> Result<Option<PlatformJwkRow>>;
    async fn jwks(&self, platform: Uuid) -> Result<Vec<PlatformJwkRow>>;
    async fn revoke_jwk(&self, platform: Uuid, kid: &str, at: DateTime<Utc>) -> Result<bool>;

    /// Claims an idempotency key for a request (status 0), or says what it already holds.
    async fn idempotency_begin(
        &self,
        platform: Uuid,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Idempotency>;
    /// Stores the first answer.
    async fn idempotency_finish(
        &self,
        platform: Uuid,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<()>;
    /// Forgets a claim whose request failed before answering (it may be retried).
    async fn idempotency_abort(&self, platform: Uuid, key: &str) -> Result<()>;

    async fn create_webhook(&self, endpoint: &WebhookEndpointRow) -> Result<()>;
    async fn webhooks(&self, platform: Uuid) -> Result<Vec<WebhookEndpointRow>>;
    async fn delete_webhook(&self, platform: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<bool>;
    /// The live endpoints of every platform this kiné gave access to.
    async fn webhook_targets(&self, kine: KineId) -> Result<Vec<WebhookEndpointRow>>;
    /// Whether any platform has a live endpoint (one indexed read; the outbox skips its
    /// look-ups while none is configured).
    async fn any_webhook(&self) -> Result<bool>;

    /// Queues deliveries, due at once.
    async fn enqueue(&self, deliveries: &[NewDelivery], now: DateTime<Utc>) -> Result<()>;
    /// Pending deliveries due at `now`, each the oldest pending one of its (endpoint, order
    /// key): a later event of a session waits until the earlier one is delivered or given up.
    async fn due_deliveries(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<DueDelivery>>;
    /// Takes a delivery until `until` (several workers, several nodes); true if this caller has it.
    async fn claim_delivery(
        &self,
        seq: i64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    async fn delivery_succeeded(&self, seq: i64, status: u16, now: DateTime<Utc>) -> Result<()>;
    /// Records a failed attempt: retried at `next`, or given up when `next` is None.
    async fn delivery_failed(
        &self,
        seq: i64,
        status: Option<u16>,
        next: Option<DateTime<Utc>>,
    ) -> Result<()>;
}

fn platform_row(r: &AnyRow) -> Result<PlatformRow> {
    Ok(PlatformRow {
        id: uuid(&get::<String>(r, "id")?)?,
        name: get(r, "name")?,
        issuer: get(r, "issuer")?,
        created_at: instant(get(r, "created_at")?)?,
    })
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn roles(s: &str) -> Result<Vec<Role>> {
    s.split_whitespace()
        .map(|r| Role::parse(r).ok_or_else(|| StoreError::Corrupt("role".into())))
        .collect()
}

fn jwk_row(r: &AnyRow) -> Result<PlatformJwkRow> {
    Ok(PlatformJwkRow {
        kid: get(r, "kid")?,
        platform: uuid(&get::<String>(r, "platform_id")?)?,
        alg: get(r, "alg")?,
        jwk: get(r, "jwk")?,
        roles: roles(&get::<String>(r, "roles")?)?,
        created_at: instant(get(r, "created_at")?)?,
    })
}

fn webhook_row(r: &AnyRow) -> Result<WebhookEndpointRow> {
    Ok(WebhookEndpointRow {
        id: uuid(&get::<String>(r, "id")?)?,
        platform: uuid(&get::<String>(r, "platform_id")?)?,
        url: get(r, "url")?,
        secret: get(r, "secret")?,
        created_at: instant(get(r, "created_at")?)?,
    })
}

impl SqlStore {
    async fn api_key_row(&self, r: &AnyRow) -> Result<ApiKeyRow> {
        let id = uuid(&get::<String>(r, "id")?)?;
        let kines =
            sqlx::query("SELECT kine_id FROM api_key_kines WHERE key_id = $1 ORDER BY kine_id")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?
                .iter()
                .map(|k| Ok(KineId(uuid(&get::<String>(k, "kine_id")?)?)))
                .collect::<Result<Vec<_>>>()?;
        Ok(ApiKeyRow {
            id,
            platform: uuid(&get::<String>(r, "platform_id")?)?,
            key_hash: get(r, "key_hash")?,
            prefix: get(r, "prefix")?,
            kines,
            scopes: words(&get::<String>(r, "scopes")?),
            created_at: instant(get(r, "created_at")?)?,
            revoked_at: get::<Option<i64>>(r, "revoked_at")?
                .map(instant)
                .transpose()?,
        })
    }
}

#[async_trait]
impl PlatformStore for SqlStore {
    async fn create_platform(&self, p: &PlatformRow) -> Result<()> {
        sqlx::query("INSERT INTO platforms (id, name, issuer, created_at) VALUES ($1, $2, $3, $4)")
            .bind(p.id.to_string())
            .bind(&p.name)
            .bind(&p.issuer)
            .bind(ms(p.created_at))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn platform(&self, id: Uuid) -> Result<Option<PlatformRow>> {
        let row = sqlx::query("SELECT * FROM platforms WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| platform_row(&r)).transpose()
    }

    async fn platforms(&self) -> Result<Vec<PlatformRow>> {
        let rows = sqlx::query("SELECT * FROM platforms ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(platform_row).collect()
    }

    async fn attach_kine(&self, platform: Uuid, kine: KineId, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO platform_kines (platform_id, kine_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (platform_id, kine_id) DO NOTHING",
        )
        .bind(platform.to_string())
        .bind(kine.to_string())
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn platform_kines(&self, platform: Uuid) -> Result<Vec<KineId>> {
        let rows = sqlx::query(
            "SELECT kine_id FROM platform_kines WHERE platform_id = $1 ORDER BY created_at, kine_id",
        )
        .bind(platform.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| Ok(KineId(uuid(&get::<String>(r, "kine_id")?)?)))
            .collect()
    }

    async fn kine_platforms(&self, kine: KineId) -> Result<Vec<Uuid>> {
        let rows = sqlx::query("SELECT platform_id FROM platform_kines WHERE kine_id = $1")
            .bind(kine.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| uuid(&get::<String>(r, "platform_id")?))
            .collect()
    }

    async fn create_api_key(&self, k: &ApiKeyRow) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO api_keys (id, platform_id, key_hash, prefix, scopes, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(k.id.to_string())
        .bind(k.platform.to_string())
        .bind(&k.key_hash)
        .bind(&k.prefix)
        .bind(k.scopes.join(" "))
        .bind(ms(k.created_at))
        .bind(k.revoked_at.map(ms))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        for kine in &k.kines {
            sqlx::query("INSERT INTO api_key_kines (key_id, kine_id) VALUES ($1, $2)")
                .bind(k.id.to_string())
                .bind(kine.to_string())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            sqlx::query(
                "INSERT INTO platform_kines (platform_id, kine_id, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (platform_id, kine_id) DO NOTHING",
            )
            .bind(k.platform.to_string())
            .bind(kine.to_string())
            .bind(ms(k.created_at))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRow>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        match row {
            Some(r) => Ok(Some(self.api_key_row(&r).await?)),
            None => Ok(None),
        }
    }

    async fn api_keys(&self, platform: Uuid) -> Result<Vec<ApiKeyRow>> {
        let rows =
            sqlx::query("SELECT * FROM api_keys WHERE platform_id = $1 ORDER BY created_at, id")
                .bind(platform.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.api_key_row(r).await?);
        }
        Ok(out)
    }

    async fn revoke_api_key(&self, platform: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND platform_id = $3 AND revoked_at IS NULL",
        )
        .bind(ms(at))
        .bind(id.to_string())
        .bind(platform.to_string())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(r.rows_affected() == 1)
    }

    async fn record_platform_session(&self, session: SessionId, platform: Uuid) -> Result<()> {
        sqlx::query("INSERT INTO platform_sessions (session_id, platform_id) VALUES ($1, $2)")
            .bind(session.to_string())
            .bind(platform.to_string())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn session_platform(&self, session: SessionId) -> Result<Option<Uuid>> {
        let row = sqlx::query("SELECT platform_id FROM platform_sessions WHERE session_id = $1")
            .bind(session.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| uuid(&get::<String>(&r, "platform_id")?))
            .transpose()
    }

    async fn participant_role(
        &self,
        session: SessionId,
        participant: ParticipantId,
    ) -> Result<Option<Role>> {
        let row = sqlx::query("SELECT role FROM participants WHERE id = $1 AND session_id = $2")
            .bind(participant.to_string())
            .bind(session.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| {
            Role::parse(&get::<String>(&r, "role")?)
                .ok_or_else(|| StoreError::Corrupt("role".into()))
        })
        .transpose()
    }

    async fn add_jwk(&self, j: &PlatformJwkRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO platform_jwks (kid, platform_id, alg, jwk, roles, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&j.kid)
        .bind(j.platform.to_string())
        .bind(&j.alg)
        .bind(&j.jwk)
        .bind(
            j.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        )
        .bind(ms(j.created_at))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn jwk(&self, kid: &str) -> Result<Option<PlatformJwkRow>> {
        let row = sqlx::query("SELECT * FROM platform_jwks WHERE kid = $1 AND revoked_at IS NULL")
            .bind(kid)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| jwk_row(&r)).transpose()
    }

    async fn jwks(&self, platform: Uuid) -> Result<Vec<PlatformJwkRow>> {
        let rows = sqlx::query(
            "SELECT * FROM platform_jwks WHERE platform_id = $1 AND revoked_at IS NULL ORDER BY created_at, kid",
        )
        .bind(platform.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(jwk_row).collect()
    }

    async fn revoke_jwk(&self, platform: Uuid, kid: &str, at: DateTime<Utc>) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE platform_jwks SET revoked_at = $1 WHERE kid = $2 AND platform_id = $3 AND revoked_at IS NULL",
        )
        .bind(ms(at))
        .bind(kid)
        .bind(platform.to_string())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(r.rows_affected() == 1)
    }

    async fn idempotency_begin(
        &self,
        platform: Uuid,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Idempotency> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (platform_id, key, request_hash, status, body, created_at) VALUES ($1, $2, $3, 0, NULL, $4)
             ON CONFLICT (platform_id, key) DO NOTHING",
        )
        .bind(platform.to_string())
        .bind(key)
        .bind(request_hash)
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        if inserted.rows_affected() == 1 {
            return Ok(Idempotency::New);
        }
        let r = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE platform_id = $1 AND key = $2",
        )
        .bind(platform.to_string())
        .bind(key)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(Idempotency::Seen {
            request_hash: get(&r, "request_hash")?,
            status: u16::try_from(get::<i64>(&r, "status")?)
                .map_err(|_| StoreError::Corrupt("status".into()))?,
            body: get(&r, "body")?,
        })
    }

    async fn idempotency_finish(
        &self,
        platform: Uuid,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = $1, body = $2 WHERE platform_id = $3 AND key = $4",
        )
        .bind(i64::from(status))
        .bind(body)
        .bind(platform.to_string())
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn idempotency_abort(&self, platform: Uuid, key: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE platform_id = $1 AND key = $2 AND status = 0",
        )
        .bind(platform.to_string())
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn create_webhook(&self, w: &WebhookEndpointRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, platform_id, url, secret, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(w.id.to_string())
        .bind(w.platform.to_string())
        .bind(&w.url)
        .bind(&w.secret)
        .bind(ms(w.created_at))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn webhooks(&self, platform: Uuid) -> Result<Vec<WebhookEndpointRow>> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_endpoints WHERE platform_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
        )
        .bind(platform.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(webhook_row).collect()
    }

    async fn delete_webhook(&self, platform: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET deleted_at = $1 WHERE id = $2 AND platform_id = $3 AND deleted_at IS NULL",
        )
        .bind(ms(at))
        .bind(id.to_string())
        .bind(platform.to_string())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(r.rows_affected() == 1)
    }

    async fn webhook_targets(&self, kine: KineId) -> Result<Vec<WebhookEndpointRow>> {
        let rows = sqlx::query(
            "SELECT w.* FROM webhook_endpoints w JOIN platform_kines pk ON pk.platform_id = w.platform_id
             WHERE pk.kine_id = $1 AND w.deleted_at IS NULL ORDER BY w.created_at, w.id",
        )
        .bind(kine.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(webhook_row).collect()
    }

    async fn any_webhook(&self) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 AS one FROM webhook_endpoints WHERE deleted_at IS NULL LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        Ok(row.is_some())
    }

    async fn enqueue(&self, deliveries: &[NewDelivery], now: DateTime<Utc>) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        for d in deliveries {
            sqlx::query(
                "INSERT INTO webhook_outbox (event_id, endpoint_id, order_key, event_type, body, state, attempts, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
            )
            .bind(d.event_id.to_string())
            .bind(d.endpoint.to_string())
            .bind(&d.order_key)
            .bind(&d.event_type)
            .bind(&d.body)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn due_deliveries(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<DueDelivery>> {
        let rows = sqlx::query(
            "SELECT o.seq, o.event_id, o.event_type, o.body, o.attempts, o.created_at, w.url, w.secret
             FROM webhook_outbox o JOIN webhook_endpoints w ON w.id = o.endpoint_id
             WHERE o.state = 'pending' AND o.next_attempt_at <= $1
               AND (o.locked_until IS NULL OR o.locked_until <= $1)
               AND NOT EXISTS (SELECT 1 FROM webhook_outbox p
                               WHERE p.endpoint_id = o.endpoint_id AND p.order_key = o.order_key
                                 AND p.state = 'pending' AND p.seq < o.seq)
             ORDER BY o.seq LIMIT $2",
        )
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(DueDelivery {
                    seq: get(r, "seq")?,
                    event_id: uuid(&get::<String>(r, "event_id")?)?,
                    event_type: get(r, "event_type")?,
                    body: get(r, "body")?,
                    attempts: get(r, "attempts")?,
                    created_at: instant(get(r, "created_at")?)?,
                    url: get(r, "url")?,
                    secret: get(r, "secret")?,
                })
            })
            .collect()
    }

    async fn claim_delivery(
        &self,
        seq: i64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE webhook_outbox SET locked_until = $1
             WHERE seq = $2 AND state = 'pending' AND (locked_until IS NULL OR locked_until <= $3)",
        )
        .bind(ms(until))
        .bind(seq)
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(r.rows_affected() == 1)
    }

    async fn delivery_succeeded(&self, seq: i64, status: u16, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_outbox SET state = 'delivered', attempts = attempts + 1, last_status = $1, delivered_at = $2, locked_until = NULL WHERE seq = $3",
        )
        .bind(i64::from(status))
        .bind(ms(now))
        .bind(seq)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn delivery_failed(
        &self,
        seq: i64,
        status: Option<u16>,
        next: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let q = match next {
            Some(_) => {
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_status = $1, next_attempt_at = $2, locked_until = NULL WHERE seq = $3"
            }
            None => {
                "UPDATE webhook_outbox SET state = 'failed', attempts = attempts + 1, last_status = $1, next_attempt_at = COALESCE($2, next_attempt_at), locked_until = NULL WHERE seq = $3"
            }
        };
        sqlx::query(q)
            .bind(status.map(i64::from))
            .bind(next.map(ms))
            .bind(seq)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
