//! Signaling messages. Every message is one JSON text frame with a `type` field.
//!
//! Offer, answer and candidate payloads travel as [`RawValue`]: the server relays their bytes
//! untouched (the SDP carries the DTLS fingerprints that keep the media end to end).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// Who a participant is in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Kine,
    Patient,
    Companion,
}

/// Who is attested present next to the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Companion {
    Parent,
    Aidant,
}

/// Media state reported by a client from its RTCPeerConnection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaState {
    Connected,
    Disconnected,
}

/// A client's description of itself, for the record (never personal data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Free text such as "web" or "telesoin-peer"; informational, not stored.
    #[serde(default)]
    pub kind: String,
}

/// Messages from a client to the server.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Must be the first message: the join token, never in a URL.
    Join {
        token: String,
        #[serde(default)]
        device: Device,
        /// A client rejoining after losing the server: how long ago (its own monotonic clock)
        /// its media connection ended. Absent: still connected (or never was).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_lost_ago_ms: Option<u64>,
    },
    /// The patient attests that a parent or an aidant is present, naming them: `name` and
    /// `relation` to the patient ("mère", "fils"...). Without them: `error{companion_unnamed}`.
    Attest {
        companion: Companion,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relation: Option<String>,
    },
    /// The patient gives consent on the join page, to the text of this version. For a minor
    /// patient the legal representative gives it, named: `representative_name` and
    /// `representative_relation` (without them: `error{representative_consent_required}`; for an
    /// adult: `error{representative_unexpected}`).
    Consent {
        text_version: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        representative_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        representative_relation: Option<String>,
    },
    /// The kiné lets a waiting participant in.
    Admit {
        participant: Uuid,
    },
    /// Relayed to the other admitted participant(s), payload untouched.
    Offer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Uuid>,
        data: Box<RawValue>,
    },
    Answer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Uuid>,
        data: Box<RawValue>,
    },
    Candidate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Uuid>,
        data: Box<RawValue>,
    },
    /// The client's media state, the evidence billing counts: on every change and as a
    /// heartbeat every `welcome.heartbeat_seconds`.
    Media {
        state: MediaState,
        /// The remote video's decoded frames advanced in the last ~2 s. Absent: unknown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video_in: Option<bool>,
        /// The local camera (or screen) track is live and its frames are sent. Absent: unknown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video_out: Option<bool>,
        /// Optional incident label, e.g. "ice_failed", kept in the record.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incident: Option<String>,
    },
    /// Leave the call; the kiné's hangup ends the session. Kept by the client until acked
    /// (`ended`) and replayed after a reconnection with `ago_ms`.
    Hangup {
        /// How long ago (client monotonic ms) the hang-up was made; absent: now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ago_ms: Option<u64>,
    },
    /// Leave the room without ending the session (the kiné included); the seat may return.
    Leave {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ago_ms: Option<u64>,
    },
    Ping,
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub participant: Uuid,
    pub role: Role,
    pub admitted: bool,
}

/// A STUN/TURN server for RTCPeerConnection, in the browser's own shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Why a participant waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// The kiné has not joined yet.
    KineAbsent,
    /// The kiné is here and has not admitted yet.
    AwaitingAdmission,
    /// The session asks the patient for consent on the join page: send `consent`.
    ConsentRequired,
    /// A parent must be attested present: send `attest{companion:"parent"}`.
    AttestationParent,
    /// An aidant must be attested present: send `attest{companion:"aidant"}`.
    AttestationAidant,
}

/// What the join page shows about the session before the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session: Uuid,
    pub kine_name: String,
    pub starts_at: chrono::DateTime<chrono::Utc>,
    pub act_code: String,
    pub act_label: String,
    /// `reimbursable` or `hn`.
    pub billing_class: String,
    /// The consent text version the patient would agree to, when the session asks for it.
    pub consent_text_version: String,
    /// The patient is a minor on the session day: the legal representative consents (named)
    /// and a parent is attested present (named).
    #[serde(default)]
    pub minor: bool,
}

