//! The sessions of a run, made as a platform makes them: through `/api/v1` with an API key.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::worker::Pair;

/// Sessions per bulk request (the server's maximum).
const BULK: usize = 200;

/// A client of `/api/v1` with one key.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    /// `base` is the server's URL (`https://127.0.0.1:8443`); a self-signed certificate is
    /// accepted (loopback benchmarking).
    pub fn new(base: &str, key: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Api {
            http,
            base: format!("{}/api/v1", base.trim_end_matches('/')),
            key: key.to_owned(),
        })
    }

    /// POSTs `body`, waiting out `429 Retry-After` as a platform would; any other non-2xx fails.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        loop {
            let res = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.key)
                .header("idempotency-key", Uuid::new_v4().to_string())
                .json(body)
                .send()
                .await
                .with_context(|| format!("POST {path}"))?;
            let status = res.status();
            if status.as_u16() == 429 {
                let wait = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1u64);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            let text = res.text().await?;
            if !status.is_success() {
                bail!("POST {path}: {status} {text}");
            }
            return Ok(serde_json::from_str(&text)?);
        }
    }

    /// The first kiné the key may act for.
    pub async fn first_kine(&self) -> anyhow::Result<Uuid> {
        let res = self
            .http
            .get(format!("{}/kines", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = res.status();
        let v: Value = res.json().await?;
        if !status.is_success() {
            bail!("GET /kines: {status} {v}");
        }
        Ok(v[0]["id"]
            .as_str()
            .context("the key names no kiné")?
            .parse()?)
    }

    /// A patient who may use télésoin: an in-person bilan a month ago and consent on record.
    pub async fn ready_patient(&self, kine: Uuid) -> anyhow::Result<Uuid> {
        let p = self
            .post(
                &format!("/kines/{kine}/patients"),
                &json!({"display_name": "Patient de charge", "birth_date": "1960-01-01"}),
            )
            .await?;
        let id: Uuid = p["id"].as_str().context("patient id")?.parse()?;
        let bilan = (Utc::now() - chrono::Duration::days(30)).date_naive();
        self.post(
            &format!("/kines/{kine}/patients/{id}/visits"),
            &json!({"date": bilan, "kind": "bilan"}),
        )
        .await?;
        self.post(
            &format!("/kines/{kine}/patients/{id}/consents"),
            &json!({"text_version": telesoin_core::model::CONSENT_TEXT_VERSION}),
        )
        .await?;
        Ok(id)
    }

    /// One session starting now and its kiné and patient links, one request each.
    async fn session_one_by_one(
        &self,
        kine: Uuid,
        patient: Uuid,
        auto_admit: bool,
    ) -> anyhow::Result<Pair> {
        let s = self
            .post(
                &format!("/kines/{kine}/sessions"),
                &new_session(patient, auto_admit),
            )
            .await?;
        let sid = s["id"].as_str().context("session id")?;
        let link = |role: &'static str| async move {
            self.post(
                &format!("/kines/{kine}/sessions/{sid}/links"),
                &json!({ "role": role }),
            )
            .await
        };
        let (k, p) = (link("kine").await?, link("patient").await?);
        pair_of(&k, &p)
    }

    /// `n` sessions with their kiné and patient links, through the bulk route (200 a request,
    /// each with an Idempotency-Key), or one request at a time on a server without it.
    pub async fn sessions(
        &self,
        kine: Uuid,
        patient: Uuid,
        n: usize,
        auto_admit: bool,
    ) -> anyhow::Result<Vec<Pair>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let chunk = (n - out.len()).min(BULK);
            let body = json!({
                "sessions": (0..chunk).map(|_| json!({
                    "session": new_session(patient, auto_admit),
                    "links": ["kine", "patient"],
                })).collect::<Vec<_>>(),
            });
            let made = match self
                .post(&format!("/kines/{kine}/sessions/bulk"), &body)
                .await
            {
                Ok(v) => v,
                Err(e) if out.is_empty() && e.to_string().contains(": 40") => {
                    return self
                        .sessions_one_by_one(kine, patient, n, auto_admit, 16)
                        .await;
                }
                Err(e) => return Err(e),
            };
            for item in made["items"].as_array().context("bulk items")? {
                let links = item["links"].as_array().context("bulk links")?;
                let (k, p) = (links.first(), links.get(1));
                out.push(pair_of(
                    k.context("kine link")?,
                    p.context("patient link")?,
                )?);
            }
        }
        Ok(out)
    }

    /// `n` sessions (each its kiné and patient links) for `patient` of `kine`, `concurrency`
    /// requests at a time.
    pub async fn sessions_one_by_one(
        &self,
        kine: Uuid,
        patient: Uuid,
        n: usize,
        auto_admit: bool,
        concurrency: usize,
    ) -> anyhow::Result<Vec<Pair>> {
        use futures_util::StreamExt;
        let made: Vec<anyhow::Result<Pair>> = futures_util::stream::iter(0..n)
            .map(|_| self.session_one_by_one(kine, patient, auto_admit))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        made.into_iter().collect()
    }
}

fn new_session(patient: Uuid, auto_admit: bool) -> Value {
    json!({
        "patient": patient,
        "starts_at": Utc::now(),
        "act_code": "MEMBRE",
        "auto_admit": auto_admit,
        "patient_consent_on_join": false,
    })
}

fn pair_of(kine_link: &Value, patient_link: &Value) -> anyhow::Result<Pair> {
    let field = |v: &Value, f: &str| -> anyhow::Result<String> {
        Ok(v[f]
            .as_str()
            .with_context(|| format!("link {f}"))?
            .to_owned())
    };
    Ok(Pair {
        kine_id: field(kine_link, "participant")?,
        patient_id: field(patient_link, "participant")?,
        kine_token: Some(field(kine_link, "token")?),
        patient_token: Some(field(patient_link, "token")?),
    })
}
