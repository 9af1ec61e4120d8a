//! A small OpenID Connect relying party: discovery, the authorization URL (PKCE S256, `state`,
//! `nonce`), the code exchange (client secret or `private_key_jwt`), the ID token's checks and
//! userinfo. Hand-written over `reqwest` and `jsonwebtoken` (already dependencies): the OIDC
//! crates pull a second HTTP and crypto stack.
//!
//! The ID token is checked for: an asymmetric algorithm the provider's JWKS has a key for (an
//! unknown `kid` refetches the JWKS once: the provider rotated its keys), the signature, `iss` =
//! the discovered issuer = the configured one, `aud` holding our client id (and `azp` when
//! several), `exp` and `iat` against `now` with a small leeway, the `nonce` we sent, and the
//! `acr` we accept. Nothing here logs a token or a claim's value.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::RwLock;
use rand::RngCore;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use telesoin_core::RefusalCode;

use crate::config::Config;

/// How long a discovery document is trusted before it is fetched again.
const DISCOVERY_TTL: StdDuration = StdDuration::from_secs(3600);
/// How long the JWKS is kept (an unknown `kid` refetches it anyway).
const JWKS_TTL: StdDuration = StdDuration::from_secs(3600);
/// Clock skew allowed on `exp` and `iat`.
const LEEWAY_SECONDS: i64 = 60;
/// Largest answer read from the provider.
const MAX_BODY: usize = 256 * 1024;

/// What went wrong, as the kiné is told (the cause goes to the log, without any token).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider cannot be reached or answered garbage.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The answer does not pass a check (state, code, nonce, signature, issuer, audience, time).
    #[error("login refused: {0}")]
    Invalid(String),
    /// The authentication level is not one we accept.
    #[error("acr not accepted")]
    Acr,
}

impl OidcError {
    pub fn code(&self) -> RefusalCode {
        match self {
            OidcError::Unavailable(_) => RefusalCode::OidcUnavailable,
            OidcError::Invalid(_) => RefusalCode::OidcFailed,
            OidcError::Acr => RefusalCode::OidcAcr,
        }
    }
}

fn invalid(why: impl Into<String>) -> OidcError {
    OidcError::Invalid(why.into())
}

/// How we authenticate to the token endpoint.
pub enum ClientAuth {
    /// `client_secret_basic`.
    Secret(String),
    /// `private_key_jwt`: a short JWT signed with our key, its public half registered.
    PrivateKey {
        key: EncodingKey,
        alg: Algorithm,
        kid: Option<String>,
    },
}

/// The provider's discovery document (the fields we use).
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    id_token: String,
    #[serde(default)]
    access_token: Option<String>,
}

/// The ID token claims we check.
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub acr: Option<String>,
    #[serde(default)]
    pub azp: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, who: &str) -> bool {
        match self {
            Audience::One(a) => a == who,
            Audience::Many(v) => v.iter().any(|a| a == who),
        }
    }

    fn len(&self) -> usize {
        match self {
            Audience::One(_) => 1,
            Audience::Many(v) => v.len(),
        }
    }
}

/// A login that passed every check: the provider's subject, how strongly it authenticated, the
/// userinfo claims, and the raw ID token (kept for the logout at the provider).
#[derive(Debug, Clone)]
pub struct VerifiedLogin {
    pub claims: IdClaims,
    pub userinfo: Value,
    pub id_token: String,
}

/// What to send the browser to, and what to remember until it comes back.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

