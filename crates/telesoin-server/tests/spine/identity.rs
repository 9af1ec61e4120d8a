//! Identity end to end: the patient's INS through the dashboard and `/api/v1`, carried by the
//! exports and the compte rendu only once qualified; and the kiné's OpenID Connect login against
//! a real provider (the npm `oidc-provider`, started here on loopback from `tests/oidc`), with
//! claims shaped like Pro Santé Connect's.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use telesoin_core::KineId;
use telesoin_core::model::Kine;
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use crate::records::{finished_call, get_bytes, pdf_text};
use crate::support::*;

/// A valid NIR for a man born in March 1958 in Paris (key 97 - n mod 97).
fn nir_1958() -> String {
    let body = "1580375056123";
    let n: u64 = body.parse().expect("digits");
    format!("{body}{:02}", 97 - n % 97)
}

fn ins(status: &str, matricule: Option<&str>) -> Value {
    json!({
        "status": status,
        "matricule": matricule,
        "birth_names": "DUPONT",
        "first_names": "JEAN LOUIS",
        "birth_date": "1958-03-14",
        "sex": "M",
        "birth_place": "75056",
    })
}

#[tokio::test]
async fn ins_is_checked_stored_and_carried_only_when_qualified() {
    let server = Server::start().await;
    let api = server.kine("ins@example.fr").await;
    let patient = api.ready_patient().await;
    let nir = nir_1958();

    // Refusals: each with its code and both languages.
    // `details.field` names the control the dashboard shows the message under.
    for (body, code, field) in [
        (
            ins("qualifiee", Some("158037505612300")),
            "ins_key",
            "matricule",
        ),
        (
            ins("qualifiee", Some("15803750561")),
            "ins_format",
            "matricule",
        ),
        (ins("qualifiee", None), "ins_status", "status"),
        (ins("provisoire", Some(&nir)), "ins_status", "status"),
    ] {
        let (status, v) = api
            .call(
                reqwest::Method::PUT,
                &format!("/api/patients/{patient}/ins"),
                Some(body),
            )
            .await;
        assert_eq!((status, v["code"].as_str()), (422, Some(code)), "{v}");
        assert_eq!(v["details"]["field"], field, "{v}");
        assert!(v["message_fr"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(v["message_en"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let mut wrong_oid = ins("qualifiee", Some(&nir));
    wrong_oid["oid"] = json!("1.2.3");
    let mut wrong_sex = ins("qualifiee", Some(&nir));
    wrong_sex["sex"] = json!("F");
    let mut wrong_birth = ins("validee", None);
    wrong_birth["birth_date"] = json!("1958-03-15");
    for (body, code) in [
        (wrong_oid, "ins_oid"),
        (wrong_sex, "ins_mismatch"),
        (wrong_birth, "ins_mismatch"),
    ] {
        let (status, v) = api
            .call(
                reqwest::Method::PUT,
                &format!("/api/patients/{patient}/ins"),
                Some(body),
            )
            .await;
        assert_eq!((status, v["code"].as_str()), (422, Some(code)), "{v}");
    }

    // Recovered (INSi) but not checked on an ID document: stored, shown, not carried.
    let (status, v) = api
        .call(
            reqwest::Method::PUT,
            &format!("/api/patients/{patient}/ins"),
            Some(ins(
                "recuperee",
                Some(&format!("{} {}", &nir[..13], &nir[13..])),
            )),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["matricule"], json!(nir), "spaces dropped");
    assert_eq!(v["oid"], "1.2.250.1.213.1.4.8", "NIR by default");
    let detail = api.get(&format!("/api/patients/{patient}")).await;
    assert_eq!(detail["ins"]["status"], "recuperee");

    // Long enough to be held (a session with no billable second is not exported).
    let session = finished_call(&api, server.port, patient, json!({}), 1300).await;
    let today = telesoin_core::model::local_date(chrono::Utc::now());
    let export = |format: &'static str| {
        let api = api.clone();
        async move {
            let (status, bytes, _) = get_bytes(
                &api,
                &format!("/api/exports?from={today}&to={today}&format={format}"),
            )
            .await;
            assert_eq!(status, 200);
            String::from_utf8(bytes).expect("utf-8")
        }
    };
    let csv = export("csv").await;
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "patient_ins")
        .expect("patient_ins column");
    let row: Vec<&str> = csv.lines().nth(1).expect("row").split(',').collect();
    assert_eq!(row[col], "", "a recovered INS is not carried");
    let fhir: Value = serde_json::from_str(&export("fhir").await).expect("json");
    let patient_res = |b: &Value| {
        b["entry"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["resource"].clone())
            .find(|r| r["resourceType"] == "Patient")
            .expect("patient")
    };
    // Only the practice's internal identifier (FR Core patient): no INS.
    let ids = patient_res(&fhir)["identifier"].clone();
    assert!(
        !ids.to_string().contains("1.2.250.1.213.1.4.8") && !ids.to_string().contains(&nir),
        "{ids}"
    );
    let (_, pdf, _) = get_bytes(&api, &format!("/api/sessions/{session}/report.pdf")).await;
    let text = pdf_text(&pdf);
    assert!(!text.contains(&nir), "not in the compte rendu either");

    // Qualified: now the exports and the compte rendu carry it.
    api.call(
        reqwest::Method::PUT,
        &format!("/api/patients/{patient}/ins"),
        Some(ins("qualifiee", Some(&nir))),
    )
    .await;
    let csv = export("csv").await;
    let row: Vec<&str> = csv.lines().nth(1).expect("row").split(',').collect();
    assert_eq!(
        (row[col], row[col + 1]),
        (nir.as_str(), "1.2.250.1.213.1.4.8")
    );
    let fhir: Value = serde_json::from_str(&export("fhir").await).expect("json");
    let p = patient_res(&fhir);
    assert_eq!(
        p["meta"]["profile"][0],
        "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"
    );
    let ins_id = p["identifier"]
        .as_array()
        .expect("identifiers")
        .iter()
        .find(|i| i["system"] == "urn:oid:1.2.250.1.213.1.4.8")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ins_id,
        json!({
            "use": "official",
            "type": {"coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "code": "INS-NIR"}]},
            "system": "urn:oid:1.2.250.1.213.1.4.8",
            "value": nir,
        })
    );
    let (_, pdf, _) = get_bytes(&api, &format!("/api/sessions/{session}/report.pdf")).await;
    let text = pdf_text(&pdf);
    if !text.is_empty() {
        assert!(
            text.contains(&format!("INS : {nir}")) && text.contains("identité qualifiée"),
            "{text}"
        );
    }

    // Each change of identity is in the audit trail, with its status and no INS.
    let rows = server.state.store.audit_rows().await.expect("audit");
    let ins_rows: Vec<&str> = rows
        .iter()
        .filter(|r| r.action == "ins.recorded" && r.subject == format!("patient:{patient}"))
        .map(|r| r.detail.as_str())
        .collect();
    assert_eq!(ins_rows, ["status=recuperee", "status=qualifiee"]);
    assert!(
        rows.iter()
            .all(|r| !r.detail.contains(&nir) && !r.subject.contains(&nir))
    );

    // A new patient created with an INS in one call; a wrong one creates nothing.
    let before = api.get("/api/patients").await.as_array().map(Vec::len);
    let (status, v) = api
        .call(
            reqwest::Method::POST,
            "/api/patients",
            Some(json!({"display_name": "M. Dupont", "birth_date": "1958-03-14", "ins": ins("qualifiee", Some("158037505612300"))})),
        )
        .await;
    assert_eq!((status, v["code"].as_str()), (422, Some("ins_key")));
    assert_eq!(v["details"]["field"], "ins.matricule", "{v}");
    assert_eq!(
        api.get("/api/patients").await.as_array().map(Vec::len),
        before
    );
    let created = api
        .post(
            "/api/patients",
            json!({"display_name": "M. Dupont", "birth_date": "1958-03-14", "ins": ins("validee", None)}),
        )
        .await;
    let detail = api
        .get(&format!(
            "/api/patients/{}",
            created["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(detail["ins"]["status"], "validee");
    assert!(detail["ins"]["matricule"].is_null());
}

// ---------------------------------------------------------------------------------------------
// OpenID Connect against a real provider.

/// How long the provider may take to print its ready line: its own bound, not [`WAIT`]. Node
/// loading `oidc-provider` took 2 s at a load average of 16 on this 2-core machine and over 10 s
/// at 20 while other builds ran; a slow start is not what these tests check.
const PROVIDER_START: Duration = Duration::from_secs(60);

/// The provider process (killed on drop) and its admin routes.
struct Idp {
    _child: tokio::process::Child,
    issuer: String,
    http: reqwest::Client,
}

impl Idp {
    async fn start(accounts: Value) -> Idp {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "tests/oidc is not installed: run `npm ci` in tests/oidc (tests/run does)"
        );
        let mut child = tokio::process::Command::new("node")
            .arg("provider.js")
            .current_dir(&dir)
            .env("OIDC_ACCOUNTS", accounts.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node provider.js");
        // Its stderr, drained (a full pipe would block it) and kept to explain a failed start.
        let stderr = Arc::new(parking_lot::Mutex::new(String::new()));
        let mut err_lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let keep = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(l)) = err_lines.next_line().await {
                let mut s = keep.lock();
                if s.len() < 8_000 {
                    s.push_str(&l);
                    s.push('\n');
                }
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let started = Instant::now();
        let first = match tokio::time::timeout(PROVIDER_START, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            outcome => {
                let _ = child.start_kill();
                let why = match outcome {
                    Err(_) => format!("no ready line within {PROVIDER_START:?}"),
                    Ok(Ok(_)) => format!("it exited after {:?}", started.elapsed()),
                    Ok(Err(e)) => format!("its stdout failed: {e}"),
                };
                // Lets the drain take what the provider wrote before it went.
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "the OpenID provider (node tests/oidc/provider.js) did not start: {why}; its stderr:\n{}",
                    stderr.lock()
                );
            }
        };
        let v: Value = serde_json::from_str(&first).expect("json");
        Idp {
            _child: child,
            issuer: v["issuer"].as_str().expect("issuer").to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn admin(&self, what: &str, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}/__admin/{what}", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("admin");
        assert_eq!(res.status(), 200, "admin {what}");
        res.json().await.expect("json")
    }
}

/// A browser, reduced to what a login needs: cookies per host, redirects followed by hand.
struct Browser {
    http: reqwest::Client,
    jar: HashMap<String, HashMap<String, String>>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .redirect(reqwest::redirect::Policy::none())
                .resolve("localhost", "127.0.0.1:0".parse().expect("addr"))
                .build()
                .expect("client"),
            jar: HashMap::new(),
        }
    }

    fn cookie_header(&self, url: &reqwest::Url) -> String {
        self.jar
            .get(url.host_str().unwrap_or_default())
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    fn keep_cookies(&mut self, url: &reqwest::Url, res: &reqwest::Response) {
        let jar = self
            .jar
            .entry(url.host_str().unwrap_or_default().to_owned())
            .or_default();
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().expect("ascii");
            let Some((k, val)) = v.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            if val.is_empty() || v.contains("Max-Age=0") || v.contains("expires=Thu, 01 Jan 1970") {
                jar.remove(k.trim());
            } else {
                jar.insert(k.trim().to_owned(), val.to_owned());
            }
        }
    }

    /// One request; returns the status, the absolute `Location` if any, and the body.
    async fn go(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
    ) -> (u16, Option<String>, String) {
        let url = reqwest::Url::parse(url).expect("url");
        let mut req = self
            .http
            .request(method, url.clone())
            .header("cookie", self.cookie_header(&url));
        if let Some(f) = form {
            req = req.form(f);
        }
        let res = req.send().await.expect("request");
        self.keep_cookies(&url, &res);
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| url.join(l).expect("location").to_string());
        (status, location, res.text().await.unwrap_or_default())
    }

    async fn get(&mut self, url: &str) -> (u16, Option<String>, String) {
        self.go(reqwest::Method::GET, url, None).await
    }

    /// From "Se connecter avec Pro Santé Connect" to the provider's answer: the callback URL on
    /// our server (not yet opened). `tamper` may change the authorization request first.
    async fn to_callback(
        &mut self,
        base: &str,
        login: &str,
        password: &str,
        tamper: impl FnOnce(&mut reqwest::Url),
    ) -> String {
        let (status, to_provider, _) = self.get(&format!("{base}/api/login/oidc/start")).await;
        assert_eq!(status, 303);
        let mut authz = reqwest::Url::parse(&to_provider.expect("to the provider")).expect("url");
        let q: HashMap<String, String> = authz.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["response_type"], "code");
        assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
        assert_eq!(q["scope"], "openid scope_all");
        assert_eq!(q["acr_values"], "eidas1");
        tamper(&mut authz);
        let (status, to_login, body) = self.get(authz.as_str()).await;
        assert_eq!(status, 303, "{body}");
        let to_login = to_login.expect("to the login page");
        let (status, _, page) = self.get(&to_login).await;
        assert!(status == 200 && page.contains("Se connecter"), "{page}");
        let (status, resume, body) = self
            .go(
                reqwest::Method::POST,
                &to_login,
                Some(&[("login", login), ("password", password)]),
            )
            .await;
        assert_eq!(status, 303, "{body}");
        let (status, callback, body) = self.get(&resume.expect("resume")).await;
        assert_eq!(status, 303, "{body}");
        let callback = callback.expect("callback");
        assert!(
            callback.starts_with(&format!("{base}/api/login/oidc/callback?")),
            "{callback}"
        );
        callback
    }

    /// Opens the callback; returns where it sends the browser, and the dashboard cookie.
    async fn finish(&mut self, callback: &str) -> (String, Option<String>) {
        let (status, location, _) = self.get(callback).await;
        assert_eq!(status, 303);
        let host = reqwest::Url::parse(callback)
            .expect("url")
            .host_str()
            .unwrap_or_default()
            .to_owned();
        let cookie = self
            .jar
            .get(&host)
            .and_then(|c| c.get("telesoin_session"))
            .map(|v| format!("telesoin_session={v}"));
        let location = location.expect("location");
        let path = reqwest::Url::parse(&location).expect("url");
        (
            format!(
                "{}{}",
                path.path(),
                path.query().map(|q| format!("?{q}")).unwrap_or_default()
            ),
            cookie,
        )
    }
}

async fn kine_with_rpps(server: &Server, rpps: &str) -> Kine {
    let kine = Kine {
        id: KineId(Uuid::new_v4()),
        rpps: rpps.into(),
        name: "Claire Martin".into(),
        email: format!("{rpps}@example.fr"),
    };
    let hash = telesoin_server::auth::hash_password(PASSWORD).expect("hash");
    server
        .state
        .store
        .create_kine(&kine, &hash, chrono::Utc::now())
        .await
        .expect("kine");
    kine
}

async fn oidc_server(issuer: &str, tweak: impl FnOnce(&mut telesoin_server::Config)) -> Server {
    let issuer = issuer.to_owned();
    Server::start_with(move |c| {
        c.oidc_issuer = issuer;
        c.oidc_client_id = Some("telesoin".into());
        c.oidc_client_secret = Some("telesoin-test-secret".into());
        c.oidc_allow_http = true;
        tweak(c);
    })
    .await
}

async fn me(server: &Server, cookie: &str) -> (u16, Value) {
    let api = Api {
        http: http(),
        base: server.base.clone(),
        cookie: cookie.to_owned(),
    };
    api.call(reqwest::Method::GET, "/api/me", None).await
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut u = reqwest::Url::parse(url).expect("url");
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == name {
                (k, value.to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

#[tokio::test]
async fn pro_sante_connect_login_against_a_real_provider() {
    let idp = Idp::start(json!([
        {"login": "claire", "password": "cps-1234", "rpps": "10001234567", "given_name": "Claire", "family_name": "Martin", "acr": "eidas1"},
        {"login": "inconnu", "password": "cps-5678", "rpps": "10009999999", "given_name": "Jean", "family_name": "Inconnu", "acr": "eidas1"},
        {"login": "faible", "password": "cps-0000", "rpps": "10001234567", "given_name": "Claire", "family_name": "Martin", "acr": "eidas0"},
    ]))
    .await;
    let server = oidc_server(&idp.issuer, |_| {}).await;
    idp.admin(
        "setup",
        json!({
            "redirect_uris": [format!("{}/api/login/oidc/callback", server.base)],
            "post_logout_redirect_uris": [format!("{}/app/", server.base)],
        }),
    )
    .await;
    let kine = kine_with_rpps(&server, "10001234567").await;
    let base = server.base.clone();

    // The login page offers both ways.
    let options = Api {
        http: http(),
        base: base.clone(),
        cookie: String::new(),
    }
    .get("/api/login/options")
    .await;
    assert_eq!(options["password"], true);
    assert_eq!(options["oidc"]["label"], "Pro Santé Connect");

    // A good login: the provider's RPPS (SubjectNameID "8" + RPPS) is the kiné's.
    let mut b = Browser::new();
    let callback = b.to_callback(&base, "claire", "cps-1234", |_| {}).await;
    let (to, cookie) = b.finish(&callback).await;
    assert_eq!(to, "/app/");
    let cookie = cookie.expect("dashboard cookie");
    let (status, who) = me(&server, &cookie).await;
    assert_eq!((status, who["rpps"].as_str()), (200, Some("10001234567")));
    assert_eq!(who["id"], json!(kine.id.0));

    // The same callback again (a replayed code): refused, no second session.
    let mut replay = Browser::new();
    replay.jar = b.jar.clone();
    replay.jar.values_mut().for_each(|c| {
        c.remove("telesoin_session");
    });
    let (to, again) = replay.finish(&callback).await;
    assert_eq!(
        (to.as_str(), again),
        ("/app/?login_error=oidc_failed", None)
    );

    // Logout ends the session here and sends the browser to the provider's end_session_endpoint.
    let api = Api {
        http: http(),
        base: base.clone(),
        cookie: cookie.clone(),
    }
    .adopt_csrf()
    .await;
    let (status, out) = api
        .call(reqwest::Method::POST, "/api/logout", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{out}");
    let end = reqwest::Url::parse(out["end_session_url"].as_str().expect("end_session_url"))
        .expect("url");
    assert!(
        end.as_str()
            .starts_with(&format!("{}/session/end?", idp.issuer)),
        "{end}"
    );
    let q: HashMap<String, String> = end.query_pairs().into_owned().collect();
    assert!(q.contains_key("id_token_hint"));
    assert_eq!(q["post_logout_redirect_uri"], format!("{base}/app/"));
    let (status, page) = {
        let res = reqwest::get(end.as_str()).await.expect("end session");
        (res.status().as_u16(), res.text().await.unwrap_or_default())
    };
    assert_eq!(
        status, 200,
        "the provider accepts the logout request: {page}"
    );
    assert_eq!(me(&server, &cookie).await.0, 401, "logged out here");

    // A wrong state: refused.
    let mut b = Browser::new();
    let callback = b.to_callback(&base, "claire", "cps-1234", |_| {}).await;
    let (to, cookie) = b
        .finish(&with_param(&callback, "state", "forged-state-value"))
        .await;
    assert_eq!(
        (to.as_str(), cookie),
        ("/app/?login_error=oidc_failed", None)
    );

    // A wrong nonce: the provider signs the nonce it was given, not ours.
    let mut b = Browser::new();
    let callback = b
        .to_callback(&base, "claire", "cps-1234", |u| {
            let s = with_param(
                u.as_str(),
                "nonce",
                "another-nonce-0123456789012345678901234567",
            );
            *u = reqwest::Url::parse(&s).expect("url");
        })
        .await;
    assert_eq!(
        b.finish(&callback).await,
        ("/app/?login_error=oidc_failed".into(), None)
    );

    // An RPPS that matches no kiné.
    let mut b = Browser::new();
    let callback = b.to_callback(&base, "inconnu", "cps-5678", |_| {}).await;
    assert_eq!(
        b.finish(&callback).await,
        ("/app/?login_error=oidc_unknown_rpps".into(), None)
    );

    // An authentication level below the one asked (eidas0 instead of eidas1).
    let mut b = Browser::new();
    let callback = b.to_callback(&base, "faible", "cps-0000", |_| {}).await;
    assert_eq!(
        b.finish(&callback).await,
        ("/app/?login_error=oidc_acr".into(), None)
    );

    // Key rotation at the provider: a new kid, unknown to our cached JWKS, fetched again.
    let before: Value = reqwest::get(format!("{}/jwks", idp.issuer))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let rotated = idp.admin("rotate", json!({})).await;
    assert_ne!(before["keys"][0]["kid"], rotated["kid"]);
    let mut b = Browser::new();
    let callback = b.to_callback(&base, "claire", "cps-1234", |_| {}).await;
    let (to, cookie) = b.finish(&callback).await;
    assert_eq!(to, "/app/", "signed with the new key, accepted");
    assert_eq!(me(&server, &cookie.expect("cookie")).await.0, 200);

    // An expired ID token: the provider's clock runs two hours behind.
    idp.admin("mode", json!({"clock_offset_seconds": -7200}))
        .await;
    let mut b = Browser::new();
    let callback = b.to_callback(&base, "claire", "cps-1234", |_| {}).await;
    assert_eq!(
        b.finish(&callback).await,
        ("/app/?login_error=oidc_failed".into(), None)
    );

    // A foreign issuer (the discovery document still names ours): refused from the authorization
    // response's `iss` (RFC 9207), and, without it, from the ID token's `iss`.
    idp.admin("mode", json!({"foreign_issuer": true})).await;
    let mut b = Browser::new();
    let callback = b.to_callback(&base, "claire", "cps-1234", |_| {}).await;
    assert!(callback.contains("iss="), "{callback}");
    assert_eq!(
        b.finish(&callback).await,
        ("/app/?login_error=oidc_failed".into(), None)
    );
    let mut b = Browser::new();
    let callback = b.to_callback(&base, "claire", "cps-1234", |_| {}).await;
    let mut u = reqwest::Url::parse(&callback).expect("url");
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "iss")
        .collect();
    u.query_pairs_mut().clear().extend_pairs(kept);
    assert_eq!(
        b.finish(u.as_str()).await,
        ("/app/?login_error=oidc_failed".into(), None)
    );
    idp.admin("mode", json!({})).await;

    // The audit trail says which method each login used.
    let rows = server.state.store.audit_rows().await.expect("audit");
    let logins: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.action.starts_with("login"))
        .map(|r| (r.action.as_str(), r.detail.as_str()))
        .collect();
    assert!(
        logins.contains(&("login.succeeded", "method=oidc")),
        "{logins:?}"
    );
    assert!(
        logins.contains(&("login.failed", "method=oidc")),
        "{logins:?}"
    );

    // The refusal words the login page shows for a code.
    let options = Api {
        http: http(),
        base: base.clone(),
        cookie: String::new(),
    }
    .get("/api/login/options?error=oidc_unknown_rpps")
    .await;
    assert_eq!(options["error"]["code"], "oidc_unknown_rpps");
    assert!(
        options["error"]["message_fr"]
            .as_str()
            .is_some_and(|m| m.contains("RPPS"))
    );
    server.stop().await;
}

#[tokio::test]
async fn provider_down_keeps_the_password_login_and_it_can_be_turned_off() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let server = oidc_server(&format!("http://127.0.0.1:{port}"), |_| {}).await;
    let mut b = Browser::new();
    let (status, to, _) = b
        .get(&format!("{}/api/login/oidc/start", server.base))
        .await;
    assert_eq!(
        (
            status,
            to.as_deref()
                .map(|t| t.ends_with("/app/?login_error=oidc_unavailable"))
        ),
        (303, Some(true))
    );
    let anon = Api {
        http: http(),
        base: server.base.clone(),
        cookie: String::new(),
    };
    let options = anon.get("/api/login/options?error=oidc_unavailable").await;
    assert_eq!(
        options["password"], true,
        "the password login is still offered"
    );
    assert!(
        options["error"]["message_fr"]
            .as_str()
            .is_some_and(|m| m.contains("mot de passe"))
    );
    assert!(
        options["error"]["message_en"]
            .as_str()
            .is_some_and(|m| m.contains("password"))
    );
    let api = server.kine("still@example.fr").await;
    assert_eq!(api.get("/api/me").await["email"], "still@example.fr");
    let rows = server.state.store.audit_rows().await.expect("audit");
    assert!(
        rows.iter()
            .any(|r| r.action == "login.succeeded" && r.detail == "method=password"),
        "the password login is audited as such"
    );
    server.stop().await;

    let server = oidc_server(&format!("http://127.0.0.1:{port}"), |c| {
        c.password_login = false
    })
    .await;
    let anon = Api {
        http: http(),
        base: server.base.clone(),
        cookie: String::new(),
    };
    assert_eq!(anon.get("/api/login/options").await["password"], false);
    kine_with_rpps(&server, "10007777777").await;
    let (status, v) = anon
        .call(
            reqwest::Method::POST,
            "/api/login",
            Some(json!({"email": "10007777777@example.fr", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("password_login_disabled"))
    );
    server.stop().await;
}

#[tokio::test]
async fn private_key_jwt_client_authentication() {
    let idp = Idp::start(json!([
        {"login": "claire", "password": "cps-1234", "rpps": "10001234567", "given_name": "Claire", "family_name": "Martin", "acr": "eidas1"},
    ]))
    .await;
    // Our key pair (EC P-256): the PEM for telesoin, the public JWK registered at the provider.
    let key = rcgen::KeyPair::generate().expect("key");
    let dir = tempfile::tempdir().expect("dir");
    let pem = dir.path().join("client.pem");
    std::fs::write(&pem, key.serialize_pem()).expect("write");
    let raw = key.public_key_raw();
    assert_eq!((raw.len(), raw[0]), (65, 4), "uncompressed P-256 point");
    let b64 =
        |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..]), "kid": "telesoin-1", "alg": "ES256", "use": "sig"});
    let issuer = idp.issuer.clone();
    let server = Server::start_with(move |c| {
        c.oidc_issuer = issuer;
        c.oidc_client_id = Some("telesoin-pkjwt".into());
        c.oidc_private_key = Some(pem);
        c.oidc_private_key_id = Some("telesoin-1".into());
        c.oidc_allow_http = true;
    })
    .await;
    idp.admin(
        "setup",
        json!({
            "redirect_uris": [format!("{}/api/login/oidc/callback", server.base)],
            "post_logout_redirect_uris": [format!("{}/app/", server.base)],
            "pkjwt_jwks": {"keys": [jwk]},
        }),
    )
    .await;
    kine_with_rpps(&server, "10001234567").await;
    let mut b = Browser::new();
    let callback = b
        .to_callback(&server.base, "claire", "cps-1234", |_| {})
        .await;
    let (to, cookie) = b.finish(&callback).await;
    assert_eq!(
        to, "/app/",
        "the provider accepted our signed client assertion"
    );
    assert_eq!(me(&server, &cookie.expect("cookie")).await.0, 200);

    // The same client with a key the provider does not know: the token endpoint refuses.
    let other = rcgen::KeyPair::generate().expect("key");
    let pem2 = dir.path().join("other.pem");
    std::fs::write(&pem2, other.serialize_pem()).expect("write");
    let issuer = idp.issuer.clone();
    let wrong = Server::start_with(move |c| {
        c.oidc_issuer = issuer;
        c.oidc_client_id = Some("telesoin-pkjwt".into());
        c.oidc_private_key = Some(pem2);
        c.oidc_private_key_id = Some("telesoin-1".into());
        c.oidc_allow_http = true;
    })
    .await;
    idp.admin(
        "setup",
        json!({
            "redirect_uris": [format!("{}/api/login/oidc/callback", wrong.base)],
            "post_logout_redirect_uris": [format!("{}/app/", wrong.base)],
        }),
    )
    .await;
    kine_with_rpps(&wrong, "10001234567").await;
    let mut b = Browser::new();
    let callback = b
        .to_callback(&wrong.base, "claire", "cps-1234", |_| {})
        .await;
    assert_eq!(
        b.finish(&callback).await,
        ("/app/?login_error=oidc_failed".into(), None)
    );
    wrong.stop().await;
    server.stop().await;
}
