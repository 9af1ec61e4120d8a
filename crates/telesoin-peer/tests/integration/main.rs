//! The crate's one integration-test binary: endpoints alone, then whole peers against a
//! small stand-in hub (no real server needed).

mod binary;
mod browser_offer;
mod endpoint;
mod hub;
mod signaling;
