//! The shapes of the relayed `data` payloads, as browsers write them.
//!
//! The server relays `offer`, `answer` and `candidate` payloads byte for byte, so both ends
//! must agree on these shapes: `RTCSessionDescriptionInit` (`{"type":"offer","sdp":"..."}`)
//! and `RTCIceCandidateInit` (`{"candidate":"...","sdpMid":"0","sdpMLineIndex":0}`).
//!
//! Both types hold data that must never reach a log (SDP carries DTLS fingerprints and
//! addresses; candidates carry IP addresses), so their `Debug` output is redacted.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Which side of an offer/answer exchange a description is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpKind {
    Offer,
    Answer,
}

/// A session description as sent in the `data` of `offer` and `answer` messages.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: SdpKind,
    pub sdp: String,
}

impl std::fmt::Debug for SessionDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDescription")
            .field("kind", &self.kind)
            .field("sdp", &format_args!("<{} bytes, redacted>", self.sdp.len()))
            .finish()
    }
}

impl SessionDescription {
    /// The DTLS certificate fingerprint the description announces (session or first media
    /// level). A different fingerprint means a different RTCPeerConnection on the other side.
    pub fn fingerprint(&self) -> Option<&str> {
        self.sdp
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("a=fingerprint:"))
    }

    /// The `mid` of the first media section, which bundles all the others.
    pub fn first_mid(&self) -> Option<&str> {
        self.sdp
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
    }
}

/// An ICE candidate as sent in the `data` of `candidate` messages.
///
/// An empty `candidate` string is the end-of-candidates marker browsers send; it is accepted
/// and ignored.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateInit {
    pub candidate: String,
    #[serde(rename = "sdpMid", default)]
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default)]
    pub sdp_mline_index: Option<u16>,
    #[serde(
        rename = "usernameFragment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub username_fragment: Option<String>,
}

impl std::fmt::Debug for CandidateInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandidateInit")
            .field("candidate", &"<redacted>")
            .field("sdp_mid", &self.sdp_mid)
            .field("sdp_mline_index", &self.sdp_mline_index)
            .finish()
    }
}

impl CandidateInit {
    /// True for the end-of-candidates marker (`{"candidate":""}`).
    pub fn is_end_of_candidates(&self) -> bool {
        self.candidate.trim().is_empty()
    }
}

/// Conversion to and from the `data` field of relayed messages.
pub trait RelayPayload: Serialize + for<'de> Deserialize<'de> {
    /// Serializes into the `data` field of a relayed message.
    fn to_data(&self) -> Box<RawValue> {
        // These types are plain strings and options: serializing them cannot fail, and what
        // serde_json writes is valid JSON.
        let text = serde_json::to_string(self).unwrap_or_else(|_| "null".to_owned());
        RawValue::from_string(text).unwrap_or_else(|_| Box::<RawValue>::default())
    }

    /// Reads the `data` field of a relayed message. The error names what was wrong, never
    /// the content.
    fn from_data(data: &RawValue) -> Result<Self, crate::PeerError> {
        serde_json::from_str(data.get()).map_err(|e| {
            crate::PeerError::Protocol(format!(
                "unreadable relayed payload at line {} column {} ({:?})",
                e.line(),
                e.column(),
                e.classify()
            ))
        })
    }
}

impl RelayPayload for SessionDescription {}
impl RelayPayload for CandidateInit {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_shapes_round_trip() {
        let c: CandidateInit = serde_json::from_str(
            r#"{"candidate":"candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}"#,
        )
        .expect("browser candidate");
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert!(!c.is_end_of_candidates());
        let end: CandidateInit = serde_json::from_str(r#"{"candidate":""}"#).expect("end marker");
        assert!(end.is_end_of_candidates());
        let out = (CandidateInit {
            candidate: "candidate:x".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        })
        .to_data();
        assert_eq!(
            out.get(),
            r#"{"candidate":"candidate:x","sdpMid":"0","sdpMLineIndex":0}"#
        );

        let sent = SessionDescription {
            kind: SdpKind::Offer,
            sdp: "v=0\r\na=mid:0\r\na=fingerprint:sha-256 AA\r\n".into(),
        };
        let d = SessionDescription::from_data(&sent.to_data()).expect("round trip");
        assert_eq!(d.kind, SdpKind::Offer);
        assert_eq!(d.first_mid(), Some("0"));
        assert_eq!(d.fingerprint(), Some("sha-256 AA"));
        assert!(
            !format!("{d:?}").contains("fingerprint"),
            "Debug must not show the SDP"
        );
        assert!(
            !format!("{c:?}").contains("10.0.0.1"),
            "Debug must not show addresses"
        );
        let bad = RawValue::from_string(r#"{"type":"offer"}"#.to_owned()).expect("json");
        let err = SessionDescription::from_data(&bad).expect_err("no sdp");
        assert!(!err.to_string().contains("offer"), "{err}");
    }
}
