//! The layer in front of a real axum service, recording into a real OpenTrail server.

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{delete, get};
use base64::Engine as _;
use opentrail_recorder::routes::RouteRule;
use opentrail_recorder::{IngestCredentials, RecordingOptions};
use opentrail_server::{Config, ConfigLayer, Server};
use opentrail_tower::{Client, RecordLayer};

fn admin_credentials(path: &std::path::Path) -> anyhow::Result<IngestCredentials> {
    let text = std::fs::read_to_string(path)?;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.split_once('=').filter(|(key, _)| key.trim() == name))
            .map(|(_, value)| value.trim().to_owned())
    };
    Ok(IngestCredentials {
        access_key_id: value("aws_access_key_id").ok_or_else(|| anyhow::anyhow!("no key id"))?,
        secret_access_key: value("aws_secret_access_key")
            .ok_or_else(|| anyhow::anyhow!("no secret"))?,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_of_the_service_is_recorded_with_its_caller_route_and_error()
-> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let config = Config::load_with_environment(
        None,
        |_| None,
        ConfigLayer {
            data_dir: Some(data_dir.path().to_owned()),
            listen: Some("127.0.0.1:0".parse()?),
            ..ConfigLayer::default()
        },
    )?;
    let server = Server::start(config).await?;
    let endpoint = server.endpoint_url();
    let store = server.state().store.clone();
    let credentials = admin_credentials(server.credentials_file())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));

    let client = Client::new(&endpoint, credentials, "eu-west-1")?;
    let options = RecordingOptions {
        event_source: Some("orders.example.com".into()),
        routes: vec![RouteRule {
            method: "DELETE".into(),
            path: "/v1/orders/{order}".into(),
            event_name: "CancelOrder".into(),
            event_source: None,
            resource_type: Some("Example::Order".into()),
            resource_name: Some("orders/{order}".into()),
            read_only: None,
        }],
        ..RecordingOptions::default()
    };
    let app = axum::Router::new()
        .route(
            "/v1/orders/{order}",
            delete(|| async {
                (
                    StatusCode::FORBIDDEN,
                    r#"{"error":"NotYourOrder","message":"order 7 belongs to someone else"}"#,
                )
            }),
        )
        .route("/v1/orders", get(|| async { "[]" }))
        .layer(RecordLayer::new(client.clone()).options(options));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let service = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });

    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"sub":"mallory","iss":"https://idp.example.com"}"#);
    let http = reqwest::Client::new();
    let listed = http
        .get(format!("http://{address}/v1/orders?status=open"))
        .basic_auth("carol", Some("carols-password"))
        .send()
        .await?;
    assert_eq!(listed.status(), 200);
    assert_eq!(
        listed.text().await?,
        "[]",
        "the response passes through unchanged"
    );
    let refused = http
        .delete(format!("http://{address}/v1/orders/7"))
        .bearer_auth(format!("eyJhbGciOiJub25lIn0.{claims}.sig"))
        .send()
        .await?;
    assert_eq!(refused.status(), 403);
    refused.bytes().await?;

    assert!(
        client.flush(Duration::from_secs(20)).await,
        "records reach OpenTrail"
    );
    let records: Vec<serde_json::Value> = store
        .read_log(0, 100)?
        .into_iter()
        .map(|entry| serde_json::from_str(&entry.json))
        .collect::<Result<_, _>>()?;
    let recorded: Vec<&serde_json::Value> = records
        .iter()
        .filter(|record| record["eventSource"] == "orders.example.com")
        .collect();
    assert_eq!(recorded.len(), 2, "{records:#?}");
    let listed = recorded
        .iter()
        .find(|r| r["eventName"] == "GetOrders")
        .expect("the list call");
    assert_eq!(listed["userIdentity"]["userName"], "carol");
    assert_eq!(listed["requestParameters"]["status"], "open");
    assert_eq!(listed["readOnly"], true);
    assert_eq!(listed["sourceIPAddress"], "127.0.0.1");
    let cancelled = recorded
        .iter()
        .find(|r| r["eventName"] == "CancelOrder")
        .expect("the cancel call");
    assert_eq!(cancelled["userIdentity"]["userName"], "mallory");
    assert_eq!(cancelled["errorCode"], "NotYourOrder");
    assert_eq!(cancelled["resources"][0]["ARN"], "orders/7");
    assert_eq!(cancelled["awsRegion"], "us-east-1");
    let text = serde_json::to_string(&records)?;
    assert!(!text.contains("carols-password"));

    service.abort();
    let _ = stop.send(());
    serving.await??;
    Ok(())
}
