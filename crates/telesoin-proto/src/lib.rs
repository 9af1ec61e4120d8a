//! telesoin-proto: the wire types, and nothing else.
//!
//! Concepts:
//! - [`signal`]: the WebSocket signaling messages (client -> server and server -> client),
//!   protocol version [`PROTOCOL_VERSION`]. The full specification with examples is
//!   `docs/protocol.md`.
//! - [`rest`]: the JSON bodies of the REST API used by the dashboard, platforms and tests.
//! - [`reach`]: contact details, sending the link, message states, reminder offsets, the short
//!   link code exchange.
//! - [`refusal`]: the one error shape every refusal takes: a stable code, a French and an
//!   English message.
//!
//! This crate must never hold a rule or do IO: it only says how things look on the wire. Domain
//! types live in `telesoin-core` and are converted explicitly at the server's edge.

pub mod reach;
pub mod refusal;
pub mod rest;
pub mod signal;

pub use refusal::Refusal;

/// Version of the signaling protocol, announced in `welcome` and in the WebSocket
/// subprotocol `telesoin.v1`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The WebSocket subprotocol a client may ask for.
pub const SUBPROTOCOL: &str = "telesoin.v1";

/// Largest signaling message accepted, in bytes. A bigger one closes the socket with 1009.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
