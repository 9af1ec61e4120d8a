//! The one error type of this crate.

use std::time::Duration;

use telesoin_proto::Refusal;

/// Everything that can go wrong for a peer. Messages never contain a token, an SDP or a
/// candidate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The join link could not be used (bad scheme, no token after `#`, ...).
    #[error("invalid join link: {0}")]
    Link(String),
    /// The TLS trust settings could not be built (unreadable PEM, no certificate in it, ...).
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The WebSocket could not be opened or broke.
    #[error("WebSocket: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    /// The server refused the join (`refused`): the code is stable, the messages are for people.
    #[error("refused by the server: {} ({})", .0.code, .0.message_en)]
    Refused(Refusal),
    /// The server reported an error (`error`).
    #[error("server error: {} ({})", .0.code, .0.message_en)]
    Server(Refusal),
    /// This connection was replaced by the same participant's newer one (`replaced`).
    #[error("replaced by another connection of the same participant")]
    Replaced,
    /// The server said something this peer did not expect at that point.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A wait ran out of time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: &'static str, after: Duration },
    /// The signaling socket is closed (by the server, by `close_socket_abruptly`, or after
    /// `hangup`); `reconnect` opens a new one.
    #[error("the signaling socket is closed")]
    SocketClosed,
    /// The session is over (`ended`).
    #[error("the session has ended")]
    Ended,
    /// No data channel is open to send on.
    #[error("no open data channel")]
    NoDataChannel,
    /// The WebRTC stack failed. `Display` shows only the `summary` (the error's name), safe
    /// to log; `detail` is the full text, which may quote a line of SDP: never log it.
    #[error("WebRTC: {summary}")]
    WebRtc { summary: String, detail: String },
    /// The peer's background task is gone (the peer was shut down).
    #[error("the peer is shut down")]
    Shutdown,
}

impl From<tokio_tungstenite::tungstenite::Error> for PeerError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        PeerError::WebSocket(Box::new(e))
    }
}

impl From<webrtc::error::Error> for PeerError {
    fn from(e: webrtc::error::Error) -> Self {
        let detail = e.to_string();
        // Errors such as `SdpInvalidValue: <value>` quote the SDP after the colon.
        let summary = detail
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        PeerError::WebRtc { summary, detail }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = PeerError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webrtc_errors_do_not_show_sdp_when_displayed() {
        let e = PeerError::from(webrtc::error::Error::SdpInvalidValue(
            "a=fingerprint:sha-256 AB:CD".into(),
        ));
        assert_eq!(e.to_string(), "WebRTC: SdpInvalidValue");
        assert!(
            format!("{e:?}").contains("AB:CD"),
            "the detail is kept for debugging"
        );
    }
}
