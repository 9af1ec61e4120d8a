//! telesoin-core: the télésoin rules, sans IO.
//!
//! Concepts, one module each:
//! - [`ids`]: typed identifiers.
//! - [`ins`]: the patient's INS (NIR or NIA with its OID, status, the five reference traits),
//!   its format and key check, and the rule that only a qualified INS leaves in a document.
//! - [`model`]: kinés, patients, in-person visits, consents, prescriptions, sessions, roles.
//! - [`acts`]: the NGAP acts billable in télésoin, with their AMK coefficient.
//! - [`admission`]: may this participant enter this session now? Admit, wait, attest or refuse,
//!   with a stable code and plain French and English words for every refusal.
//! - [`claims`]: the join-link claims and their check against a session (`VerifiedClaims`).
//! - [`billing`]: presence events -> billable intervals (kiné AND patient media-connected).
//! - [`reimbursement`]: reimbursable or hors nomenclature, and why: prescription and in-person
//!   care, or direct access under a cooperation protocol.
//! - [`representation`]: who speaks for the patient (a minor's named legal representative
//!   consents) and who is attested present next to them (a named parent or aidant).
//! - [`tariff`]: money. The key letter's value on a date (configuration, never a constant), the
//!   amount of an act in exact cents, what a session bills (key letter or HN price).
//! - [`share`]: the share of a kiné's sessions done remotely, against the convention cap.
//! - [`retention`]: when a record may be purged (20 years after the last care by default).
//! - [`audit`]: the hash chain of security events and its verification.
//! - [`reach`]: the patient's contact details (phone in E.164), the invitation, reminder and
//!   notice texts (one GSM-7 SMS segment), when reminders are due.
//!
//! Every function takes `now` (or a date) as an argument; money is integer cents, never a float.
//! This crate never reads a clock, never spawns, never touches a socket, a file or a database:
//! the server asks, the core answers, and no rule is written anywhere else.

pub mod acts;
pub mod admission;
pub mod audit;
pub mod billing;
pub mod claims;
pub mod ids;
pub mod ins;
pub mod model;
pub mod reach;
pub mod reimbursement;
pub mod representation;
pub mod retention;
pub mod share;
pub mod tariff;

pub use admission::{Decision, RefusalCode};
pub use ids::{KineId, ParticipantId, PatientId, SessionId};
