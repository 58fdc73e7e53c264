//! The console as a browser meets it, through the whole router: sessions and cookies,
//! CSRF, permissions and account scoping, the live tail, export, and the sign-in audit
//! records. (The browser itself is exercised by `tests/console/`.)

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use opentrail_event::{EventRecord, IngestContext};
use opentrail_store::{LookupQuery, Store};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::session::{SessionLimits, SessionStore};
use crate::keys::{CreatedAccessKey, KeyStore, Role};
use crate::test_state::{TestState, local_peer, test_state};

const DEFAULT_ACCOUNT: &str = "123456789012";
const OTHER_ACCOUNT: &str = "444455556666";

struct Console {
    router: Router,
    keys: KeyStore,
    store: Store,
    state: crate::state::AppState,
    admin: CreatedAccessKey,
    _data_dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
    json: Value,
}

impl Answer {
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// `name=value` of the cookie `name` this answer sets.
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().into_iter().find_map(|cookie| {
            let pair = cookie.split(';').next()?.to_owned();
            pair.starts_with(&format!("{name}=")).then_some(pair)
        })
    }
}

/// A browser's view of one signed-in session.
struct Browser {
    cookie: String,
    csrf_token: String,
}

impl Console {
    fn start() -> Console {
        Console::start_with(SessionLimits::default())
    }

    fn start_with(limits: SessionLimits) -> Console {
        let TestState {
            state,
            admin,
            data_dir,
        } = test_state(|_| {});
        let keys = state.keys.clone();
        let store = state.store.clone();
        // The console alone, with the given session limits.
        let router = super::router_with_sessions(state.clone(), SessionStore::new(limits))
            .with_state(state.clone())
            .layer(local_peer());
        Console {
            router,
            keys,
            store,
            state,
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
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            json,
        }
    }

    async fn get(&self, path: &str, browser: Option<&Browser>) -> Answer {
        let mut builder = Request::builder().uri(path);
        if let Some(browser) = browser {
            builder = builder.header(header::COOKIE, &browser.cookie);
        }
        self.send(builder.body(Body::empty()).expect("request"))
            .await
    }

    /// A same-origin POST or DELETE as the console's script sends it.
    async fn change(
        &self,
        method: &str,
        path: &str,
        browser: &Browser,
        csrf_token: Option<&str>,
        body: Value,
    ) -> Answer {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::COOKIE, &browser.cookie)
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = csrf_token {
            builder = builder.header("x-csrf-token", token);
        }
        self.send(builder.body(Body::from(body.to_string())).expect("request"))
            .await
    }

    async fn try_sign_in(&self, access_key_id: &str, secret: &str) -> Answer {
        let session = self.get("/console/api/session", None).await;
        assert_eq!(session.json["signedIn"], false);
        let token = session.json["csrfToken"]
            .as_str()
            .expect("token")
            .to_owned();
        let cookie = session
            .cookie("opentrail_sign_in_csrf")
            .expect("double-submit cookie");
        let request = Request::builder()
            .method("POST")
            .uri("/console/api/sign-in")
            .header(header::COOKIE, cookie)
            .header("x-csrf-token", token)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "Mozilla/5.0 (test)")
            .body(Body::from(
                json!({"accessKeyId": access_key_id, "secretAccessKey": secret}).to_string(),
            ))
            .expect("request");
        self.send(request).await
    }

    async fn sign_in(&self, key: &CreatedAccessKey) -> Browser {
        let answer = self
            .try_sign_in(&key.key.access_key_id, &key.secret_access_key)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        Browser {
            cookie: answer.cookie("opentrail_session").expect("session cookie"),
            csrf_token: answer.json["csrfToken"].as_str().expect("csrf").to_owned(),
        }
    }

    fn create_key(&self, role: Role, account_id: &str) -> CreatedAccessKey {
        self.keys.create(role, account_id).expect("create key")
    }

    fn append(&self, records: &[Value]) {
        let parsed = records
            .iter()
            .map(|record| {
                EventRecord::from_json_object(
                    &record.to_string(),
                    &IngestContext {
                        account_id: DEFAULT_ACCOUNT.into(),
                        region: "us-east-1".into(),
                    },
                )
                .expect("valid record")
            })
            .collect();
        self.store.append(parsed).expect("append");
    }

    fn events_named(&self, event_name: &str) -> Vec<Value> {
        let mut query = LookupQuery::new(None, None, 100);
        query.filters = vec![(opentrail_event::FilterField::EventName, event_name.into())];
        self.store
            .lookup(&query)
            .expect("lookup")
            .events
            .into_iter()
            .map(|event| serde_json::from_str(&event.record.json).expect("json"))
            .collect()
    }
}

