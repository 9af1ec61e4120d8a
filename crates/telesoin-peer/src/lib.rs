//! telesoin-peer: a headless WebRTC participant that speaks the telesoin signaling protocol.
//!
//! It joins a session with a join link exactly as the web client does, and is used by the
//! end-to-end tests, the load generator and `telesoin probe`.
//!
//! Concepts, one module each:
//! - [`link`]: a join link `https://HOST/j#TOKEN` gives the socket URL `wss://HOST/ws` and
//!   the token, which only ever travels inside the first message (`join`).
//! - [`config`]: [`PeerConfig`], how a peer joins and which waiting-room steps it takes by
//!   itself (consent, attestation, the kiné's auto-admission).
//! - [`wire`]: the relayed `data` payloads in the browser's shapes
//!   (`RTCSessionDescriptionInit`, `RTCIceCandidateInit`).
//! - [`endpoint`]: one RTCPeerConnection (webrtc-rs) with the `telesoin` data channel,
//!   trickle ICE and ICE restart, and nothing about sockets. Usable on its own.
//! - `call` (private): the background task that owns the socket and the endpoints and applies
//!   the offer rule: the kiné always offers, with an ICE restart when a connection exists.
//! - [`peer`]: [`Peer`], the handle tests use: join, wait for messages or states, send
//!   data, hang up, drop the socket, reconnect. A lost socket is reopened by itself (same
//!   token, the web client's backoff, ICE restart by the kiné) unless
//!   [`PeerConfig::reconnect`] is off.
//! - [`error`]: the one error type, [`PeerError`].
//!
//! What this crate must never do: log or print a token, an SDP, an ICE candidate, a TURN
//! credential or anything personal from `welcome` (the kiné's name); put the token in a URL;
//! use a TLS stack other than rustls with the `ring` provider (nothing here may pull
//! `aws-lc-sys`); offer as a patient or companion (only the kiné offers).
//!
//! Note that webrtc-rs itself logs candidate addresses at `debug` level (targets `rtc_ice`,
//! `rtc`, ...): a program that turns logging up must keep those targets at `warn`, as the
//! `telesoin-peer` binary does.
//!
//! # How to use
//!
//! ```no_run
//! use std::time::Duration;
//! use telesoin_peer::{Peer, PeerConfig};
//!
//! # async fn demo(kine_link: String, patient_link: String) -> Result<(), telesoin_peer::PeerError> {
//! let t = Duration::from_secs(10);
//! // The kiné admits whoever waits; the patient gives consent if asked.
//! let mut kine = Peer::join(PeerConfig {
//!     auto_admit_lobby: true,
//!     accept_invalid_certs: true, // loopback test server with a self-signed certificate
//!     ..PeerConfig::new(kine_link)
//! })
//! .await?;
//! kine.admitted(t).await?;
//! let mut patient = Peer::join(PeerConfig {
//!     consent: true,
//!     accept_invalid_certs: true,
//!     ..PeerConfig::new(patient_link)
//! })
//! .await?;
//! patient.admitted(t).await?;
//!
//! // The kiné offers as soon as it learns the patient is admitted.
//! kine.wait_media_connected(t).await?;
//! patient.wait_media_connected(t).await?;
//! kine.send_data("bonjour").await?;
//! assert_eq!(patient.recv_data(t).await?.text, "bonjour");
//!
//! // A lost network: the patient's socket drops, media stays up, the patient comes back
//! // and the kiné restarts ICE.
//! patient.close_socket_abruptly().await?;
//! patient.reconnect().await?;
//! patient.admitted(t).await?;
//!
//! // Every server message is also available, in order; `wait_for` leaves others queued.
//! use telesoin_proto::signal::ServerMsg;
//! kine.wait_for("peer_joined", t, |m| matches!(m, ServerMsg::PeerJoined { .. })).await?;
//!
//! let billable = kine.hangup(t).await?; // Some(seconds) once the server sent `ended`
//! # let _ = billable;
//! # Ok(())
//! # }
//! ```
//!
//! For tests on one machine set [`PeerConfig::udp_bind`] to `127.0.0.1:0` to keep ICE on
//! loopback, and trust the test server with [`PeerConfig::ca_pem`] or
//! [`PeerConfig::accept_invalid_certs`].

mod call;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod link;
pub mod peer;
mod tls;
pub mod wire;

pub use config::PeerConfig;
pub use endpoint::ConnectionState;
pub use error::PeerError;
pub use peer::{CallState, DataMessage, Ended, Peer, RemoteMedia, Welcome};
