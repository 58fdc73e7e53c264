//! The AWS SDK for Rust (`aws-sdk-cloudtrail`, `aws-sdk-cloudtraildata`) against a real
//! `opentrail serve`. The SDK sends the short X-Amz-Target form
//! (`CloudTrail_20131101.<Operation>`) on every control-plane call. Each test starts its
//! own server (see `src/lib.rs`); no mocks and no timing assertions.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use aws_config::BehaviorVersion;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_cloudtrail::error::ProvideErrorMetadata as _;
use aws_sdk_cloudtrail::operation::get_trail_status::GetTrailStatusError;
use aws_sdk_cloudtrail::operation::lookup_events::LookupEventsError;
use aws_sdk_cloudtrail::types::{
    Destination, DestinationType, LookupAttribute, LookupAttributeKey,
};
use aws_sdk_cloudtraildata::types::AuditEvent;
use aws_smithy_types::DateTime;
use opentrail_sdk_rust_tests::{
    ACCOUNT_ID, REGION, Server, cloudtrail_event, past_hour, plus_minutes, unique,
};

fn by_name(name: &str) -> Result<LookupAttribute> {
    LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::EventName)
        .attribute_value(name)
        .build()
        .context("lookup attribute")
}

#[tokio::test(flavor = "multi_thread")]
async fn lookup_events_finds_ingested_records_with_typed_fields() -> Result<()> {
    let server = Server::start()?;
    let hour = past_hour();
    let name = unique("DeleteTable");
    let event_id = unique("id-");
    server.ingest(&[cloudtrail_event(&name, plus_minutes(hour, 10), &event_id)])?;

    let client = server.cloudtrail().await?;
    let output = client
        .lookup_events()
        .lookup_attributes(by_name(&name)?)
        .start_time(hour)
        .end_time(plus_minutes(hour, 60))
        .send()
        .await
        .with_context(|| server.logs())?;
    let events = output.events();
    ensure!(events.len() == 1, "{events:?}");
    let event = &events[0];
    ensure!(event.event_id() == Some(event_id.as_str()));
    ensure!(event.event_name() == Some(name.as_str()));
    ensure!(event.username() == Some("alice"));
    ensure!(event.access_key_id() == Some("AKIAEXAMPLEALICE0001"));
    ensure!(event.event_source() == Some("dynamodb.amazonaws.com"));
    ensure!(event.read_only() == Some("false"));
    // The timestamp arrives as the SDK's DateTime, to the second.
    let event_time: &DateTime = event.event_time().context("EventTime")?;
    ensure!(*event_time == plus_minutes(hour, 10), "{event_time:?}");
    let resources = event.resources();
    ensure!(resources.len() == 1, "{resources:?}");
    ensure!(resources[0].resource_type() == Some("AWS::DynamoDB::Table"));
    // CloudTrail's ResourceName is the resource's ARN (resources[].ARN).
    ensure!(
        resources[0].resource_name()
            == Some(format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/orders").as_str()),
        "{resources:?}"
    );
    let record: serde_json::Value =
        serde_json::from_str(event.cloud_trail_event().context("CloudTrailEvent")?)?;
    ensure!(
        record["eventID"] == event_id.as_str()
            && record["requestParameters"]["tableName"] == "orders"
    );

    // Outside the time range: nothing.
    let earlier = client
        .lookup_events()
        .lookup_attributes(by_name(&name)?)
        .start_time(plus_minutes(hour, -60))
        .end_time(plus_minutes(hour, 5))
        .send()
        .await?;
    ensure!(earlier.events().is_empty(), "{earlier:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lookup_events_paginator_follows_every_page() -> Result<()> {
    let server = Server::start()?;
    let hour = past_hour();
    let name = unique("PutItem");
    let ids: Vec<String> = (0..7).map(|i| format!("{name}-{i}")).collect();
    let records: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| cloudtrail_event(&name, plus_minutes(hour, i as i64 + 1), id))
        .collect();
    server.ingest(&records)?;

    let client = server.cloudtrail().await?;
    let mut pages = client
        .lookup_events()
        .lookup_attributes(by_name(&name)?)
        .start_time(hour)
        .end_time(plus_minutes(hour, 60))
        .max_results(2)
        .into_paginator()
        .send();
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| server.logs())?;
        sizes.push(page.events().len());
        seen.extend(
            page.events()
                .iter()
                .filter_map(|e| e.event_id().map(str::to_owned)),
        );
    }
    ensure!(sizes == [2, 2, 2, 1], "{sizes:?}");
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    ensure!(seen == newest_first, "{seen:?}");

    // The items() view of the same paginator yields the events themselves.
    let items = client
        .lookup_events()
        .lookup_attributes(by_name(&name)?)
        .start_time(hour)
        .end_time(plus_minutes(hour, 60))
        .max_results(3)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?;
    ensure!(items.len() == 7, "{items:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn modelled_errors_arrive_as_typed_variants_with_their_status() -> Result<()> {
    let server = Server::start()?;
    let client = server.cloudtrail().await?;

    let error = match client.lookup_events().max_results(51).send().await {
        Ok(output) => bail!("MaxResults 51 was accepted: {output:?}"),
        Err(error) => error,
    };
    let status = error.raw_response().map(|r| r.status().as_u16());
    ensure!(status == Some(400), "{status:?}");
    let service_error = error.into_service_error();
    ensure!(
        matches!(
            service_error,
            LookupEventsError::InvalidMaxResultsException(_)
        ),
        "{service_error:?}"
    );
    ensure!(service_error.code() == Some("InvalidMaxResultsException"));

    let two_attributes = client
        .lookup_events()
        .lookup_attributes(by_name("A")?)
        .lookup_attributes(
            LookupAttribute::builder()
                .attribute_key(LookupAttributeKey::Username)
                .attribute_value("B")
                .build()?,
        )
        .send()
        .await
        .err()
        .map(|e| e.into_service_error());
    ensure!(
        matches!(
            two_attributes,
            Some(LookupEventsError::InvalidLookupAttributesException(_))
        ),
        "{two_attributes:?}"
    );

    let error = match client.get_trail_status().name("no-such-trail").send().await {
        Ok(output) => bail!("an unknown trail has a status: {output:?}"),
        Err(error) => error,
    };
    let status = error.raw_response().map(|r| r.status().as_u16());
    ensure!(status == Some(404), "{status:?}");
    let service_error = error.into_service_error();
    ensure!(
        matches!(
            service_error,
            GetTrailStatusError::TrailNotFoundException(_)
        ),
        "{service_error:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn trails_start_and_stop_logging() -> Result<()> {
    let server = Server::start()?;
    let client = server.cloudtrail().await?;
    let created = client
        .create_trail()
        .name("main")
        .s3_bucket_name("audit-logs")
        .send()
        .await
        .with_context(|| server.logs())?;
    ensure!(
        created.trail_arn()
            == Some(format!("arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:trail/main").as_str()),
        "{created:?}"
    );
    client.start_logging().name("main").send().await?;
    let status = client.get_trail_status().name("main").send().await?;
    ensure!(status.is_logging() == Some(true), "{status:?}");
    ensure!(status.start_logging_time().is_some(), "{status:?}");
    client.stop_logging().name("main").send().await?;
    let status = client.get_trail_status().name("main").send().await?;
    ensure!(status.is_logging() == Some(false), "{status:?}");
    client.delete_trail().name("main").send().await?;
    let gone = client.get_trail_status().name("main").send().await;
    ensure!(
        matches!(
            gone.map_err(|e| e.into_service_error()),
            Err(GetTrailStatusError::TrailNotFoundException(_))
        ),
        "the deleted trail is still there"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn list_public_keys_returns_the_digest_signing_key() -> Result<()> {
    // Trails deliver and write digests every second, so a signing key exists quickly.
    let server = Server::start_with(&[
        ("OPENTRAIL_DELIVERY_INTERVAL_SECS", "1"),
        ("OPENTRAIL_DIGEST_INTERVAL_SECS", "1"),
    ])?;
    let client = server.cloudtrail().await?;
    let now = DateTime::from(std::time::SystemTime::now());
    let list = || {
        client
            .list_public_keys()
            .start_time(DateTime::from_secs(now.secs() - 3600))
            .end_time(DateTime::from_secs(now.secs() + 7200))
            .send()
    };
    // No trail has signed anything yet: the list is empty, and the call itself works.
    let output = list().await.with_context(|| server.logs())?;
    ensure!(output.public_key_list().is_empty(), "{output:?}");

    client
        .create_trail()
        .name("signed")
        .s3_bucket_name("digests")
        .enable_log_file_validation(true)
        .send()
        .await?;
    client.start_logging().name("signed").send().await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let keys = loop {
        let output = list().await?;
        if !output.public_key_list().is_empty() {
            break output.public_key_list().to_vec();
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no signing key after 60 s:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(keys.len() == 1, "{keys:?}");
    let key = &keys[0];
    // The key arrives as bytes (the SDK decodes the base64): a PKCS#1 DER SEQUENCE.
    let der = key.value().context("Value")?.as_ref();
    ensure!(der.len() > 256 && der[0] == 0x30, "{der:?}");
    let fingerprint = key.fingerprint().context("Fingerprint")?;
    ensure!(
        fingerprint.len() == 32 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
        "{fingerprint}"
    );
    // Validity times arrive as the SDK's DateTime.
    let from: &DateTime = key.validity_start_time().context("ValidityStartTime")?;
    let until: &DateTime = key.validity_end_time().context("ValidityEndTime")?;
    ensure!(
        from.secs() <= now.secs() + 60 && until.secs() > now.secs(),
        "{key:?}"
    );

    // An inverted window is the modelled InvalidTimeRangeException.
    let inverted = client
        .list_public_keys()
        .start_time(now)
        .end_time(DateTime::from_secs(now.secs() - 3600))
        .send()
        .await
        .err()
        .map(|e| e.into_service_error());
    ensure!(
        inverted.as_ref().and_then(|e| e.code()) == Some("InvalidTimeRangeException"),
        "{inverted:?}"
    );
    client.stop_logging().name("signed").send().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn put_audit_events_through_a_channel_then_lookup_finds_it() -> Result<()> {
    let server = Server::start()?;
    let client = server.cloudtrail().await?;
    let channel = client
        .create_channel()
        .name("payments")
        .source("Custom")
        .destinations(
            Destination::builder()
                .r#type(DestinationType::EventDataStore)
                .location(format!(
                    "arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:eventdatastore/EXAMPLE-f852-4e8f-8bd1-bcf6cEXAMPLE"
                ))
                .build()?,
        )
        .send()
        .await
        .with_context(|| server.logs())?;
    let channel_arn = channel.channel_arn().context("ChannelArn")?.to_owned();

    let name = unique("RefundIssued");
    let event_time = opentrail_sdk_rust_tests::iso(DateTime::from(std::time::SystemTime::now()));
    let event_data = serde_json::json!({
        "version": "1.0",
        "userIdentity": {"type": "CustomUser", "principalId": "user-42", "details": {"team": "payments"}},
        "userAgent": "payments-api/2.3",
        "eventSource": "payments.example.com",
        "eventName": name,
        "eventTime": event_time,
        "UID": unique("uid-"),
        "sourceIPAddress": "198.51.100.9",
        "recipientAccountId": ACCOUNT_ID,
    })
    .to_string();
    let data = server.cloudtrail_data().await?;
    let put = data
        .put_audit_events()
        .channel_arn(&channel_arn)
        .audit_events(
            AuditEvent::builder()
                .id("1")
                .event_data(&event_data)
                .build()?,
        )
        .send()
        .await
        .with_context(|| server.logs())?;
    ensure!(put.failed().is_empty(), "{put:?}");
    ensure!(put.successful().len() == 1, "{put:?}");
    ensure!(put.successful()[0].id() == "1");
    let event_id = put.successful()[0].event_id().to_owned();

    // Read-your-writes: the answer came after the append, so the lookup sees it.
    let found = client
        .lookup_events()
        .lookup_attributes(by_name(&name)?)
        .send()
        .await?;
    let ids: HashSet<_> = found.events().iter().filter_map(|e| e.event_id()).collect();
    ensure!(ids == HashSet::from([event_id.as_str()]), "{found:?}");
    let record: serde_json::Value = serde_json::from_str(
        found.events()[0]
            .cloud_trail_event()
            .context("CloudTrailEvent")?,
    )?;
    ensure!(record["eventCategory"] == "ActivityAuditLog", "{record}");
    ensure!(
        record["eventData"]["eventName"] == name.as_str(),
        "{record}"
    );

    // An unknown channel is the modelled ChannelNotFound error.
    let error = data
        .put_audit_events()
        .channel_arn(format!(
            "arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:channel/no-such-channel"
        ))
        .audit_events(
            AuditEvent::builder()
                .id("2")
                .event_data(&event_data)
                .build()?,
        )
        .send()
        .await
        .err()
        .map(|e| e.into_service_error());
    ensure!(
        error.as_ref().is_some_and(|e| e.is_channel_not_found()),
        "{error:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_credentials_file_works_through_aws_config_profile_files() -> Result<()> {
    // What the README tells a Rust user: aws-config reads DATA_DIR/credentials like any
    // shared credentials file.
    let server = Server::start()?;
    let files = EnvConfigFiles::builder()
        .with_file(EnvConfigFileKind::Credentials, server.credentials_file())
        .build();
    let http = aws_smithy_http_client::Builder::new().build_http();
    let credentials = ProfileFileCredentialsProvider::builder()
        .configure(&ProviderConfig::without_region().with_http_client(http.clone()))
        .profile_files(files)
        .build();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&server.endpoint)
        .credentials_provider(credentials)
        .http_client(http)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await;
    let client = aws_sdk_cloudtrail::Client::new(&config);
    let trails = client
        .list_trails()
        .send()
        .await
        .with_context(|| server.logs())?;
    ensure!(trails.trails().is_empty(), "{trails:?}");
    Ok(())
}
