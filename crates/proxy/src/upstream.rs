//! The pooled client to the upstream: keep-alive, HTTP/1.1, HTTP/2 by ALPN over TLS (or by
//! prior knowledge in clear text), rustls on ring with the system's CAs plus an optional
//! extra CA file.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentrail_recorder::capture::CapturingBody;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, CapturingBody<Body>>;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot read the upstream CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("cannot set up TLS to the upstream: {0}")]
    Tls(#[from] rustls::Error),
}

pub fn client(ca_file: Option<&Path>, http2_only: bool) -> Result<UpstreamClient, UpstreamError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: an extra CA file may be all that is needed.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let ca_error = |reason: String| UpstreamError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|error| ca_error(error.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|error| ca_error(error.to_string()))?;
        if certificates.is_empty() {
            return Err(ca_error("no certificate in it".to_owned()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| ca_error(error.to_string()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(std::time::Duration::from_secs(30));
    if http2_only {
        builder.http2_only(true);
    }
    Ok(builder.build(connector))
}
