//! Short-lived TURN credentials for coturn's TURN REST scheme (`use-auth-secret`):
//! username `EXPIRY:PARTICIPANT` (expiry in Unix seconds), password
//! `base64(HMAC-SHA1(secret, username))`. coturn recomputes the password from the shared secret
//! and refuses the username once its expiry has passed. No TURN server of our own.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use telesoin_core::ParticipantId;
use telesoin_proto::signal::IceServer;

/// Where the STUN and TURN servers are, and the secret shared with coturn.
#[derive(Clone)]
pub struct IceConfig {
    /// STUN (or credential-less) URLs, handed out as they are.
    pub stun_urls: Vec<String>,
    /// TURN URLs (`turn:`/`turns:`), handed out with credentials.
    pub turn_urls: Vec<String>,
    pub turn_secret: Option<String>,
}

impl std::fmt::Debug for IceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of every log and debug print.
        f.debug_struct("IceConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .finish_non_exhaustive()
    }
}

/// The TURN REST credential for `participant`, valid until `expires`.
pub fn credential(
    secret: &str,
    participant: ParticipantId,
    expires: DateTime<Utc>,
) -> (String, String) {
    let username = format!("{}:{}", expires.timestamp(), participant.0);
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(username.as_bytes());
    (username, STANDARD.encode(mac.finalize().into_bytes()))
}

impl IceConfig {
    /// The `ice_servers` of one participant's `welcome`.
    pub fn servers_for(
        &self,
        participant: ParticipantId,
        expires: DateTime<Utc>,
    ) -> Vec<IceServer> {
        let mut out = Vec::new();
        if !self.stun_urls.is_empty() {
            out.push(IceServer {
                urls: self.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        if let (Some(secret), false) = (&self.turn_secret, self.turn_urls.is_empty()) {
            let (username, password) = credential(secret, participant, expires);
            out.push(IceServer {
                urls: self.turn_urls.clone(),
                username: Some(username),
                credential: Some(password),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    #[test]
    fn matches_the_turn_rest_scheme() {
        // Reference computed with: printf '%s' '1800000000:00000000-0000-0000-0000-000000000001' |
        //   openssl dgst -sha1 -hmac 'north' -binary | base64
        let p = ParticipantId(Uuid::from_u128(1));
        let at = Utc.timestamp_opt(1_800_000_000, 0).single().expect("valid");
        let (user, pass) = credential("north", p, at);
        assert_eq!(user, "1800000000:00000000-0000-0000-0000-000000000001");
        assert_eq!(pass, "Mg1AP6mr8Ko79Vx4uyedt9srLJQ=");
        let cfg = IceConfig {
            stun_urls: vec![],
            turn_urls: vec!["turn:127.0.0.1:3478".into()],
            turn_secret: Some("north".into()),
        };
        assert!(!format!("{cfg:?}").contains("north"));
        let servers = cfg.servers_for(p, at);
        assert_eq!(servers.len(), 1);
        assert_eq!(
            servers[0].credential.as_deref(),
            Some("Mg1AP6mr8Ko79Vx4uyedt9srLJQ=")
        );
    }
}
