//! The router as clients see it: authentication outcomes, permissions, key management,
//! request ids. Requests go through the whole layer stack (`tower::ServiceExt::oneshot`),
//! signed with the protocol crate's SigV4 signer, as the CLI signs them.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use opentrail_protocol::sigv4::{self, SigningParams};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::keys::{CreatedAccessKey, KeyStore, Role};
use crate::test_state::{TestState, local_peer, test_state};

const DEFAULT_ACCOUNT: &str = "123456789012";
const OTHER_ACCOUNT: &str = "444455556666";
const BODY_BYTES_MAX: usize = 4096;

struct TestServer {
    router: Router,
    keys: KeyStore,
    detections: std::sync::Arc<opentrail_detect::Detections>,
    admin: CreatedAccessKey,
    _data_dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    error_type: Option<String>,
    request_id: Option<String>,
    json: Value,
}

impl TestServer {
    fn start() -> TestServer {
        let TestState {
            state,
            admin,
            data_dir,
        } = test_state(|config| config.ingest_body_bytes_max = BODY_BYTES_MAX);
        let keys = state.keys.clone();
        let detections = state.detections.clone();
        TestServer {
            router: super::router(state).layer(local_peer()),
            keys,
            detections,
            admin,
            _data_dir: data_dir,
        }
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let error_type = header("x-amzn-errortype");
        let request_id = header("x-amzn-requestid");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            error_type,
            request_id,
            json,
        }
    }

    async fn signed(
        &self,
        key: &CreatedAccessKey,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        self.send(signed_request(
            &key.key.access_key_id,
            &key.secret_access_key,
            method,
            path,
            body.map(|value| value.to_string().into_bytes()),
        ))
        .await
    }

    async fn create_key(
        &self,
        creator: &CreatedAccessKey,
        role: &str,
        account_id: &str,
    ) -> CreatedAccessKey {
        let answer = self
            .signed(
                creator,
                "POST",
                "/v1/keys",
                Some(json!({"role": role, "accountId": account_id})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        let access_key_id = answer.json["accessKeyId"].as_str().expect("id").to_owned();
        CreatedAccessKey {
            key: self.keys.get(&access_key_id).expect("stored"),
            secret_access_key: answer.json["secretAccessKey"]
                .as_str()
                .expect("secret")
                .to_owned(),
            bearer_token: answer.json["token"].as_str().map(str::to_owned),
        }
    }
}

fn signed_request(
    access_key_id: &str,
    secret_access_key: &str,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Request<Body> {
    let host = "localhost:4580";
    let payload = body.unwrap_or_default();
    let mut headers = vec![("host", host)];
    if !payload.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    let signature_headers = sigv4::sign(
        method,
        path,
        &headers,
        &payload,
        &SigningParams {
            access_key_id,
            secret_access_key,
            region: "us-east-1",
            service: "cloudtrail",
            now: jiff::Timestamp::now(),
            include_content_sha256: false,
        },
    );
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    for (name, value) in signature_headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::from(payload)).expect("request")
}

fn unsigned(method: &str, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .expect("request")
}

fn bearer(path: &str, token: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn health_is_open_and_every_response_carries_a_request_id() {
    let server = TestServer::start();
    let health = server.send(unsigned("GET", "/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json, json!({"status": "ok"}));
    let first_id = health.request_id.expect("request id on success");
    assert_eq!(
        uuid::Uuid::parse_str(&first_id).map(|id| id.get_version_num()),
        Ok(4)
    );

    let unknown = server.send(unsigned("GET", "/nope")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let unauthenticated = server.send(unsigned("GET", "/v1/keys")).await;
    for answer in [&unknown, &unauthenticated] {
        let id = answer
            .request_id
            .as_deref()
            .expect("request id on errors too");
        assert_ne!(id, first_id, "ids are per request");
    }
}

#[tokio::test]
async fn ready_lists_the_last_detection_fault_and_stays_ready() {
    let server = TestServer::start();
    let before = server.send(unsigned("GET", "/ready")).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(before.json["status"], "ready");
    assert!(before.json.get("reasons").is_none(), "{}", before.json);

    server.detections.faults().note(
        "matching the event at seq 7 panicked (index out of bounds); it fired no rule".into(),
    );
    let after = server.send(unsigned("GET", "/ready")).await;
    assert_eq!(after.status, StatusCode::OK, "writes are still accepted");
    assert_eq!(after.json["status"], "ready");
    assert_eq!(after.json["writes"], "accepting");
    let reasons = after.json["reasons"].as_array().expect("reasons listed");
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let reason = reasons[0].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("detection fault: ") && reason.contains("seq 7 panicked"),
        "{reason}"
    );
}

#[tokio::test]
async fn unsigned_request_is_missing_authentication_token() {
    let server = TestServer::start();
    let answer = server.send(unsigned("GET", "/metrics")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.error_type.as_deref(),
        Some("MissingAuthenticationTokenException")
    );
    assert_eq!(answer.json["__type"], "MissingAuthenticationTokenException");
}

#[tokio::test]
async fn wrong_secret_is_invalid_signature_and_unknown_key_is_unrecognized() {
    let server = TestServer::start();
    let wrong_secret = server
        .send(signed_request(
            &server.admin.key.access_key_id,
            "not-the-secret",
            "GET",
            "/v1/keys",
            None,
        ))
        .await;
    assert_eq!(wrong_secret.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_secret.json["__type"], "InvalidSignatureException");

    let unknown_key = server
        .send(signed_request(
            "OTAKUNKNOWNUNKNOWN00",
            "whatever",
            "GET",
            "/v1/keys",
            None,
        ))
        .await;
    assert_eq!(unknown_key.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown_key.json["__type"], "UnrecognizedClientException");

    let garbage = server
        .send(
            Request::builder()
                .uri("/v1/keys")
                .header("authorization", "AWS4-HMAC-SHA256 nonsense")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(garbage.json["__type"], "IncompleteSignatureException");
}

#[tokio::test]
async fn admin_creates_lists_and_revokes_keys_and_revoked_keys_are_rejected() {
    let server = TestServer::start();
    let reader = server
        .create_key(&server.admin, "read", DEFAULT_ACCOUNT)
        .await;
    assert_eq!(reader.key.role, Role::Read);
    assert!(reader.bearer_token.is_none());

    let listing = server.signed(&server.admin, "GET", "/v1/keys", None).await;
    assert_eq!(listing.status, StatusCode::OK);
    let listed: Vec<&str> = listing.json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["accessKeyId"].as_str().expect("id"))
        .collect();
    assert_eq!(
        listed,
        vec![
            server.admin.key.access_key_id.as_str(),
            reader.key.access_key_id.as_str()
        ]
    );
    assert!(!listing.json.to_string().contains(&reader.secret_access_key));

    let path = format!("/v1/keys/{}", reader.key.access_key_id);
    let revoked = server.signed(&server.admin, "DELETE", &path, None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.json);
    assert_eq!(revoked.json["status"], "Revoked");

    // The revoked reader cannot authenticate any more, although its signature is valid.
    let after = server.signed(&reader, "GET", "/metrics", None).await;
    assert_eq!(after.json["__type"], "UnrecognizedClientException");

    let missing = server
        .signed(
            &server.admin,
            "DELETE",
            "/v1/keys/OTAKNOSUCHKEY0000000",
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_admins_manage_keys() {
    let server = TestServer::start();
    let reader = server
        .create_key(&server.admin, "read", DEFAULT_ACCOUNT)
        .await;
    let attempt = server
        .signed(&reader, "POST", "/v1/keys", Some(json!({"role": "admin"})))
        .await;
    assert_eq!(attempt.status, StatusCode::FORBIDDEN);
    assert_eq!(attempt.json["__type"], "AccessDeniedException");
    let listing = server.signed(&reader, "GET", "/v1/keys", None).await;
    assert_eq!(listing.json["__type"], "AccessDeniedException");
}

#[tokio::test]
async fn an_admin_of_another_account_stays_in_its_account() {
    let server = TestServer::start();
    let other_admin = server
        .create_key(&server.admin, "admin", OTHER_ACCOUNT)
        .await;

    let cross = server
        .signed(
            &other_admin,
            "POST",
            "/v1/keys",
            Some(json!({"role": "read", "accountId": DEFAULT_ACCOUNT})),
        )
        .await;
    assert_eq!(cross.json["__type"], "AccessDeniedException");

    // Defaults to its own account.
    let own = server
        .signed(
            &other_admin,
            "POST",
            "/v1/keys",
            Some(json!({"role": "read"})),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED);
    assert_eq!(own.json["accountId"], OTHER_ACCOUNT);

    let listing = server.signed(&other_admin, "GET", "/v1/keys", None).await;
    let accounts: Vec<&str> = listing.json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["accountId"].as_str().expect("account"))
        .collect();
    assert_eq!(accounts, vec![OTHER_ACCOUNT, OTHER_ACCOUNT]);

    // The default account's admin is invisible to it, so revoking it is "not found".
    let path = format!("/v1/keys/{}", server.admin.key.access_key_id);
    let revoke = server.signed(&other_admin, "DELETE", &path, None).await;
    assert_eq!(revoke.status, StatusCode::NOT_FOUND);
    assert!(
        server
            .keys
            .get(&server.admin.key.access_key_id)
            .expect("admin")
            .is_active()
    );
}

#[tokio::test]
async fn a_tenants_ingest_stores_its_own_records_and_refuses_other_accounts_by_index() {
    let server = TestServer::start();
    let tenant = server
        .create_key(&server.admin, "ingest", OTHER_ACCOUNT)
        .await;
    let record = |event_id: &str, account: Option<&str>| {
        let mut record = json!({
            "eventID": event_id,
            "eventName": "PutObject",
            "eventSource": "s3.amazonaws.com",
            "eventTime": "2026-12-07T09:00:00Z",
        });
        if let Some(account) = account {
            record["recipientAccountId"] = json!(account);
        }
        record
    };
    let batch = json!([
        record("own-filled", None),
        record("planted", Some(DEFAULT_ACCOUNT)),
        {"eventName": "NoTime"},
        record("own-stated", Some(OTHER_ACCOUNT)),
    ]);
    let event_ids = |answer: &Answer, list: &str| -> Vec<(u64, String)> {
        answer.json[list]
            .as_array()
            .expect("list")
            .iter()
            .map(|entry| {
                let index = entry["index"].as_u64().expect("index");
                (index, entry["eventId"].as_str().expect("id").to_owned())
            })
            .collect()
    };

    let first = server
        .signed(&tenant, "POST", "/v1/events", Some(batch.clone()))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    assert_eq!(
        event_ids(&first, "accepted"),
        [(0, "own-filled".to_owned()), (3, "own-stated".to_owned())]
    );
    let failed: Vec<(u64, &str)> = first.json["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .map(|failure| {
            let index = failure["index"].as_u64().expect("index");
            (index, failure["errorCode"].as_str().expect("code"))
        })
        .collect();
    assert_eq!(failed.len(), 2, "{}", first.json);
    assert_eq!(failed[0], (1, "InvalidRecipient"));
    assert_eq!(failed[1].0, 2);

    // The same batch again: the tenant's records are duplicates, the rest still refused.
    let again = server
        .signed(&tenant, "POST", "/v1/events", Some(batch))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.json);
    assert!(event_ids(&again, "accepted").is_empty(), "{}", again.json);
    assert_eq!(
        event_ids(&again, "duplicates"),
        [(0, "own-filled".to_owned()), (3, "own-stated".to_owned())]
    );
    assert_eq!(again.json["failed"].as_array().expect("failed").len(), 2);

    // The default account's admin sees every account: the tenant's record, and nothing
    // planted.
    let found = |event_id: &'static str| {
        let path = format!("/v1/events?eventId={event_id}&start=2026-12-07T00:00:00Z");
        let server = &server;
        async move {
            let answer = server.signed(&server.admin, "GET", &path, None).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
            answer.json["events"].as_array().expect("events").len()
        }
    };
    assert_eq!(found("own-filled").await, 1);
    assert_eq!(found("planted").await, 0);
}

#[tokio::test]
async fn invalid_create_requests_are_validation_errors() {
    let server = TestServer::start();
    for body in [
        json!({"role": "superuser"}),
        json!({"role": "read", "accountId": "12"}),
        json!({"rol": "read"}),
    ] {
        let answer = server
            .signed(&server.admin, "POST", "/v1/keys", Some(body.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.json["__type"], "ValidationException", "{body}");
    }
}

#[tokio::test]
async fn ingest_keys_get_a_bearer_token_that_authenticates() {
    let server = TestServer::start();
    let ingester = server
        .create_key(&server.admin, "ingest", DEFAULT_ACCOUNT)
        .await;
    let token = ingester
        .bearer_token
        .clone()
        .expect("ingest keys get a token");

    let metrics = server.send(bearer("/metrics", &token)).await;
    assert_eq!(metrics.status, StatusCode::OK);

    let wrong = server.send(bearer("/metrics", "otb_wrong")).await;
    assert_eq!(wrong.json["__type"], "UnrecognizedClientException");

    // The token carries the ingest role: key management is refused.
    let listing = server.send(bearer("/v1/keys", &token)).await;
    assert_eq!(listing.json["__type"], "AccessDeniedException");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let server = TestServer::start();
    server.signed(&server.admin, "GET", "/v1/keys", None).await;
    let response = server
        .router
        .clone()
        .oneshot(signed_request(
            &server.admin.key.access_key_id,
            &server.admin.secret_access_key,
            "GET",
            "/metrics",
            None,
        ))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec(),
    )
    .expect("utf-8");
    assert!(text.contains("opentrail_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/v1/keys\""), "{text}");
}

#[tokio::test]
async fn json11_operations_not_implemented_yet_are_unknown_operations() {
    let server = TestServer::start();
    let mut request = signed_request(
        &server.admin.key.access_key_id,
        &server.admin.secret_access_key,
        "POST",
        "/",
        Some(b"{}".to_vec()),
    );
    request.headers_mut().insert(
        "x-amz-target",
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.GetEventConfiguration"
            .parse()
            .expect("header"),
    );
    let answer = server.send(request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.error_type.as_deref(),
        Some("UnknownOperationException")
    );
}

#[tokio::test]
async fn json11_dispatch_accepts_the_short_target_of_the_smithy_sdks() {
    let server = TestServer::start();
    let call = |target: &str| {
        let mut request = signed_request(
            &server.admin.key.access_key_id,
            &server.admin.secret_access_key,
            "POST",
            "/",
            Some(b"{}".to_vec()),
        );
        request
            .headers_mut()
            .insert("x-amz-target", target.parse().expect("header"));
        server.send(request)
    };
    // The JavaScript v3 and Rust SDKs' form, then botocore's: the same operation answers.
    let short = call("CloudTrail_20131101.ListTrails").await;
    assert_eq!(short.status, StatusCode::OK, "{}", short.json);
    assert!(short.json["Trails"].is_array(), "{}", short.json);
    let long = call("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListTrails").await;
    assert_eq!(long.status, StatusCode::OK, "{}", long.json);
    assert_eq!(short.json, long.json);
    // A short target that names no operation, or one OpenTrail does not implement.
    for target in [
        "CloudTrail_20131101.NoSuchOperation",
        "CloudTrail_20131101.GetEventConfiguration",
    ] {
        let answer = call(target).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{target}");
        assert_eq!(
            answer.error_type.as_deref(),
            Some("UnknownOperationException"),
            "{target}"
        );
    }
}

#[tokio::test]
async fn a_signed_body_over_the_limit_is_413() {
    let server = TestServer::start();
    let oversized = vec![b' '; BODY_BYTES_MAX + 1];
    let answer = server
        .send(signed_request(
            &server.admin.key.access_key_id,
            &server.admin.secret_access_key,
            "POST",
            "/v1/keys",
            Some(oversized),
        ))
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json["__type"], "RequestEntityTooLargeException");
}
