//! The console's static files, compiled into the binary from `crates/server/console/`.
//!
//! There is no build step: the files are plain HTML, CSS and JavaScript modules, so
//! `cargo build` alone ships them. Every response carries an `ETag` (the file's SHA-256)
//! and `Cache-Control: no-cache`, so a browser revalidates cheaply (304) and a new binary
//! is picked up at once.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "console/"]
struct ConsoleFiles;

/// The single page every console URL (`/console/events`, `/console/keys`, …) loads; the
/// script then renders the page the path names.
pub const INDEX: &str = "index.html";

/// `GET /console/assets/{*file}`.
pub async fn asset(Path(file): Path<String>, request_headers: HeaderMap) -> Response {
    serve(&format!("assets/{file}"), &request_headers)
}

/// Any console page path: the single-page shell.
pub async fn index(request_headers: HeaderMap) -> Response {
    serve(INDEX, &request_headers)
}

/// Whether the embedded files include `path` (for tests and start-up checks).
pub fn exists(path: &str) -> bool {
    ConsoleFiles::get(path).is_some()
}

fn serve(path: &str, request_headers: &HeaderMap) -> Response {
    // rust-embed only knows the files it embedded, so `..` or absolute paths match
    // nothing and cannot reach the file system.
    let Some(file) = ConsoleFiles::get(path) else {
        return (StatusCode::NOT_FOUND, "Not found").into_response();
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let mut response = if if_none_match(request_headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, file.data.into_owned()).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

fn if_none_match(request_headers: &HeaderMap, etag: &str) -> bool {
    request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|candidate| candidate.trim() == etag))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_and_its_assets_are_embedded() {
        for path in [
            INDEX,
            "assets/console.js",
            "assets/console.css",
            "assets/favicon.svg",
        ] {
            assert!(exists(path), "{path} is not embedded");
        }
        assert!(!exists("../Cargo.toml"));
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/console.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("assets/x"), "application/octet-stream");
    }
}
