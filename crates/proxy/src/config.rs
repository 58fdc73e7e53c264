//! One proxy's settings: a `[[proxy]]` section of the server's TOML, or the flags (and
//! `--config FILE`) of `opentrail proxy`.
//!
//! ```toml
//! [[proxy]]
//! listen = "127.0.0.1:4590"
//! upstream = "http://127.0.0.1:9000"
//! # upstream_ca = "/etc/ssl/internal-ca.pem"   # trusted besides the system's CAs
//! # upstream_http2 = false                     # HTTP/2 without TLS (prior knowledge)
//! # preserve_host = true                       # keep the client's Host (SigV4 signs it)
//! # on_queue_full = "refuse"                   # or "pass": forward unrecorded calls
//! [proxy.recording]
//! key_names = { AKIAIOSFODNN7EXAMPLE = "alice" }
//! redact_headers = ["x-tenant-secret"]
//! redact_json_paths = ["card.number"]
//! [[proxy.recording.routes]]
//! method = "POST"
//! path = "/v1/users/{user}/keys"
//! event_name = "CreateUserKey"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use opentrail_recorder::RecordingOptions;
use serde::Deserialize;

/// What to do with a call when its record cannot be queued.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WhenQueueFull {
    /// Answer 503 without forwarding: no call goes unrecorded (the default).
    #[default]
    Refuse,
    /// Forward the call anyway; it is counted in `opentrail_proxy_unrecorded_calls_total`.
    Pass,
}

impl std::str::FromStr for WhenQueueFull {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "refuse" => Ok(WhenQueueFull::Refuse),
            "pass" => Ok(WhenQueueFull::Pass),
            other => Err(format!("{other:?} is not refuse or pass")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    /// `http://host:port` or `https://host:port`, optionally with a path prefix.
    pub upstream: String,
    #[serde(default)]
    pub upstream_ca: Option<PathBuf>,
    #[serde(default)]
    pub upstream_http2: bool,
    #[serde(default = "yes")]
    pub preserve_host: bool,
    #[serde(default)]
    pub on_queue_full: WhenQueueFull,
    #[serde(default)]
    pub recording: RecordingOptions,
}

fn yes() -> bool {
    true
}

impl ProxyConfig {
    pub fn new(listen: SocketAddr, upstream: String) -> ProxyConfig {
        ProxyConfig {
            listen,
            upstream,
            upstream_ca: None,
            upstream_http2: false,
            preserve_host: true,
            on_queue_full: WhenQueueFull::Refuse,
            recording: RecordingOptions::default(),
        }
    }

    /// Checks what the TOML types cannot: the upstream URL and the route templates.
    pub fn validate(&self) -> Result<(), String> {
        let upstream: http::Uri = self
            .upstream
            .parse()
            .map_err(|error| format!("proxy upstream {:?}: {error}", self.upstream))?;
        match upstream.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(format!(
                    "proxy upstream {:?} must start with http:// or https://",
                    self.upstream
                ));
            }
        }
        if upstream.authority().is_none() {
            return Err(format!("proxy upstream {:?} has no host", self.upstream));
        }
        self.recording
            .validate()
            .map_err(|error| format!("proxy {}: {error}", self.listen))
    }
}
