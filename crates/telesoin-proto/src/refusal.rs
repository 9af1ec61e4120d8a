//! The one shape of every refusal, on the WebSocket (`refused`, `error`) and over REST.

use serde::{Deserialize, Serialize};

/// A refusal as the client sees it: a stable machine code and plain words in French and English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Refusal {
    /// Stable, snake_case, documented in docs/protocol.md; clients switch on it.
    pub code: String,
    /// Shown to patients and kinés first.
    pub message_fr: String,
    pub message_en: String,
    /// Extra machine-readable facts (for example which in-person rule applied).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Value,
}
