//! The peer's configuration: one struct, one default per field.

use std::net::SocketAddr;
use std::time::Duration;

use telesoin_proto::signal::Companion;

/// How a [`Peer`](crate::Peer) joins and behaves. Build it with [`PeerConfig::new`] and change
/// the fields you need:
///
/// ```
/// # use telesoin_peer::PeerConfig;
/// let cfg = PeerConfig { consent: true, accept_invalid_certs: true, ..PeerConfig::new("https://localhost:8443/j#TOKEN") };
/// assert!(!format!("{cfg:?}").contains("TOKEN"));
/// ```
#[derive(Clone)]
pub struct PeerConfig {
    /// The join link, `https://HOST[:PORT]/j#TOKEN` (or `http://` for plain-HTTP mode). The
    /// token is read from the fragment and only ever sent inside the `join` message.
    pub link: String,
    /// Accept any TLS certificate. For loopback tests against a self-signed server only.
    /// Default: false.
    pub accept_invalid_certs: bool,
    /// Trust these PEM certificates (instead of the Mozilla roots), e.g. the test server's
    /// self-signed certificate. Default: none (Mozilla roots).
    pub ca_pem: Option<Vec<u8>>,
    /// `Origin` header sent on the WebSocket upgrade, for servers with an Origin allowlist.
    /// Default: none (no header).
    pub origin: Option<String>,
    /// Answer `waiting{consent_required}` with `consent` (the version from `welcome`).
    /// Default: false.
    pub consent: bool,
    /// Answer `waiting{attestation_parent|attestation_aidant}` with this attestation.
    /// Default: none (keep waiting).
    pub attest: Option<Companion>,
    /// The companion attested present, by name and relation to the patient ("mère"): the
    /// server refuses an unnamed attestation (`companion_unnamed`). For a minor patient, the
    /// consent given on `waiting{consent_required}` is in this person's name (the legal
    /// representative). Default: none.
    pub attest_name: Option<String>,
    pub attest_relation: Option<String>,
    /// Kiné only: admit everyone announced by `lobby_waiting{reason: awaiting_admission}`.
    /// Default: false.
    pub auto_admit_lobby: bool,
    /// Use relayed (TURN) candidates only, like `iceTransportPolicy: "relay"`. Default: false.
    pub relay_only: bool,
    /// `device.kind` announced in `join`. Default: `"telesoin-peer"`.
    pub device_kind: String,
    /// Local UDP addresses for ICE. A wildcard means every non-loopback interface; pass
    /// `127.0.0.1:0` to keep a test on loopback. Default: `0.0.0.0:0`.
    pub udp_bind: Vec<SocketAddr>,
    /// Longest wait for the join handshake (connect, TLS, `welcome`). Default: 10 s.
    pub connect_timeout: Duration,
    /// Send `ping` this often while the socket is open. Default: 20 s.
    pub ping_interval: Option<Duration>,
    /// Send a synthetic video track (VP8, 10 frames/s) so that both sides can report
    /// `video_in`/`video_out` truthfully: billing counts only video both ways. Default: true.
    pub video: bool,
    /// Reconnect by itself when the signaling socket is lost (a server restart, a dropped
    /// network), as the web client does: the same token, after 0, 0.3, 0.7, 1.5, 2.5 then every
    /// 4 s, for as long as the server keeps the seat ([`PeerConfig::reconnect_for`]); the kiné
    /// then re-offers with an ICE restart and a hang-up not yet acknowledged is replayed. Not
    /// after `ended`, `refused` or `replaced`, nor after [`Peer::close_socket_abruptly`]
    /// (which holds the socket closed until [`Peer::reconnect`]). Default: true
    /// (`--no-reconnect` in the binary).
    ///
    /// [`Peer::close_socket_abruptly`]: crate::Peer::close_socket_abruptly
    /// [`Peer::reconnect`]: crate::Peer::reconnect
    pub reconnect: bool,
    /// How long to keep trying to reconnect after the socket was lost. Default: 30 s (the
    /// server's default grace period).
    pub reconnect_for: Duration,
}

impl PeerConfig {
    /// A configuration with every default, joining through `link`.
    pub fn new(link: impl Into<String>) -> Self {
        PeerConfig {
            link: link.into(),
            accept_invalid_certs: false,
            ca_pem: None,
            origin: None,
            consent: false,
            attest: None,
            attest_name: None,
            attest_relation: None,
            auto_admit_lobby: false,
            relay_only: false,
            device_kind: "telesoin-peer".to_owned(),
            udp_bind: vec![SocketAddr::from(([0, 0, 0, 0], 0))],
            connect_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(20)),
            video: true,
            reconnect: true,
            reconnect_for: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The link carries the token: show only what precedes the fragment.
        let link = self.link.split('#').next().unwrap_or_default();
        f.debug_struct("PeerConfig")
            .field("link", &format_args!("{link}#<redacted>"))
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .field("origin", &self.origin)
            .field("consent", &self.consent)
            .field("attest", &self.attest)
            // Personal data: only whether it is set.
            .field("attest_name", &self.attest_name.as_ref().map(|_| "<set>"))
            .field("attest_relation", &self.attest_relation)
            .field("auto_admit_lobby", &self.auto_admit_lobby)
            .field("relay_only", &self.relay_only)
            .field("device_kind", &self.device_kind)
            .field("udp_bind", &self.udp_bind)
            .field("connect_timeout", &self.connect_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("video", &self.video)
            .field("reconnect", &self.reconnect)
            .field("reconnect_for", &self.reconnect_for)
            .finish()
    }
}
