//! TLS without a sidecar: rustls on ring, HTTP/1.1 and HTTP/2 by ALPN, and a certificate
//! that is read again on SIGHUP, so a renewed certificate is picked up without a restart
//! (connections already open keep the one they started with).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate chain {path}: {detail}")]
    Certificate { path: PathBuf, detail: String },
    #[error("cannot read the TLS private key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
    #[error("the TLS settings are not usable: {0}")]
    Config(#[from] rustls::Error),
}

/// The certificate and key files, and the certificate currently served from them.
#[derive(Debug)]
pub struct ReloadableCertificate {
    certificate_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCertificate {
    pub fn load(certificate_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let current = read_certified_key(certificate_path, key_path)?;
        Ok(ReloadableCertificate {
            certificate_path: certificate_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads both files again; on error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read_certified_key(&self.certificate_path, &self.key_path)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(fresh);
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        )
    }
}

/// The acceptor for the listener, and the certificate to reload on SIGHUP.
pub fn acceptor(certificate: Arc<ReloadableCertificate>) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_certified_key(certificate_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let certificate_error = |detail: String| TlsError::Certificate {
        path: certificate_path.to_path_buf(),
        detail,
    };
    let chain = CertificateDer::pem_file_iter(certificate_path)
        .map_err(|error| certificate_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| certificate_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(certificate_error(
            "no PEM certificate in the file".to_owned(),
        ));
    }
    let key_error = |detail: String| TlsError::Key {
        path: key_path.to_path_buf(),
        detail,
    };
    let key =
        PrivateKeyDer::from_pem_file(key_path).map_err(|error| key_error(error.to_string()))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|error| key_error(error.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .map_err(|error| key_error(format!("it does not match the certificate: {error}")))?;
    Ok(certified)
}