/// The relying party, built once from the configuration.
pub struct OidcClient {
    pub issuer: String,
    pub client_id: String,
    auth: ClientAuth,
    scopes: Vec<String>,
    acr_values: Vec<String>,
    pub rpps_claim: String,
    pub label: String,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
    http: reqwest::Client,
    discovery: RwLock<Option<(Arc<Discovery>, Instant)>>,
    jwks: RwLock<Option<(Arc<JwkSet>, Instant)>>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The PKCE S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

const ACCEPTED_ALGS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

impl OidcClient {
    /// The client `cfg` describes, or None when no `oidc_client_id` is set (login by password
    /// only). Reads the private key file for `private_key_jwt`.
    pub fn from_config(cfg: &Config, public_url: &str) -> anyhow::Result<Option<Self>> {
        let Some(client_id) = cfg.oidc_client_id.clone() else {
            return Ok(None);
        };
        let auth = match (&cfg.oidc_private_key, &cfg.oidc_client_secret) {
            (Some(path), _) => {
                let pem = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("cannot read oidc_private_key {}: {e}", path.display())
                })?;
                let (key, alg) = match EncodingKey::from_rsa_pem(&pem) {
                    Ok(k) => (k, Algorithm::RS256),
                    Err(_) => (
                        EncodingKey::from_ec_pem(&pem).map_err(|_| {
                            anyhow::anyhow!(
                                "oidc_private_key {} must be an RSA or EC P-256 private key in PEM",
                                path.display()
                            )
                        })?,
                        Algorithm::ES256,
                    ),
                };
                ClientAuth::PrivateKey {
                    key,
                    alg,
                    kid: cfg.oidc_private_key_id.clone(),
                }
            }
            (None, Some(secret)) => ClientAuth::Secret(secret.clone()),
            (None, None) => {
                anyhow::bail!("oidc_client_id needs oidc_client_secret or oidc_private_key")
            }
        };
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(StdDuration::from_secs(cfg.oidc_timeout_seconds))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("telesoin-oidc/1")
            .build()?;
        Ok(Some(OidcClient {
            issuer: cfg.oidc_issuer.trim_end_matches('/').to_owned(),
            client_id,
            auth,
            scopes: cfg.oidc_scopes.clone(),
            acr_values: cfg.oidc_acr_values.clone(),
            rpps_claim: cfg.oidc_rpps_claim.clone(),
            label: cfg.oidc_label.clone(),
            redirect_uri: format!("{public_url}/api/login/oidc/callback"),
            post_logout_redirect_uri: format!("{public_url}/app/"),
            http,
            discovery: RwLock::new(None),
            jwks: RwLock::new(None),
        }))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let res = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(format!("GET {url}: {e}")))?;
        if !res.status().is_success() {
            return Err(OidcError::Unavailable(format!(
                "GET {url}: HTTP {}",
                res.status()
            )));
        }
        read_json(res).await
    }

    /// The discovery document, cached; fetched again when stale.
    pub async fn discovery(&self) -> Result<Arc<Discovery>, OidcError> {
        if let Some((d, at)) = self.discovery.read().as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(d.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let d: Discovery = self.get_json(&url).await?;
        // OpenID Connect Discovery §4.3: the issuer it names is the one we asked.
        if d.issuer.trim_end_matches('/') != self.issuer {
            return Err(OidcError::Unavailable(
                "the discovery document names another issuer".into(),
            ));
        }
        let d = Arc::new(d);
        *self.discovery.write() = Some((d.clone(), Instant::now()));
        Ok(d)
    }

    async fn jwks(&self, d: &Discovery, refresh: bool) -> Result<Arc<JwkSet>, OidcError> {
        if !refresh
            && let Some((k, at)) = self.jwks.read().as_ref()
            && at.elapsed() < JWKS_TTL
        {
            return Ok(k.clone());
        }
        let set: JwkSet = self.get_json(&d.jwks_uri).await?;
        let set = Arc::new(set);
        *self.jwks.write() = Some((set.clone(), Instant::now()));
        Ok(set)
    }

    /// A new authorization request: the URL to send the browser to, with fresh `state`, `nonce`
    /// and PKCE verifier (the caller stores them).
    pub fn authorize(&self, d: &Discovery) -> Result<Authorization, OidcError> {
        let (state, nonce, verifier) = (random_token(), random_token(), random_token());
        let scope = self.scopes.join(" ");
        let challenge = pkce_challenge(&verifier);
        let acr = self.acr_values.join(" ");
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("scope", scope.as_str()),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if !acr.is_empty() {
            params.push(("acr_values", acr.as_str()));
        }
        let url = reqwest::Url::parse_with_params(&d.authorization_endpoint, &params)
            .map_err(|e| OidcError::Unavailable(format!("authorization_endpoint: {e}")))?;
        Ok(Authorization {
            url: url.into(),
            state,
            nonce,
            verifier,
        })
    }

    fn client_assertion(&self, d: &Discovery, now: DateTime<Utc>) -> Result<String, OidcError> {
        let ClientAuth::PrivateKey { key, alg, kid } = &self.auth else {
            return Err(invalid("no private key"));
        };
        let mut header = Header::new(*alg);
        header.kid = kid.clone();
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": d.token_endpoint,
            "jti": random_token(),
            "iat": now.timestamp(),
            "exp": now.timestamp() + 60,
        });
        jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| invalid(format!("client assertion: {e}")))
    }

    /// RFC 9207: an `iss` in the authorization response must be our provider's (a mix-up with
    /// another provider otherwise). Absent is accepted (not every provider sends it).
    pub async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), OidcError> {
        let Some(iss) = iss else {
            return Ok(());
        };
        let d = self.discovery().await?;
        if iss == d.issuer {
            Ok(())
        } else {
            Err(invalid("authorization response from another issuer"))
        }
    }

    /// Exchanges the code (with the PKCE verifier), checks the ID token, reads userinfo.
    pub async fn finish(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedLogin, OidcError> {
        let d = self.discovery().await?;
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("code_verifier", verifier.to_owned()),
        ];
        let mut req = self.http.post(&d.token_endpoint);
        match &self.auth {
            ClientAuth::Secret(secret) => {
                req = req.basic_auth(form_encode(&self.client_id), Some(form_encode(secret)));
            }
            ClientAuth::PrivateKey { .. } => {
                form.push(("client_id", self.client_id.clone()));
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                form.push(("client_assertion", self.client_assertion(&d, now)?));
            }
        }
        let res = req
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(format!("token endpoint: {e}")))?;
        let status = res.status();
        if status.is_server_error() {
            return Err(OidcError::Unavailable(format!(
                "token endpoint: HTTP {status}"
            )));
        }
        if !status.is_success() {
            // invalid_grant: a code used twice, expired, or not ours (PKCE).
            let body: Value = read_json(res).await.unwrap_or(Value::Null);
            return Err(invalid(format!(
                "token endpoint refused: HTTP {status} {}",
                body.get("error").and_then(Value::as_str).unwrap_or("-")
            )));
        }
        let tokens: TokenResponse = read_json(res).await?;
        let claims = self
            .verify_id_token(&d, &tokens.id_token, nonce, now)
            .await?;
        let userinfo = match (&d.userinfo_endpoint, &tokens.access_token) {
            (Some(url), Some(access)) => {
                let res = self
                    .http
                    .get(url)
                    .bearer_auth(access)
                    .header("accept", "application/json")
                    .send()
                    .await
                    .map_err(|e| OidcError::Unavailable(format!("userinfo: {e}")))?;
                if !res.status().is_success() {
                    return Err(OidcError::Unavailable(format!(
                        "userinfo: HTTP {}",
                        res.status()
                    )));
                }
                let info: Value = read_json(res).await?;
                // OpenID Connect Core §5.3.2: userinfo's sub must be the ID token's.
                if info.get("sub").and_then(Value::as_str) != Some(claims.sub.as_str()) {
                    return Err(invalid("userinfo sub differs from the ID token's"));
                }
                info
            }
            _ => Value::Null,
        };
        Ok(VerifiedLogin {
            claims,
            userinfo,
            id_token: tokens.id_token,
        })
    }

    /// Every check of the ID token (see the module doc). `now` is passed in, so that the time
    /// checks are ours and not the library's clock.
    pub async fn verify_id_token(
        &self,
        d: &Discovery,
        token: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<IdClaims, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("ID token header"))?;
        if !ACCEPTED_ALGS.contains(&header.alg) {
            return Err(invalid(format!("ID token algorithm {:?}", header.alg)));
        }
        let mut set = self.jwks(d, false).await?;
        let find = |set: &JwkSet| match &header.kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let jwk = match find(&set) {
            Some(k) => k,
            None => {
                // The provider rotated its keys: fetch the set again, once.
                set = self.jwks(d, true).await?;
                find(&set).ok_or_else(|| invalid("no key of the provider's JWKS signed it"))?
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("unusable JWK"))?;
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
            .into_iter()
            .map(String::from)
            .collect();
        let claims: IdClaims = jsonwebtoken::decode(token, &key, &validation)
            .map_err(|e| invalid(format!("ID token signature or shape: {e}")))?
            .claims;
        if claims.iss != d.issuer {
            return Err(invalid("ID token from another issuer"));
        }
        if !claims.aud.contains(&self.client_id)
            || (claims.aud.len() > 1 && claims.azp.as_deref() != Some(self.client_id.as_str()))
        {
            return Err(invalid("ID token for another audience"));
        }
        let t = now.timestamp();
        if claims.exp + LEEWAY_SECONDS <= t {
            return Err(invalid("ID token expired"));
        }
        if claims.iat.is_some_and(|iat| iat > t + LEEWAY_SECONDS) {
            return Err(invalid("ID token issued in the future"));
        }
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(invalid("ID token nonce differs"));
        }
        if !self.acr_values.is_empty()
            && !claims
                .acr
                .as_deref()
                .is_some_and(|a| self.acr_values.iter().any(|v| v == a))
        {
            return Err(OidcError::Acr);
        }
        Ok(claims)
    }

    /// The RPPS number in the userinfo (or the ID token) claim `oidc_rpps_claim`. Pro Santé
    /// Connect's `SubjectNameID` is the national identifier: `8` followed by the 11-digit RPPS.
    pub fn rpps_of(&self, login: &VerifiedLogin) -> Option<String> {
        let raw = login
            .userinfo
            .get(&self.rpps_claim)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                // The ID token may carry it when the provider has no userinfo endpoint.
                jsonwebtoken::dangerous::insecure_decode::<Value>(&login.id_token)
                    .ok()
                    .and_then(|t| {
                        t.claims
                            .get(&self.rpps_claim)
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
            })?;
        normalize_rpps(&raw)
    }

    /// Where to send the browser to end the session at the provider too, if it says.
    pub async fn end_session_url(&self, id_token: Option<&str>) -> Option<String> {
        let d = self.discovery().await.ok()?;
        let endpoint = d.end_session_endpoint.as_deref()?;
        let mut params = vec![
            ("client_id", self.client_id.as_str()),
            (
                "post_logout_redirect_uri",
                self.post_logout_redirect_uri.as_str(),
            ),
        ];
        if let Some(t) = id_token {
            params.push(("id_token_hint", t));
        }
        reqwest::Url::parse_with_params(endpoint, &params)
            .ok()
            .map(String::from)
    }
}

