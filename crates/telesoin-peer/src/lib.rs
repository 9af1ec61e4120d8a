//! telesoin-peer (WIP)
pub mod config;
pub mod endpoint;
pub mod error;
pub mod link;
mod tls;
pub mod wire;
pub use config::PeerConfig;
pub use error::PeerError;
