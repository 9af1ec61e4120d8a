//! TLS with rustls and the ring provider. Without a configured certificate, a self-signed one for
//! localhost is generated once and kept in `DATA_DIR/tls/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Installs ring as the process-wide rustls provider (idempotent).
pub fn install_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where the certificate came from, for the start-up message.
#[derive(Debug, Clone)]
pub enum CertSource {
    Configured(PathBuf),
    SelfSigned { path: PathBuf, generated: bool },
}

pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<(Arc<ServerConfig>, CertSource)> {
    install_ring();
    let (cert_path, key_path, source) = match (cert, key) {
        (Some(c), Some(k)) => (
            c.to_path_buf(),
            k.to_path_buf(),
            CertSource::Configured(c.to_path_buf()),
        ),
        _ => {
            let dir = data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            let generated = !c.exists() || !k.exists();
            if generated {
                std::fs::create_dir_all(&dir)?;
                let certified = rcgen::generate_simple_self_signed(vec![
                    "localhost".to_owned(),
                    "127.0.0.1".to_owned(),
                    "::1".to_owned(),
                ])?;
                std::fs::write(&c, certified.cert.pem())?;
                let _ = std::fs::remove_file(&k);
                crate::keys::write_private(&k, certified.signing_key.serialize_pem().as_bytes())?;
            }
            (c.clone(), k, CertSource::SelfSigned { path: c, generated })
        }
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(&cert_path)
            .with_context(|| format!("open certificate {}", cert_path.display()))?,
    ))
    .collect::<Result<_, _>>()
    .with_context(|| format!("read certificate {}", cert_path.display()))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(&key_path)
            .with_context(|| format!("open key {}", key_path.display()))?,
    ))?
    .with_context(|| format!("no private key in {}", key_path.display()))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("certificate and key do not match")?;
    // HTTP/1.1 only: WebSocket upgrades then work the same way for every browser and proxy.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), source))
}
