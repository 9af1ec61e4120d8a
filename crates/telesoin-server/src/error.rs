//! The one error type at the HTTP edge: what the user reads (a stable code, French and English)
//! is kept apart from the logged cause, which never holds a token or personal data.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use telesoin_core::RefusalCode;
use telesoin_proto::Refusal;
use telesoin_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: RefusalCode,
    pub details: serde_json::Value,
    /// For the log only.
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: RefusalCode) -> Self {
        ApiError {
            status,
            code,
            details: serde_json::Value::Null,
            cause: None,
        }
    }

    pub fn invalid(field: &str, why: &str) -> Self {
        ApiError {
            details: serde_json::json!({ "field": field, "problem": why }),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, RefusalCode::InvalidInput)
        }
    }

    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, RefusalCode::NotFound)
    }

    pub fn conflict(why: &str) -> Self {
        ApiError {
            details: serde_json::json!({ "problem": why }),
            ..ApiError::new(StatusCode::CONFLICT, RefusalCode::Conflict)
        }
    }

    /// A refusal from telesoin-core, with the status that fits it.
    pub fn refusal(code: RefusalCode) -> Self {
        use RefusalCode::*;
        let status = match code {
            Unauthenticated | BadCredentials | OidcFailed | OidcAcr | OidcUnknownRpps => {
                StatusCode::UNAUTHORIZED
            }
            OidcUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            InsFormat | InsKey | InsOid | InsStatus | InsTraits | InsMismatch => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            NotFound | SessionNotFound => StatusCode::NOT_FOUND,
            Unavailable | ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            RateLimited | LoginThrottled | RejoinTooFrequent => StatusCode::TOO_MANY_REQUESTS,
            InvalidInput | BadMessage => StatusCode::UNPROCESSABLE_ENTITY,
            RepresentativeRequired
            | RepresentativeConsentRequired
            | RepresentativeUnexpected
            | CompanionUnnamed => StatusCode::UNPROCESSABLE_ENTITY,
            Conflict | SessionCancelled | SessionEnded => StatusCode::CONFLICT,
            _ => StatusCode::FORBIDDEN,
        };
        let mut e = ApiError::new(status, code);
        if let Some(rule) = code.rule() {
            e.details = serde_json::json!({ "rule": rule.as_str() });
        }
        e
    }
}

/// The wire shape of a refusal, shared by REST and the WebSocket.
pub fn refusal_body(code: RefusalCode, details: serde_json::Value) -> Refusal {
    let details = match (details, code.rule()) {
        (serde_json::Value::Null, Some(rule)) => serde_json::json!({ "rule": rule.as_str() }),
        (d, _) => d,
    };
    Refusal {
        code: code.code().to_owned(),
        message_fr: code.message_fr().to_owned(),
        message_en: code.message_en().to_owned(),
        details,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(c) => ApiError {
                cause: Some(c),
                ..ApiError::conflict("already exists")
            },
            other => ApiError {
                cause: Some(other.to_string()),
                ..ApiError::refusal(RefusalCode::Unavailable)
            },
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError {
            cause: Some(format!("{e:#}")),
            ..ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, RefusalCode::Unavailable)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            if self.status.is_server_error() {
                tracing::error!(code = self.code.code(), cause = %cause, "request failed");
            } else {
                tracing::debug!(code = self.code.code(), cause = %cause, "request refused");
            }
        }
        (self.status, Json(refusal_body(self.code, self.details))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_answer_429() {
        for code in [
            RefusalCode::RateLimited,
            RefusalCode::LoginThrottled,
            RefusalCode::RejoinTooFrequent,
        ] {
            assert_eq!(
                ApiError::refusal(code).status,
                StatusCode::TOO_MANY_REQUESTS,
                "{code:?}"
            );
        }
    }
}
