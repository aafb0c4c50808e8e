//! The rustls client configuration for mail servers: which certificates are trusted (the webpki
//! roots, the system store and an optional extra CA file) and the one dangerous escape hatch that
//! trusts anything. Connecting, STARTTLS and telling a certificate error from a network error are
//! the callers' business (IMAP here; SMTP may reuse this).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the CA file {path}: {cause}")]
    CaFile { path: PathBuf, cause: io::Error },
    #[error("cannot use the CA file {path}: it holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot trust a certificate from the CA file {path}: {cause}")]
    BadCertificate { path: PathBuf, cause: rustls::Error },
    #[error("cannot set up TLS: {0}")]
    Config(rustls::Error),
}

/// Who a TLS client believes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust<'a> {
    /// The webpki roots, the system store and, if given, the certificates in one more PEM file
    /// (a company CA or a test CA).
    Verified { extra_ca_file: Option<&'a Path> },
    /// Any certificate for any name: the connection is encrypted but not authenticated, so
    /// anyone on the path can read the password. For a self-signed server the rep accepts.
    DangerousAcceptInvalidCerts,
}

/// A client config for `trust`, on the ring provider (set explicitly, so the process-wide
/// default provider does not matter).
pub fn client_config(trust: Trust<'_>) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(Error::Config)?;
    let config = match trust {
        Trust::Verified { extra_ca_file } => builder
            .with_root_certificates(root_store(extra_ca_file)?)
            .with_no_client_auth(),
        Trust::DangerousAcceptInvalidCerts => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn root_store(extra_ca_file: Option<&Path>) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!("skipping part of the system certificate store: {error}");
    }
    // A system store may hold certificates webpki cannot parse; skipping them is what browsers do.
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!("trusting {added} system certificates ({ignored} unparsable skipped)");
    if let Some(path) = extra_ca_file {
        for cert in ca_file_certificates(path)? {
            roots.add(cert).map_err(|cause| Error::BadCertificate {
                path: path.to_path_buf(),
                cause,
            })?;
        }
    }
    Ok(roots)
}

fn ca_file_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let ca_file_error = |cause| Error::CaFile {
        path: path.to_path_buf(),
        cause,
    };
    let pem = std::fs::read(path).map_err(ca_file_error)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(ca_file_error)?;
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The rustls certificate error inside a failed handshake, if that is why it failed.
pub fn certificate_error(error: &io::Error) -> Option<&rustls::Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .filter(|e| {
            matches!(
                e,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            )
        })
}

/// Accepts any certificate for any name, but still checks that the handshake is signed by the
/// key in the certificate presented, so the session at least belongs to whoever sent it.
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
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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
    fn a_missing_ca_file_is_named() {
        let path = Path::new("/nonexistent/pushback-ca.pem");
        let error = client_config(Trust::Verified {
            extra_ca_file: Some(path),
        })
        .unwrap_err();
        assert!(matches!(error, Error::CaFile { .. }), "{error}");
        assert!(error.to_string().contains("/nonexistent/pushback-ca.pem"));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = client_config(Trust::Verified {
            extra_ca_file: Some(&path),
        })
        .unwrap_err();
        assert!(matches!(error, Error::NoCertificate { .. }), "{error}");
    }

    #[test]
    fn both_trust_modes_build() {
        client_config(Trust::Verified {
            extra_ca_file: None,
        })
        .unwrap();
        client_config(Trust::DangerousAcceptInvalidCerts).unwrap();
    }
}
