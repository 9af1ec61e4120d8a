//! TLS for the signaling socket: rustls with the `ring` provider, nothing else.
//!
//! Trust comes from one of three places, in this order: `accept_invalid_certs` (loopback tests
//! only: any certificate is accepted, signatures are still checked), the PEM certificates given
//! in `ca_pem` (for a self-signed test server), or the Mozilla roots (`webpki-roots`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{PeerError, Result};

/// Builds the rustls client configuration for `wss://` links.
pub(crate) fn client_config(
    accept_invalid_certs: bool,
    ca_pem: Option<&[u8]>,
) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PeerError::Tls(e.to_string()))?;
    let config = if accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                let mut added = 0usize;
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert =
                        cert.map_err(|e| PeerError::Tls(format!("reading the CA PEM: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| PeerError::Tls(format!("unusable CA certificate: {e}")))?;
                    added += 1;
                }
                if added == 0 {
                    return Err(PeerError::Tls("the CA PEM holds no certificate".into()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate, for loopback tests against a self-signed server. The
/// handshake signatures are still verified, so the connection is encrypted to whoever holds
/// the presented key; what is skipped is checking who that is.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_each_trust_mode() {
        assert!(client_config(true, None).is_ok());
        assert!(client_config(false, None).is_ok());
        assert!(matches!(
            client_config(false, Some(b"not a pem")),
            Err(PeerError::Tls(_))
        ));
    }
}
