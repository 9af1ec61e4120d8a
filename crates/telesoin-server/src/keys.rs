//! Join-token keys: Ed25519, kept in `DATA_DIR/keys/<kid>.pem` (PKCS#8), generated on first start.
//! Several keys may be present (rotation): all verify, the newest signs. The public halves are
//! published as a JWKS at `/.well-known/jwks.json`.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sha2::{Digest, Sha256};
use telesoin_core::RefusalCode;
use telesoin_core::claims::{JOIN_TOKEN_TYPE, JoinClaims};

/// The longest token we bother to parse.
pub const MAX_TOKEN_BYTES: usize = 4096;

pub struct Keys {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
    /// A secret derived from the signing key, for the server's own MACs (device cookies): the
    /// same on every node sharing the keys.
    derived: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("signing_kid", &self.signing_kid)
            .finish_non_exhaustive()
    }
}

fn kid_of(key: &SigningKey) -> String {
    let digest = Sha256::digest(key.verifying_key().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Keys {
    /// Loads every key in `dir`, creating one if there is none.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Keys> {
        std::fs::create_dir_all(dir)?;
        let mut found: Vec<(std::time::SystemTime, SigningKey)> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "pem") {
                continue;
            }
            let pem = std::fs::read_to_string(&path)?;
            let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                anyhow::anyhow!("{}: not an Ed25519 PKCS#8 key: {e}", path.display())
            })?;
            found.push((entry.metadata()?.modified()?, key));
        }
        if found.is_empty() {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let pem = key
                .to_pkcs8_pem(Default::default())
                .map_err(|e| anyhow::anyhow!("encode key: {e}"))?;
            let path = dir.join(format!("{}.pem", kid_of(&key)));
            write_private(&path, pem.as_bytes())?;
            tracing::info!(kid = %kid_of(&key), "generated a new signing key for join links");
            found.push((std::time::SystemTime::now(), key));
        }
        found.sort_by_key(|(t, _)| *t);
        Self::from_keys(found.into_iter().map(|(_, k)| k).collect())
    }

    /// The last key signs; all verify.
    fn from_keys(keys: Vec<SigningKey>) -> anyhow::Result<Keys> {
        let newest = keys
            .last()
            .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
        let der = newest
            .to_pkcs8_der()
            .map_err(|e| anyhow::anyhow!("encode key: {e}"))?;
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for k in &keys {
            let public = k.verifying_key();
            verifying.insert(kid_of(k), DecodingKey::from_ed_der(public.as_bytes()));
            jwks.push(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                "kid": kid_of(k), "x": URL_SAFE_NO_PAD.encode(public.as_bytes()),
            }));
        }
        Ok(Keys {
            signing_kid: kid_of(newest),
            signing: EncodingKey::from_ed_der(der.as_bytes()),
            verifying,
            jwks: serde_json::json!({ "keys": jwks }),
            derived: Sha256::new()
                .chain_update(b"telesoin-derived-secret-v1:")
                .chain_update(der.as_bytes())
                .finalize()
                .into(),
        })
    }

    /// A 32-byte secret for `label`, derived from the signing key (changes when it rotates).
    pub fn derive(&self, label: &str) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.derived)
            .chain_update(label.as_bytes())
            .finalize()
            .into()
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    pub fn sign(&self, claims: &JoinClaims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(JOIN_TOKEN_TYPE.to_owned());
        header.kid = Some(self.signing_kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.signing)?)
    }

    /// Verifies header and signature, and returns the claims for `telesoin_core::claims::check`.
    /// Only EdDSA with one of our `kid`s and the join `typ` is accepted: `none`, HS*, other token
    /// kinds and unknown keys are all `token_invalid`.
    pub fn verify(&self, token: &str) -> Result<JoinClaims, RefusalCode> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(RefusalCode::TokenInvalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| RefusalCode::TokenInvalid)?;
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(JOIN_TOKEN_TYPE) {
            return Err(RefusalCode::TokenInvalid);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(RefusalCode::TokenInvalid)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Time, issuer and audience are checked by telesoin-core with an injected `now`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<JoinClaims>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|_| RefusalCode::TokenInvalid)
    }
}

/// Writes a secret file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use telesoin_core::model::Role;
    use uuid::Uuid;

    fn claims() -> JoinClaims {
        JoinClaims {
            iss: "https://localhost".into(),
            aud: "telesoin-join".into(),
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            role: Role::Patient,
            jti: Uuid::new_v4(),
            nbf: 0,
            exp: i64::MAX / 2,
            iat: 0,
        }
    }

    #[test]
    fn keys_persist_and_refuse_foreign_algorithms() {
        let dir = tempfile::tempdir().expect("dir");
        let keys = Keys::load_or_create(dir.path()).expect("create");
        let token = keys.sign(&claims()).expect("sign");
        let again = Keys::load_or_create(dir.path()).expect("reload");
        assert_eq!(
            again.verify(&token).expect("valid").sub,
            keys.verify(&token).expect("valid").sub
        );
        assert_eq!(again.jwks(), keys.jwks());

        // Tampered payload.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut c = claims();
        c.role = Role::Kine;
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("json"));
        assert_eq!(
            keys.verify(&parts.join(".")),
            Err(RefusalCode::TokenInvalid)
        );
        // alg none.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"telesoin-join+jwt"}"#),
            parts[1]
        );
        assert_eq!(keys.verify(&none), Err(RefusalCode::TokenInvalid));
        // HS256 signed with the public key as secret (the classic confusion).
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some(JOIN_TOKEN_TYPE.into());
        let hs = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(b"x")).expect("hs");
        assert_eq!(keys.verify(&hs), Err(RefusalCode::TokenInvalid));
        // Another key.
        let other = tempfile::tempdir().expect("dir");
        let foreign = Keys::load_or_create(other.path())
            .expect("other")
            .sign(&claims())
            .expect("sign");
        assert_eq!(keys.verify(&foreign), Err(RefusalCode::TokenInvalid));
    }
}