/// `application/x-www-form-urlencoded` of a client id or secret, as RFC 6749 §2.3.1 wants before
/// the Basic scheme.
fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// 11 digits; Pro Santé Connect's national id `8` + RPPS (12 digits) gives the RPPS.
pub fn normalize_rpps(raw: &str) -> Option<String> {
    let s = raw.trim();
    let s = if s.len() == 12 && s.starts_with('8') {
        &s[1..]
    } else {
        s
    };
    telesoin_core::model::valid_rpps(s).then(|| s.to_owned())
}

async fn read_json<T: serde::de::DeserializeOwned>(res: reqwest::Response) -> Result<T, OidcError> {
    let bytes = res
        .bytes()
        .await
        .map_err(|e| OidcError::Unavailable(format!("reading the answer: {e}")))?;
    if bytes.len() > MAX_BODY {
        return Err(OidcError::Unavailable("answer too large".into()));
    }
    serde_json::from_slice(&bytes).map_err(|e| OidcError::Unavailable(format!("bad JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpps_from_psc_national_id() {
        for (raw, expected) in [
            ("810001234567", Some("10001234567")),
            ("10001234567", Some("10001234567")),
            (" 810001234567 ", Some("10001234567")),
            ("910001234567", None),
            ("ANS20231122132732", None),
            ("1000123456", None),
        ] {
            assert_eq!(normalize_rpps(raw).as_deref(), expected, "{raw}");
        }
    }

    #[test]
    fn pkce_s256_is_base64url_sha256() {
        // Computed independently: base64url(sha256(verifier)) without padding.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mJ0kTZfdbP5uFgc5gKI9mwSwgG6xXk"),
            "_s5v-uEK-Of435cLHnYJFuX1GktHIaQWuNH9hAIF6GA"
        );
    }

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b+c/é"), "a+b%2Bc%2F%C3%A9");
    }
}
