//! V12 files and resources: the embedded static files cannot be escaped, and documents (PDFs,
//! exports) are the owner's only, never cached, never sniffed.

use serde_json::json;

use crate::support::*;

/// A GET on a raw path (no client-side normalisation of `..`), over the real TLS socket.
async fn raw_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("tcp");
    let connector = tokio_rustls::TlsConnector::from(tls_client());
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("tls");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn static_files_cannot_be_escaped() {
    let server = Server::start().await;
    for path in [
        "/ui/../Cargo.toml",
        "/ui/../../Cargo.toml",
        "/ui/%2e%2e/Cargo.toml",
        "/ui/%2e%2e%2f%2e%2e%2fCargo.toml",
        "/ui/..%2fREADME.md",
        "/ui/....//....//etc/passwd",
        "/ui/%252e%252e/Cargo.toml",
        "/ui/.git/config",
        "/ui/README.md",
        "/ui/tsconfig.json",
        "/ui//etc/passwd",
        "/ui/..\\..\\Cargo.toml",
        "/ui/lib/%00api.js",
    ] {
        let (status, text) = raw_get(server.port, path).await;
        assert!(
            status == 404 || status == 400,
            "{path}: {status} {}",
            &text[..text.len().min(200)]
        );
        assert!(
            !text.contains("[package]") && !text.contains("root:"),
            "{path}"
        );
    }
    // The control: a real file is served.
    assert_eq!(raw_get(server.port, "/ui/lib/api.js").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn documents_are_private_uncached_and_typed() {
    let server = Server::start().await;
    let a = server.kine("docs@example.fr").await;
    let b = server.kine("other@example.fr").await;
    let p = a.ready_patient().await;
    let s = a.session(p, json!({})).await;
    // A held session (a never-held one has no documents): about 1.5 s of video both ways.
    let (kt, _) = a.link(s, "kine").await;
    let (pt, pid) = a.link(s, "patient").await;
    let (mut k, _) = welcomed(server.port, &kt).await;
    k.until("admitted").await;
    let (mut pa, _) = welcomed(server.port, &pt).await;
    k.until("lobby_waiting").await;
    k.send(json!({"type": "admit", "participant": pid})).await;
    pa.until("admitted").await;
    let media = json!({"type": "media", "state": "connected", "video_in": true, "video_out": true});
    k.send(media.clone()).await;
    pa.send(media).await;
    pa.send(json!({"type": "ping"})).await;
    pa.until("pong").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    k.send(json!({"type": "hangup"})).await;
    k.until("ended").await;
    a.post(
        &format!("/api/sessions/{s}/report"),
        json!({"text": "Séance à distance"}),
    )
    .await;
    for path in [
        format!("/api/sessions/{s}/report.pdf"),
        format!("/api/sessions/{s}/invoice.pdf"),
    ] {
        let res = a
            .http
            .get(format!("{}{path}", a.base))
            .header("cookie", &a.cookie)
            .send()
            .await
            .expect("pdf");
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert_eq!(h["content-type"], "application/pdf", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "no-store");
        // The other kiné gets nothing.
        let (status, _) = b.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 404, "{path}");
    }
    // Exports hold only the caller's own sessions.
    let res = b
        .http
        .get(format!("{}/api/exports?format=csv", b.base))
        .header("cookie", &b.cookie)
        .send()
        .await
        .expect("export");
    let text = res.text().await.expect("csv");
    assert!(!text.contains(&s.to_string()), "{text}");
    server.stop().await;
}