/// Messages from the server to a client.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome {
        protocol: u32,
        participant: Uuid,
        role: Role,
        session: SessionInfo,
        ice_servers: Vec<IceServer>,
        /// `all`, or `relay` for a session in privacy mode: set RTCPeerConnection's
        /// `iceTransportPolicy` to it, so that only TURN candidates are used.
        #[serde(default = "all")]
        ice_transport_policy: String,
        peers: Vec<PeerInfo>,
        /// True when this join took over an existing seat (reconnection or second device).
        resumed: bool,
        /// Send `media` at least this often (a heartbeat), besides every change.
        #[serde(default = "heartbeat")]
        heartbeat_seconds: u32,
    },
    Waiting {
        reason: WaitReason,
    },
    Admitted {
        peers: Vec<PeerInfo>,
    },
    Refused(crate::Refusal),
    PeerJoined {
        peer: PeerInfo,
    },
    /// Kiné only: someone waits in the lobby.
    LobbyWaiting {
        participant: Uuid,
        role: Role,
        reason: WaitReason,
    },
    PeerLeft {
        participant: Uuid,
        /// True while the seat is kept for the grace period.
        reconnecting: bool,
    },
    Offer {
        from: Uuid,
        data: Box<RawValue>,
    },
    Answer {
        from: Uuid,
        data: Box<RawValue>,
    },
    Candidate {
        from: Uuid,
        data: Box<RawValue>,
    },
    /// The session is over; billable seconds are those of the finalized record.
    Ended {
        billable_seconds: i64,
        reason: String,
    },
    /// This connection was replaced by the same participant's newer one.
    Replaced,
    Error(crate::Refusal),
    Pong,
}

fn all() -> String {
    "all".to_owned()
}

/// The heartbeat period of a server that does not say (older versions): the default.
pub const DEFAULT_HEARTBEAT_SECONDS: u32 = 10;

fn heartbeat() -> u32 {
    DEFAULT_HEARTBEAT_SECONDS
}

/// The longest `ago_ms` / `media_lost_ago_ms` taken as said: an older account is dated this long
/// before it arrives (ten minutes; a client replays within seconds of getting the server back).
pub const MAX_AGO_MS: u64 = 10 * 60 * 1000;

/// Why a frame could not be read as a message.
#[derive(Debug)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientRelay {
    #[serde(rename = "type")]
    _kind: String,
    #[serde(default)]
    to: Option<Uuid>,
    data: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerRelay {
    #[serde(rename = "type")]
    _kind: String,
    from: Uuid,
    data: Box<RawValue>,
}

fn head(text: &str) -> Result<Head<'_>, ParseError> {
    serde_json::from_str(text).map_err(|e| ParseError(format!("not a signaling message: {e}")))
}