impl Console {
    async fn wait_for_events_named(&self, event_name: &str, count: usize) -> Vec<Value> {
        for _ in 0..200 {
            let found = self.events_named(event_name);
            if found.len() >= count {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {count} {event_name} events were recorded");
    }
}

fn event(
    event_id: &str,
    account: &str,
    event_name: &str,
    time: &str,
    error_code: Option<&str>,
) -> Value {
    let mut record = json!({
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "accountId": account, "userName": "alice",
            "arn": format!("arn:aws:iam::{account}:user/alice"), "accessKeyId": "AKIAALICE"},
        "eventTime": time,
        "eventSource": "dynamodb.amazonaws.com",
        "eventName": event_name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "eventID": event_id,
        "recipientAccountId": account,
        "resources": [{"type": "AWS::DynamoDB::Table",
            "ARN": format!("arn:aws:dynamodb:us-east-1:{account}:table/orders")}],
    });
    if let (Some(code), Some(object)) = (error_code, record.as_object_mut()) {
        object.insert("errorCode".into(), json!(code));
    }
    record
}

#[tokio::test]
async fn pages_and_assets_are_served_with_browser_hardening_headers() {
    let console = Console::start();
    for path in [
        "/console",
        "/console/",
        "/console/events",
        "/console/event",
        "/console/keys",
    ] {
        let page = console.get(path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.text.contains("console.js"), "{path} is the shell");
        let policy = page.headers["content-security-policy"]
            .to_str()
            .expect("ascii");
        assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
        assert_eq!(page.headers["x-frame-options"], "DENY");
    }
    let script = console.get("/console/assets/console.js", None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(
        script.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let etag = script.headers[header::ETAG].clone();
    let revalidated = console
        .send(
            Request::builder()
                .uri("/console/assets/console.js")
                .header(header::IF_NONE_MATCH, etag)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert_eq!(
        console.get("/console/assets/nope.js", None).await.status,
        StatusCode::NOT_FOUND
    );
    let unknown_api = console.get("/console/api/nope", None).await;
    assert_eq!(unknown_api.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown_api.json["__type"], "ResourceNotFoundException");
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_is_recorded() {
    let console = Console::start();
    let answer = console
        .try_sign_in(
            &console.admin.key.access_key_id,
            &console.admin.secret_access_key,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["signedIn"], true);
    assert_eq!(answer.json["role"], "admin");
    assert_eq!(answer.json["seesEveryAccount"], true);
    let session_cookie = answer
        .set_cookies()
        .into_iter()
        .find(|cookie| cookie.starts_with("opentrail_session="))
        .expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }
    assert!(
        answer
            .set_cookies()
            .iter()
            .any(|cookie| cookie.starts_with("opentrail_sign_in_csrf=;")
                && cookie.contains("Max-Age=0")),
        "the sign-in token is spent"
    );

    let logins = console.events_named("ConsoleLogin");
    assert_eq!(logins.len(), 1, "recorded before the answer");
    let login = &logins[0];
    assert_eq!(login["eventSource"], "signin.amazonaws.com");
    assert_eq!(login["eventType"], "AwsConsoleSignIn");
    assert_eq!(login["responseElements"]["ConsoleLogin"], "Success");
    assert_eq!(
        login["userIdentity"]["accessKeyId"],
        console.admin.key.access_key_id.as_str()
    );
    assert_eq!(login["sourceIPAddress"], "127.0.0.1");
    assert_eq!(login["userAgent"], "Mozilla/5.0 (test)");
}

#[tokio::test]
async fn failed_sign_ins_are_refused_and_recorded_without_leaking_what_was_typed() {
    let console = Console::start();
    let wrong_secret = console
        .try_sign_in(&console.admin.key.access_key_id, "not-the-secret")
        .await;
    assert_eq!(wrong_secret.status, StatusCode::UNAUTHORIZED);
    assert!(wrong_secret.cookie("opentrail_session").is_none());
    // A secret pasted into the key id field must not end up in the log.
    let pasted_secret = console
        .try_sign_in(&console.admin.secret_access_key, "x")
        .await;
    assert_eq!(pasted_secret.status, StatusCode::UNAUTHORIZED);
    let ingest = console.create_key(Role::Ingest, DEFAULT_ACCOUNT);
    let ingest_answer = console
        .try_sign_in(&ingest.key.access_key_id, &ingest.secret_access_key)
        .await;
    assert_eq!(ingest_answer.status, StatusCode::FORBIDDEN);
    assert!(ingest_answer.cookie("opentrail_session").is_none());

    let logins = console.events_named("ConsoleLogin");
    assert_eq!(logins.len(), 3);
    for login in &logins {
        assert_eq!(login["responseElements"]["ConsoleLogin"], "Failure");
        assert!(login["errorCode"].is_string());
        assert!(
            !login.to_string().contains(&console.admin.secret_access_key),
            "a secret reached the log: {login}"
        );
    }
    assert!(
        logins
            .iter()
            .any(|login| { login["userIdentity"]["userName"] == "HIDDEN_DUE_TO_SECURITY_REASONS" })
    );
}

#[tokio::test]
async fn sign_in_needs_the_double_submit_token() {
    let console = Console::start();
    let body = json!({
        "accessKeyId": console.admin.key.access_key_id,
        "secretAccessKey": console.admin.secret_access_key,
    })
    .to_string();
    let without_token = Request::builder()
        .method("POST")
        .uri("/console/api/sign-in")
        .body(Body::from(body.clone()))
        .expect("request");
    assert_eq!(
        console.send(without_token).await.status,
        StatusCode::FORBIDDEN
    );
    let mismatched = Request::builder()
        .method("POST")
        .uri("/console/api/sign-in")
        .header(header::COOKIE, "opentrail_sign_in_csrf=aaaa")
        .header("x-csrf-token", "bbbb")
        .body(Body::from(body))
        .expect("request");
    assert_eq!(console.send(mismatched).await.status, StatusCode::FORBIDDEN);
    assert!(console.events_named("ConsoleLogin").is_empty());
}

#[tokio::test]
async fn data_needs_a_session_and_changes_need_its_csrf_token() {
    let console = Console::start();
    assert_eq!(
        console.get("/console/api/events", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let forged = Browser {
        cookie: "opentrail_session=forged".into(),
        csrf_token: String::new(),
    };
    assert_eq!(
        console
            .get("/console/api/events", Some(&forged))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let browser = console.sign_in(&console.admin).await;
    let session = console.get("/console/api/session", Some(&browser)).await;
    assert_eq!(session.json["signedIn"], true);
    assert_eq!(session.json["csrfToken"], browser.csrf_token.as_str());
    assert_eq!(
        console
            .get("/console/api/events", Some(&browser))
            .await
            .status,
        StatusCode::OK
    );

    let create = json!({"role": "read"});
    let no_token = console
        .change("POST", "/console/api/keys", &browser, None, create.clone())
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert_eq!(no_token.json["__type"], "InvalidCsrfTokenException");
    let wrong_token = console
        .change(
            "POST",
            "/console/api/keys",
            &browser,
            Some("wrong"),
            create.clone(),
        )
        .await;
    assert_eq!(wrong_token.status, StatusCode::FORBIDDEN);
    let cross_site = console
        .send(
            Request::builder()
                .method("POST")
                .uri("/console/api/keys")
                .header(header::COOKIE, &browser.cookie)
                .header("x-csrf-token", &browser.csrf_token)
                .header("sec-fetch-site", "cross-site")
                .body(Body::from(create.to_string()))
                .expect("request"),
        )
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    let created = console
        .change(
            "POST",
            "/console/api/keys",
            &browser,
            Some(&browser.csrf_token),
            create,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json["role"], "read");
    assert!(created.json["secretAccessKey"].is_string());
}

#[tokio::test]
async fn sign_out_ends_the_session_and_is_recorded() {
    let console = Console::start();
    let browser = console.sign_in(&console.admin).await;
    let refused = console
        .change("POST", "/console/api/sign-out", &browser, None, json!({}))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "sign-out needs the token"
    );
    let signed_out = console
        .change(
            "POST",
            "/console/api/sign-out",
            &browser,
            Some(&browser.csrf_token),
            json!({}),
        )
        .await;
    assert_eq!(signed_out.status, StatusCode::OK);
    assert!(
        signed_out
            .cookie("opentrail_session")
            .is_some_and(|cookie| cookie == "opentrail_session=")
    );
    assert_eq!(
        console
            .get("/console/api/events", Some(&browser))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let logouts = console.events_named("ConsoleLogout");
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0]["eventType"], "AwsConsoleSignIn");
}

#[tokio::test]
async fn revoking_the_key_ends_its_sessions() {
    let console = Console::start();
    let reader = console.create_key(Role::Read, DEFAULT_ACCOUNT);
    let browser = console.sign_in(&reader).await;
    assert_eq!(
        console
            .get("/console/api/events", Some(&browser))
            .await
            .status,
        StatusCode::OK
    );
    console
        .keys
        .revoke(&reader.key.access_key_id)
        .expect("revoke");
    assert_eq!(
        console
            .get("/console/api/events", Some(&browser))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn idle_sessions_expire() {
    let console = Console::start_with(SessionLimits {
        idle: Duration::from_millis(50),
        absolute: Duration::from_secs(60),
        max_sessions: 10,
    });
    let browser = console.sign_in(&console.admin).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        console
            .get("/console/api/events", Some(&browser))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_read_key_cannot_manage_keys() {
    let console = Console::start();
    let reader = console.create_key(Role::Read, DEFAULT_ACCOUNT);
    let browser = console.sign_in(&reader).await;
    let session = console.get("/console/api/session", Some(&browser)).await;
    assert_eq!(session.json["role"], "read");
    assert_eq!(session.json["seesEveryAccount"], false);
    let list = console.get("/console/api/keys", Some(&browser)).await;
    assert_eq!(list.status, StatusCode::FORBIDDEN);
    assert_eq!(list.json["__type"], "AccessDeniedException");
    let create = console
        .change(
            "POST",
            "/console/api/keys",
            &browser,
            Some(&browser.csrf_token),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    let revoke = console
        .change(
            "DELETE",
            &format!("/console/api/keys/{}", console.admin.key.access_key_id),
            &browser,
            Some(&browser.csrf_token),
            json!({}),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::FORBIDDEN);
    assert!(
        console
            .keys
            .get(&console.admin.key.access_key_id)
            .is_some_and(|key| key.is_active())
    );
}

#[tokio::test]
async fn views_are_scoped_to_the_account_like_the_api() {
    let console = Console::start();
    console.append(&[
        event(
            "ev-default",
            DEFAULT_ACCOUNT,
            "DeleteTable",
            "2026-11-25T09:14:03Z",
            None,
        ),
        event(
            "ev-other",
            OTHER_ACCOUNT,
            "DeleteTable",
            "2026-11-25T09:15:03Z",
            None,
        ),
    ]);
    let tenant = console.create_key(Role::Read, OTHER_ACCOUNT);
    let tenant_browser = console.sign_in(&tenant).await;
    let admin_browser = console.sign_in(&console.admin).await;

    let ids = |answer: &Answer| -> Vec<String> {
        answer.json["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|row| row["eventName"] == "DeleteTable")
            .map(|row| row["eventId"].as_str().expect("id").to_owned())
            .collect()
    };
    let tenant_view = console
        .get(
            "/console/api/events?eventName=DeleteTable",
            Some(&tenant_browser),
        )
        .await;
    assert_eq!(ids(&tenant_view), ["ev-other"]);
    let admin_view = console
        .get(
            "/console/api/events?eventName=DeleteTable",
            Some(&admin_browser),
        )
        .await;
    assert_eq!(ids(&admin_view), ["ev-other", "ev-default"]);

    let foreign = console
        .get(
            &format!("/console/api/event?account={DEFAULT_ACCOUNT}&id=ev-default"),
            Some(&tenant_browser),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    let by_id_only = console
        .get("/console/api/event?id=ev-default", Some(&tenant_browser))
        .await;
    assert_eq!(by_id_only.status, StatusCode::NOT_FOUND);
    let naming_another_account = console
        .get(
            &format!("/console/api/events?account={DEFAULT_ACCOUNT}"),
            Some(&tenant_browser),
        )
        .await;
    assert_eq!(naming_another_account.status, StatusCode::FORBIDDEN);
    let export = console
        .get("/console/api/export?format=json", Some(&tenant_browser))
        .await;
    let exported: Vec<&str> = export.json["Records"]
        .as_array()
        .expect("Records")
        .iter()
        .filter_map(|record| record["eventID"].as_str())
        .filter(|id| id.starts_with("ev-"))
        .collect();
    assert_eq!(exported, ["ev-other"]);

    let own = console
        .get(
            &format!("/console/api/event?account={DEFAULT_ACCOUNT}&id=ev-default"),
            Some(&admin_browser),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.json["eventID"], "ev-default");
    assert_eq!(own.json["sourceIPAddress"], "203.0.113.7");
}

#[tokio::test]
async fn rows_carry_what_the_table_shows() {
    let console = Console::start();
    let mut automated = event(
        "ev-cfn",
        DEFAULT_ACCOUNT,
        "RunInstances",
        "2026-11-25T09:20:00Z",
        None,
    );
    automated["userIdentity"]["invokedBy"] = json!("cloudformation.amazonaws.com");
    console.append(&[automated]);
    let browser = console.sign_in(&console.admin).await;
    let page = console
        .get("/console/api/events?eventName=RunInstances", Some(&browser))
        .await;
    let row = &page.json["events"][0];
    assert_eq!(row["eventId"], "ev-cfn");
    assert_eq!(row["username"], "alice");
    assert_eq!(row["invokedBy"], "cloudformation.amazonaws.com");
    assert_eq!(row["sourceIPAddress"], "203.0.113.7");
    assert_eq!(row["resources"][0]["type"], "AWS::DynamoDB::Table");
    assert_eq!(row["resources"][0]["shortName"], "orders");
    assert_eq!(row["eventTime"], "2026-11-25T09:20:00Z");
    assert!(page.json["tailSeq"].is_u64(), "a first page starts a tail");
}

#[tokio::test]
async fn errors_only_pages_through_everything_without_skipping() {
    let console = Console::start();
    // 120 events, every third one failed, one second apart.
    let records: Vec<Value> = (0..120)
        .map(|index| {
            let time = jiff::Timestamp::from_second(1_795_000_000 + index)
                .expect("time")
                .to_string();
            let error = (index % 3 == 0).then_some("AccessDenied");
            event(
                &format!("ev-{index:03}"),
                DEFAULT_ACCOUNT,
                "PutItem",
                &time,
                error,
            )
        })
        .collect();
    console.append(&records);
    let browser = console.sign_in(&console.admin).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/console/api/events?eventName=PutItem&errors=1&limit=7".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = console.get(&path, Some(&browser)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for row in page.json["events"].as_array().expect("events") {
            assert_eq!(row["errorCode"], "AccessDenied");
            seen.push(row["eventId"].as_str().expect("id").to_owned());
        }
        match page.json["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..120)
        .rev()
        .filter(|index| index % 3 == 0)
        .map(|index| format!("ev-{index:03}"))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_tail_returns_what_was_appended_after_the_page_and_matches_the_view() {
    let console = Console::start();
    console.append(&[event(
        "ev-old",
        DEFAULT_ACCOUNT,
        "DeleteTable",
        "2026-11-25T09:00:00Z",
        None,
    )]);
    let browser = console.sign_in(&console.admin).await;
    let page = console
        .get(
            "/console/api/events?eventSource=dynamodb.amazonaws.com",
            Some(&browser),
        )
        .await;
    let tail_seq = page.json["tailSeq"].as_u64().expect("tailSeq");

    // An event with an *old* eventTime still shows up live: the tail follows the log.
    console.append(&[
        event(
            "ev-late",
            DEFAULT_ACCOUNT,
            "DeleteTable",
            "2020-01-01T00:00:00Z",
            None,
        ),
        {
            let mut other = event(
                "ev-s3",
                DEFAULT_ACCOUNT,
                "GetObject",
                "2026-11-25T09:30:00Z",
                None,
            );
            other["eventSource"] = json!("s3.amazonaws.com");
            other
        },
    ]);
    let tail = console
        .get(
            &format!(
                "/console/api/events/tail?eventSource=dynamodb.amazonaws.com&after={tail_seq}"
            ),
            Some(&browser),
        )
        .await;
    assert_eq!(tail.status, StatusCode::OK, "{}", tail.text);
    let ids: Vec<&str> = tail.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|row| row["eventId"].as_str())
        .collect();
    assert_eq!(ids, ["ev-late"]);
    assert_eq!(tail.json["behind"], false);
    let next = tail.json["tailSeq"].as_u64().expect("tailSeq");
    assert!(next > tail_seq);
    let quiet = console
        .get(
            &format!("/console/api/events/tail?eventSource=dynamodb.amazonaws.com&after={next}"),
            Some(&browser),
        )
        .await;
    assert_eq!(quiet.json["events"], json!([]));
    // Self-audit records of this test's own requests may have been appended meanwhile.
    assert!(
        quiet.json["tailSeq"]
            .as_u64()
            .is_some_and(|seq| seq >= next)
    );

    let missing_after = console
        .get("/console/api/events/tail", Some(&browser))
        .await;
    assert_eq!(missing_after.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_tail_that_falls_behind_skips_to_the_newest_page() {
    let console = Console::start();
    let browser = console.sign_in(&console.admin).await;
    let page = console
        .get("/console/api/events?eventName=PutItem", Some(&browser))
        .await;
    let tail_seq = page.json["tailSeq"].as_u64().expect("tailSeq");
    let burst = super::events::TAIL_SCAN_MAX + 500;
    let records: Vec<Value> = (0..burst)
        .map(|index| {
            let time = jiff::Timestamp::from_second(1_795_000_000 + index as i64)
                .expect("time")
                .to_string();
            event(
                &format!("ev-{index:05}"),
                DEFAULT_ACCOUNT,
                "PutItem",
                &time,
                None,
            )
        })
        .collect();
    console.append(&records);
    let tail = console
        .get(
            &format!("/console/api/events/tail?eventName=PutItem&limit=5&after={tail_seq}"),
            Some(&browser),
        )
        .await;
    assert_eq!(tail.status, StatusCode::OK, "{}", tail.text);
    assert_eq!(tail.json["behind"], true);
    let last_seq = console.store.stats().expect("stats").last_seq;
    assert!(
        tail.json["tailSeq"]
            .as_u64()
            .is_some_and(|seq| seq >= last_seq)
    );
    let ids: Vec<&str> = tail.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|row| row["eventId"].as_str())
        .collect();
    let newest = format!("ev-{:05}", burst - 1);
    assert!(
        ids.contains(&newest.as_str()),
        "the newest page is included"
    );
}

#[tokio::test]
async fn export_streams_every_matching_event_as_csv_and_json() {
    let console = Console::start();
    // More than a store page (1000) and far more than LookupEvents' 50.
    let records: Vec<Value> = (0..1_234)
        .map(|index| {
            let time = jiff::Timestamp::from_second(1_795_000_000 + index)
                .expect("time")
                .to_string();
            event(
                &format!("ev-{index:04}"),
                DEFAULT_ACCOUNT,
                "PutItem",
                &time,
                None,
            )
        })
        .collect();
    console.append(&records);
    let mut tricky = event(
        "ev-tricky",
        DEFAULT_ACCOUNT,
        "=HYPERLINK(\"x\")",
        "2026-11-25T09:14:03Z",
        None,
    );
    tricky["userIdentity"]["userName"] = json!("bob, \"the builder\"");
    console.append(&[tricky]);
    let browser = console.sign_in(&console.admin).await;

    let csv = console
        .get(
            "/console/api/export?format=csv&eventSource=dynamodb.amazonaws.com",
            Some(&browser),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(
        csv.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .starts_with("attachment; filename=\"opentrail-events-")
    );
    let lines: Vec<&str> = csv
        .text
        .split("\r\n")
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines[0], super::events::CSV_HEADER.trim_end());
    assert_eq!(lines.len(), 1 + 1_234 + 1);
    assert!(
        lines.contains(
            &"\"2026-11-25T09:14:03Z\",\"'=HYPERLINK(\"\"x\"\")\",\"bob, \"\"the builder\"\"\",\"dynamodb.amazonaws.com\",\"AWS::DynamoDB::Table\",\"arn:aws:dynamodb:us-east-1:123456789012:table/orders\",\"203.0.113.7\",\"\",\"\",\"false\",\"AKIAALICE\",\"us-east-1\",\"123456789012\",\"ev-tricky\""
        ),
        "formula neutralised, quotes doubled: {}",
        lines[1]
    );

    let json_export = console
        .get(
            "/console/api/export?format=json&eventName=PutItem",
            Some(&browser),
        )
        .await;
    assert_eq!(json_export.status, StatusCode::OK);
    let records = json_export.json["Records"].as_array().expect("Records");
    assert_eq!(records.len(), 1_234);
    assert_eq!(records[0]["eventID"], "ev-1233", "newest first");

    // Exports are self-audited (through the asynchronous recorder, hence the wait).
    let exports = console.wait_for_events_named("ExportEvents", 2).await;
    assert_eq!(exports[0]["eventSource"], "cloudtrail.amazonaws.com");
    assert_eq!(exports[0]["requestParameters"]["console"], "export");
    let bad_format = console
        .get("/console/api/export?format=xml", Some(&browser))
        .await;
    assert_eq!(bad_format.status, StatusCode::BAD_REQUEST);
}

/// Trails through the console obey the API's rules: an admin creates, starts and stops a
/// trail; a read key lists it with its status but every change is refused (and a change
/// without the CSRF token is refused before the role is even looked at).
#[tokio::test]
async fn trails_need_an_admin_to_change_and_a_read_key_to_view() {
    let console = Console::start();
    let admin = console.sign_in(&console.admin).await;
    let created = console
        .change(
            "POST",
            "/console/api/trails",
            &admin,
            Some(&admin.csrf_token),
            json!({"name": "audit", "bucket": "audit-logs", "prefix": "", "logFileValidation": true}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.json["Name"], "audit");
    assert_eq!(created.json["LogFileValidationEnabled"], true);
    assert!(created.json.get("S3KeyPrefix").is_none_or(Value::is_null));
    let arn = created.json["TrailARN"].as_str().expect("arn").to_owned();

    let no_token = console
        .change(
            "POST",
            "/console/api/trails/start",
            &admin,
            None,
            json!({"name": "audit"}),
        )
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert_eq!(no_token.json["__type"], "InvalidCsrfTokenException");

    let started = console
        .change(
            "POST",
            "/console/api/trails/start",
            &admin,
            Some(&admin.csrf_token),
            json!({"name": arn}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);

    let reader_key = console.create_key(Role::Read, DEFAULT_ACCOUNT);
    let reader = console.sign_in(&reader_key).await;
    let list = console.get("/console/api/trails", Some(&reader)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let trail = &list.json["trails"][0];
    assert_eq!(trail["Name"], "audit");
    assert_eq!(trail["Status"]["IsLogging"], true);
    assert!(trail["Status"]["StartLoggingTime"].is_number());

    for (path, body) in [
        (
            "/console/api/trails",
            json!({"name": "mine", "bucket": "audit-logs"}),
        ),
        ("/console/api/trails/stop", json!({"name": "audit"})),
        ("/console/api/trails/start", json!({"name": "audit"})),
    ] {
        let refused = console
            .change("POST", path, &reader, Some(&reader.csrf_token), body)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(refused.json["__type"], "AccessDeniedException", "{path}");
    }
    let after = console.get("/console/api/trails", Some(&reader)).await;
    assert_eq!(after.json["trails"].as_array().map(Vec::len), Some(1));
    assert_eq!(after.json["trails"][0]["Status"]["IsLogging"], true);

    // The admin stops it; the refused calls were recorded with their error, like the API's.
    let stopped = console
        .change(
            "POST",
            "/console/api/trails/stop",
            &admin,
            Some(&admin.csrf_token),
            json!({"name": "audit"}),
        )
        .await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text);
    let listed = console.get("/console/api/trails", Some(&admin)).await;
    assert_eq!(listed.json["trails"][0]["Status"]["IsLogging"], false);
    let stops = console.wait_for_events_named("StopLogging", 2).await;
    assert!(stops.iter().any(|event| event["errorCode"].is_string()));
    assert!(stops.iter().any(|event| event["errorCode"].is_null()));
    console.wait_for_events_named("CreateTrail", 2).await;

    let malformed = console
        .change(
            "POST",
            "/console/api/trails",
            &admin,
            Some(&admin.csrf_token),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
}

/// Opening the trails page is recorded; its background refreshes are not.
#[tokio::test]
async fn trail_list_refreshes_are_not_recorded() {
    let console = Console::start();
    let admin = console.sign_in(&console.admin).await;
    let opened = console.get("/console/api/trails", Some(&admin)).await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.text);
    assert_eq!(opened.json["trails"], json!([]));
    console.wait_for_events_named("DescribeTrails", 1).await;
    for _ in 0..3 {
        let refreshed = console
            .get("/console/api/trails?refresh=1", Some(&admin))
            .await;
        assert_eq!(refreshed.status, StatusCode::OK);
    }
    // A later recorded call, so anything the refreshes recorded would be stored by then.
    console.get("/console/api/trails", Some(&admin)).await;
    let recorded = console.wait_for_events_named("DescribeTrails", 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        console.events_named("DescribeTrails").len(),
        2,
        "{recorded:?}"
    );
}

// ------------------------------------------------------------------ the Query page

impl Console {
    /// An event data store of every event of `account`, as CreateEventDataStore makes one.
    fn create_data_store(&self, account: &str, name: &str) -> String {
        let now_ms = jiff::Timestamp::now().as_millisecond();
        self.state
            .lake
            .data_stores
            .create(
                opentrail_lake::data_stores::NewEventDataStore {
                    name: name.into(),
                    account_id: account.into(),
                    region: self.state.config.region.clone(),
                    selectors: Vec::new(),
                    multi_region_enabled: true,
                    organization_enabled: false,
                    retention_days: 2557,
                    termination_protection_enabled: false,
                    billing_mode: "EXTENDABLE_RETENTION_PRICING".into(),
                    tags: Vec::new(),
                },
                now_ms,
            )
            .expect("create event data store")
            .id
    }

    async fn start_query(&self, browser: &Browser, statement: &str) -> Answer {
        self.change(
            "POST",
            "/console/api/query/start",
            browser,
            Some(&browser.csrf_token),
            json!({ "statement": statement }),
        )
        .await
    }

    async fn save_query(&self, browser: &Browser, name: &str, statement: &str) -> Answer {
        self.change(
            "POST",
            "/console/api/query/saved",
            browser,
            Some(&browser.csrf_token),
            json!({ "name": name, "statement": statement }),
        )
        .await
    }

    /// Polls the query's status until it is no longer active (bounded by polls, not time).
    async fn wait_for_query(&self, browser: &Browser, query_id: &str) -> Value {
        for _ in 0..2_000 {
            let status = self
                .get(
                    &format!("/console/api/query/status?id={query_id}"),
                    Some(browser),
                )
                .await;
            assert_eq!(status.status, StatusCode::OK, "{}", status.text);
            if !matches!(status.json["status"].as_str(), Some("QUEUED" | "RUNNING")) {
                return status.json;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("query {query_id} did not finish");
    }
}

/// Events of the last hour: three DeleteTable and one CreateTable in the default account,
/// one DeleteTable in the other.
fn recent_events() -> Vec<Value> {
    let time = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3600))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    vec![
        event("q-1", DEFAULT_ACCOUNT, "DeleteTable", &time, None),
        event(
            "q-2",
            DEFAULT_ACCOUNT,
            "DeleteTable",
            &time,
            Some("AccessDenied"),
        ),
        event("q-3", DEFAULT_ACCOUNT, "DeleteTable", &time, None),
        event("q-4", DEFAULT_ACCOUNT, "CreateTable", &time, None),
        event("q-5", OTHER_ACCOUNT, "DeleteTable", &time, None),
    ]
}

#[tokio::test]
async fn query_endpoints_need_a_session_and_changes_need_the_csrf_token() {
    let console = Console::start();
    for path in [
        "/console/api/query/data-stores",
        "/console/api/query/samples",
        "/console/api/query/history",
        "/console/api/query/saved",
        "/console/api/query/status?id=00000000-0000-4000-8000-000000000000",
    ] {
        let answer = console.get(path, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(answer.json["__type"], "NotSignedInException", "{path}");
    }
    let store = console.create_data_store(DEFAULT_ACCOUNT, "all-events");
    let browser = console.sign_in(&console.admin).await;
    for (method, path, body) in [
        (
            "POST",
            "/console/api/query/start",
            json!({ "statement": format!("SELECT count(*) FROM {store}") }),
        ),
        (
            "POST",
            "/console/api/query/cancel",
            json!({ "queryId": "00000000-0000-4000-8000-000000000000" }),
        ),
        (
            "POST",
            "/console/api/query/saved",
            json!({ "name": "n", "statement": "SELECT 1" }),
        ),
        ("DELETE", "/console/api/query/saved/some-id", json!({})),
    ] {
        for token in [None, Some("wrong")] {
            let refused = console
                .change(method, path, &browser, token, body.clone())
                .await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} {path}");
            assert_eq!(refused.json["__type"], "InvalidCsrfTokenException");
        }
    }
    // Nothing was started or saved.
    let history = console
        .get("/console/api/query/history", Some(&browser))
        .await;
    assert_eq!(history.json["queries"], json!([]));
    let saved = console
        .get("/console/api/query/saved", Some(&browser))
        .await;
    assert_eq!(saved.json["savedQueries"], json!([]));
}

/// A read key lists the stores, runs a group-by, pages through and downloads its rows,
/// and finds it in the history; StartQuery is recorded by self-audit as the API records it.
#[tokio::test]
async fn a_query_runs_pages_downloads_and_is_in_the_history() {
    let console = Console::start();
    console.append(&recent_events());
    let store = console.create_data_store(DEFAULT_ACCOUNT, "all-events");
    let reader = console
        .sign_in(&console.create_key(Role::Read, DEFAULT_ACCOUNT))
        .await;

    let stores = console
        .get("/console/api/query/data-stores", Some(&reader))
        .await;
    assert_eq!(stores.status, StatusCode::OK, "{}", stores.text);
    assert_eq!(stores.json["dataStores"][0]["id"], store.as_str());
    assert_eq!(stores.json["dataStores"][0]["name"], "all-events");
    assert_eq!(stores.json["dataStores"][0]["status"], "ENABLED");
    let samples = console
        .get("/console/api/query/samples", Some(&reader))
        .await;
    let samples = samples.json["samples"].as_array().expect("samples").clone();
    assert!(!samples.is_empty());
    assert!(samples.iter().all(|sample| {
        sample["sql"]
            .as_str()
            .is_some_and(|sql| sql.contains("$EDS_ID"))
            && sample["title"].is_string()
    }));
    let with_parameter = samples
        .iter()
        .find(|sample| {
            sample["parameters"]
                .as_array()
                .is_some_and(|list| !list.is_empty())
        })
        .expect("a sample with a parameter");
    let sample_name = with_parameter["name"].as_str().expect("name");
    let mut rendered = format!("/console/api/query/sample-sql?name={sample_name}&store={store}");
    for parameter in with_parameter["parameters"].as_array().expect("parameters") {
        let name = parameter["name"].as_str().expect("name");
        rendered.push_str(&format!("&{name}=o%27brien"));
    }
    let rendered = console.get(&rendered, Some(&reader)).await;
    assert_eq!(rendered.status, StatusCode::OK, "{}", rendered.text);
    let sql = rendered.json["sql"].as_str().expect("sql");
    assert!(
        sql.contains(&store) && !sql.contains("$EDS_ID") && !sql.contains("{{"),
        "{sql}"
    );
    assert!(sql.contains("o''brien"), "values are quoted as SQL: {sql}");
    let missing = console
        .get(
            &format!("/console/api/query/sample-sql?name={sample_name}"),
            Some(&reader),
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.text);

    let statement = format!(
        "SELECT eventname, count(*) AS n FROM {store} \
         WHERE eventsource = 'dynamodb.amazonaws.com' GROUP BY eventname ORDER BY n DESC"
    );
    let started = console.start_query(&reader, &statement).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let query_id = started.json["queryId"].as_str().expect("id").to_owned();
    let finished = console.wait_for_query(&reader, &query_id).await;
    assert_eq!(finished["status"], "FINISHED", "{finished}");
    assert_eq!(finished["statement"], statement.as_str());
    // The store also holds the self-audit records of this session (ConsoleLogin, …).
    assert_eq!(finished["statistics"]["eventsMatched"], 4, "{finished}");
    assert!(finished["statistics"]["eventsScanned"].as_u64() >= Some(4));
    assert!(finished["createdMs"].is_i64());

    let first = console
        .get(
            &format!("/console/api/query/results?id={query_id}&limit=1"),
            Some(&reader),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json["columns"], json!(["eventname", "n"]));
    assert_eq!(first.json["rows"], json!([["DeleteTable", "3"]]));
    assert_eq!(first.json["totalRows"], 2);
    let second = console
        .get(
            &format!("/console/api/query/results?id={query_id}&offset=1&limit=1"),
            Some(&reader),
        )
        .await;
    assert_eq!(second.json["rows"], json!([["CreateTable", "1"]]));
    let too_many = console
        .get(
            &format!("/console/api/query/results?id={query_id}&limit=100000"),
            Some(&reader),
        )
        .await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);

    let csv = console
        .get(
            &format!("/console/api/query/download?id={query_id}&format=csv"),
            Some(&reader),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let disposition = csv.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .expect("ascii");
    assert!(disposition.starts_with("attachment; filename=\"opentrail-query-"));
    assert_eq!(
        csv.text,
        "\"eventname\",\"n\"\r\n\"DeleteTable\",\"3\"\r\n\"CreateTable\",\"1\"\r\n"
    );
    let downloaded = console
        .get(
            &format!("/console/api/query/download?id={query_id}&format=json"),
            Some(&reader),
        )
        .await;
    assert_eq!(downloaded.json["columns"], json!(["eventname", "n"]));
    assert_eq!(downloaded.json["rows"][1], json!(["CreateTable", "1"]));
    let unknown_format = console
        .get(
            &format!("/console/api/query/download?id={query_id}&format=xml"),
            Some(&reader),
        )
        .await;
    assert_eq!(unknown_format.status, StatusCode::BAD_REQUEST);

    let history = console
        .get("/console/api/query/history", Some(&reader))
        .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);
    let listed = &history.json["queries"][0];
    assert_eq!(listed["queryId"], query_id.as_str());
    assert_eq!(listed["status"], "FINISHED");
    assert_eq!(listed["statement"], statement.as_str());
    assert_eq!(listed["resultRows"], 2);
    assert_eq!(listed["dataStoreIds"], json!([store]));

    let recorded = console.wait_for_events_named("StartQuery", 1).await;
    assert_eq!(
        recorded[0]["requestParameters"]["queryStatement"],
        statement.as_str()
    );
    console.wait_for_events_named("GetQueryResults", 2).await;

    // The API's validation: one SELECT over the account's own stores.
    let not_select = console
        .start_query(&reader, &format!("DELETE FROM {store}"))
        .await;
    assert_eq!(
        not_select.status,
        StatusCode::BAD_REQUEST,
        "{}",
        not_select.text
    );
    assert_eq!(not_select.json["__type"], "InvalidQueryStatementException");
    let no_store = console.start_query(&reader, "SELECT 1").await;
    assert_eq!(no_store.json["__type"], "InvalidQueryStatementException");
}

/// Another account's stores and queries do not exist for a key of this account: its query
/// id is "not found" in every endpoint, and a statement cannot name its store.
#[tokio::test]
async fn another_accounts_query_is_not_found() {
    let console = Console::start();
    console.append(&recent_events());
    let store = console.create_data_store(DEFAULT_ACCOUNT, "all-events");
    let other_store = console.create_data_store(OTHER_ACCOUNT, "theirs");
    let admin = console.sign_in(&console.admin).await;
    let started = console
        .start_query(&admin, &format!("SELECT count(*) AS n FROM {store}"))
        .await;
    let query_id = started.json["queryId"].as_str().expect("id").to_owned();
    console.wait_for_query(&admin, &query_id).await;

    let other = console
        .sign_in(&console.create_key(Role::Admin, OTHER_ACCOUNT))
        .await;
    let stores = console
        .get("/console/api/query/data-stores", Some(&other))
        .await;
    let ids: Vec<&Value> = stores.json["dataStores"]
        .as_array()
        .expect("stores")
        .iter()
        .map(|store| &store["id"])
        .collect();
    assert_eq!(ids, [&json!(other_store)], "only its own store");
    for path in [
        format!("/console/api/query/status?id={query_id}"),
        format!("/console/api/query/results?id={query_id}"),
        format!("/console/api/query/download?id={query_id}&format=csv"),
    ] {
        let answer = console.get(&path, Some(&other)).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.text
        );
        assert_eq!(answer.json["__type"], "QueryIdNotFoundException", "{path}");
    }
    let cancel = console
        .change(
            "POST",
            "/console/api/query/cancel",
            &other,
            Some(&other.csrf_token),
            json!({ "queryId": query_id }),
        )
        .await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    assert_eq!(cancel.json["__type"], "QueryIdNotFoundException");
    let history = console
        .get("/console/api/query/history", Some(&other))
        .await;
    assert_eq!(history.json["queries"], json!([]));
    let theirs = console
        .start_query(&other, &format!("SELECT count(*) FROM {store}"))
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(theirs.json["__type"], "EventDataStoreNotFoundException");

    // Its own store sees only its own events.
    let own = console
        .start_query(
            &other,
            &format!(
                "SELECT count(*) AS n FROM {other_store} \
                 WHERE eventsource = 'dynamodb.amazonaws.com'"
            ),
        )
        .await;
    let own_id = own.json["queryId"].as_str().expect("id").to_owned();
    assert_eq!(
        console.wait_for_query(&other, &own_id).await["status"],
        "FINISHED"
    );
    let rows = console
        .get(
            &format!("/console/api/query/results?id={own_id}"),
            Some(&other),
        )
        .await;
    assert_eq!(rows.json["rows"], json!([["1"]]));
}

#[tokio::test]
async fn a_running_query_is_cancelled() {
    let console = Console::start();
    console.append(&recent_events());
    let store = console.create_data_store(DEFAULT_ACCOUNT, "all-events");
    let admin = console.sign_in(&console.admin).await;
    let started = console
        .start_query(
            &admin,
            &format!(
                "WITH RECURSIVE forever AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM forever) \
                 SELECT count(*) AS n FROM forever CROSS JOIN (SELECT count(*) AS c FROM {store}) e"
            ),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let query_id = started.json["queryId"].as_str().expect("id").to_owned();
    let cancelled = console
        .change(
            "POST",
            "/console/api/query/cancel",
            &admin,
            Some(&admin.csrf_token),
            json!({ "queryId": query_id }),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(cancelled.json["status"], "CANCELLED");
    let status = console
        .get(
            &format!("/console/api/query/status?id={query_id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(status.json["status"], "CANCELLED");
    let rows = console
        .get(
            &format!("/console/api/query/results?id={query_id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(rows.json["status"], "CANCELLED");
    assert_eq!(rows.json["rows"], json!([]));
    let again = console
        .change(
            "POST",
            "/console/api/query/cancel",
            &admin,
            Some(&admin.csrf_token),
            json!({ "queryId": query_id }),
        )
        .await;
    assert_eq!(
        again.json["__type"], "InactiveQueryException",
        "{}",
        again.text
    );
    let recorded = console.wait_for_events_named("CancelQuery", 2).await;
    assert!(recorded.iter().any(|event| event["errorCode"].is_string()));
}

#[tokio::test]
async fn saved_queries_are_kept_per_account() {
    let console = Console::start();
    let admin = console.sign_in(&console.admin).await;
    let saved = console
        .save_query(&admin, "deletes by user", "SELECT 1")
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    let id = saved.json["id"].as_str().expect("id").to_owned();
    let replaced = console
        .save_query(&admin, "deletes by user", "SELECT 2")
        .await;
    assert_eq!(
        replaced.json["id"],
        id.as_str(),
        "saving a name again replaces it"
    );
    console.save_query(&admin, "another", "SELECT 3").await;
    let listed = console.get("/console/api/query/saved", Some(&admin)).await;
    let names: Vec<&str> = listed.json["savedQueries"]
        .as_array()
        .expect("saved")
        .iter()
        .filter_map(|query| query["name"].as_str())
        .collect();
    assert_eq!(names, ["another", "deletes by user"]);
    assert_eq!(listed.json["savedQueries"][1]["statement"], "SELECT 2");

    let invalid = console.save_query(&admin, "", "SELECT 1").await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.json["__type"], "ValidationException");

    // Another account sees none of them and cannot delete them.
    let other = console
        .sign_in(&console.create_key(Role::Read, OTHER_ACCOUNT))
        .await;
    let theirs = console.get("/console/api/query/saved", Some(&other)).await;
    assert_eq!(theirs.json["savedQueries"], json!([]));
    let refused = console
        .change(
            "DELETE",
            &format!("/console/api/query/saved/{id}"),
            &other,
            Some(&other.csrf_token),
            json!({}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    // A read key of the account shares them.
    let reader = console
        .sign_in(&console.create_key(Role::Read, DEFAULT_ACCOUNT))
        .await;
    let shared = console.get("/console/api/query/saved", Some(&reader)).await;
    assert_eq!(
        shared.json["savedQueries"].as_array().map(Vec::len),
        Some(2)
    );
    let deleted = console
        .change(
            "DELETE",
            &format!("/console/api/query/saved/{id}"),
            &reader,
            Some(&reader.csrf_token),
            json!({}),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let after = console.get("/console/api/query/saved", Some(&admin)).await;
    assert_eq!(after.json["savedQueries"].as_array().map(Vec::len), Some(1));
    console.wait_for_events_named("SaveQuery", 4).await;
    console.wait_for_events_named("DeleteSavedQuery", 2).await;
}
