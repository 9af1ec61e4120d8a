//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations (utoipa):
//! served at `/api/v1/openapi.json` and kept in `docs/openapi.json` (a test fails when that
//! file is stale; `UPDATE_OPENAPI=1 cargo test -p telesoin-server openapi` rewrites it).

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::platform::{tokens, v1, webhooks};

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "telesoin platform API",
        version = "1",
        description = "Patients, in-person visits, consents, prescriptions, sessions, links and records of the kinés who gave a platform access, with an API key (`Authorization: Bearer tsk_...`). Errors: `{code, message_fr, message_en, details}`. POSTs accept an `Idempotency-Key`. Lists page with `cursor`/`next_cursor`. Webhooks and platform-minted join tokens: docs/embedding.md and docs/protocol.md."
    ),
    modifiers(&Security),
    security(("api_key" = [])),
    paths(
        v1::list_kines,
        v1::acts,
        v1::list_patients,
        v1::create_patient,
        v1::patient_detail,
        v1::set_patient_ins,
        v1::add_visit,
        v1::add_consent,
        v1::add_prescription,
        v1::withdraw_consent,
        v1::list_sessions,
        v1::create_session,
        v1::bulk_sessions,
        v1::get_session,
        v1::cancel_session,
        v1::end_session,
        v1::create_seat,
        v1::issue_link,
        v1::revoke_link,
        v1::record,
        v1::get_report,
        v1::write_report,
        v1::export,
        webhooks::list,
        webhooks::create,
        webhooks::delete,
        tokens::list,
        tokens::register,
        tokens::revoke,
        crate::reach::v1::get_contact,
        crate::reach::v1::put_contact,
        crate::reach::v1::send_link,
        crate::reach::v1::messages,
        crate::reach::v1::move_session,
        crate::reach::v1::get_reminders,
        crate::reach::v1::put_reminders,
    )
)]
pub struct ApiDoc;

/// The document, pretty-printed with a final newline (as in `docs/openapi.json`).
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

pub async fn serve() -> impl IntoResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOC.get_or_init(document).clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_json_in_docs_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let generated = document();
        if std::env::var("UPDATE_OPENAPI").as_deref() == Ok("1") {
            std::fs::write(&path, &generated).expect("write docs/openapi.json");
            return;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p telesoin-server openapi` and commit it"
        );
        let v: serde_json::Value = serde_json::from_str(&generated).expect("json");
        assert!(v["openapi"].as_str().is_some_and(|s| s.starts_with("3.1")));
    }
}