// serde's internally tagged enums buffer their content, which loses a RawValue; relayed
// messages are therefore read as plain structs after a first look at `type`.
impl ClientMsg {
    /// Reads one text frame. The caller has already checked its size.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let bad = |e: serde_json::Error| ParseError(e.to_string());
        match head(text)?.kind.as_ref() {
            kind @ ("offer" | "answer" | "candidate") => {
                let r: ClientRelay = serde_json::from_str(text).map_err(bad)?;
                Ok(match kind {
                    "offer" => ClientMsg::Offer {
                        to: r.to,
                        data: r.data,
                    },
                    "answer" => ClientMsg::Answer {
                        to: r.to,
                        data: r.data,
                    },
                    _ => ClientMsg::Candidate {
                        to: r.to,
                        data: r.data,
                    },
                })
            }
            _ => serde_json::from_str(text).map_err(bad),
        }
    }

    /// The message's `type`, for metrics and errors (never its content).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMsg::Join { .. } => "join",
            ClientMsg::Attest { .. } => "attest",
            ClientMsg::Consent { .. } => "consent",
            ClientMsg::Admit { .. } => "admit",
            ClientMsg::Offer { .. } => "offer",
            ClientMsg::Answer { .. } => "answer",
            ClientMsg::Candidate { .. } => "candidate",
            ClientMsg::Media { .. } => "media",
            ClientMsg::Hangup { .. } => "hangup",
            ClientMsg::Leave { .. } => "leave",
            ClientMsg::Ping => "ping",
        }
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl ServerMsg {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let bad = |e: serde_json::Error| ParseError(e.to_string());
        match head(text)?.kind.as_ref() {
            kind @ ("offer" | "answer" | "candidate") => {
                let r: ServerRelay = serde_json::from_str(text).map_err(bad)?;
                Ok(match kind {
                    "offer" => ServerMsg::Offer {
                        from: r.from,
                        data: r.data,
                    },
                    "answer" => ServerMsg::Answer {
                        from: r.from,
                        data: r.data,
                    },
                    _ => ServerMsg::Candidate {
                        from: r.from,
                        data: r.data,
                    },
                })
            }
            _ => serde_json::from_str(text).map_err(bad),
        }
    }

    /// Serializes for the socket. Serializing these types cannot fail (no maps with
    /// non-string keys), so an empty string would only ever mean a bug.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_payload_is_kept_byte_for_byte() {
        let raw = r#"{"type":"offer","data":{"sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1","type":"offer",  "x" : [1,2 ]}}"#;
        let ClientMsg::Offer { to, data } = ClientMsg::parse(raw).expect("parses") else {
            panic!("not an offer")
        };
        assert_eq!(to, None);
        assert_eq!(
            data.get(),
            r#"{"sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1","type":"offer",  "x" : [1,2 ]}"#
        );
        let from = Uuid::nil();
        let out = ServerMsg::Offer { from, data }.to_text();
        assert!(
            out.contains(
                r#""data":{"sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1","type":"offer",  "x" : [1,2 ]}"#
            ),
            "{out}"
        );
        let ServerMsg::Offer { data, .. } = ServerMsg::parse(&out).expect("reparses") else {
            panic!()
        };
        assert!(data.get().contains(r#""x" : [1,2 ]"#));
    }

    #[test]
    fn tagged_messages_round_trip() {
        let m = ClientMsg::parse(r#"{"type":"join","token":"abc"}"#).expect("join");
        assert!(matches!(m, ClientMsg::Join { ref token, .. } if token == "abc"));
        assert!(ClientMsg::parse(r#"{"type":"join","token":"abc","extra":1}"#).is_err());
        assert!(ClientMsg::parse(r#"{"type":"nope"}"#).is_err());
        assert!(ClientMsg::parse("[]").is_err());
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"ping"}"#),
            Ok(ClientMsg::Ping)
        ));
        // Older clients: no video flags, a bare hangup; newer: the replay and the flags.
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"hangup"}"#),
            Ok(ClientMsg::Hangup { ago_ms: None })
        ));
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"hangup","ago_ms":1500}"#),
            Ok(ClientMsg::Hangup { ago_ms: Some(1500) })
        ));
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"leave"}"#),
            Ok(ClientMsg::Leave { ago_ms: None })
        ));
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"media","state":"connected"}"#),
            Ok(ClientMsg::Media {
                video_in: None,
                video_out: None,
                ..
            })
        ));
        assert!(matches!(
            ClientMsg::parse(
                r#"{"type":"media","state":"connected","video_in":true,"video_out":false}"#
            ),
            Ok(ClientMsg::Media {
                video_in: Some(true),
                video_out: Some(false),
                ..
            })
        ));
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"join","token":"t","media_lost_ago_ms":2500}"#),
            Ok(ClientMsg::Join {
                media_lost_ago_ms: Some(2500),
                ..
            })
        ));
        assert!(ClientMsg::parse(r#"{"type":"hangup","ago_ms":-1}"#).is_err());
        let w = ServerMsg::Waiting {
            reason: WaitReason::KineAbsent,
        }
        .to_text();
        assert_eq!(w, r#"{"type":"waiting","reason":"kine_absent"}"#);
    }
}
