//! Channel operations: validation and wire shapes.

use anyhow::{Result, ensure};
use opentrail_protocol::channels::{
    ChannelRef, ChannelRequest, ChannelSummary, CreateChannelRequest, CreateChannelResponse,
    Destination, GetChannelResponse, IngestionStatus, ListChannelsRequest, ListChannelsResponse,
    UpdateChannelRequest, channel_arn,
};
use opentrail_protocol::error::codes;
use opentrail_protocol::json11;
use opentrail_protocol::time::ms_to_epoch_seconds;
use serde_json::{Value, json};

fn create(body: Value) -> Result<CreateChannelRequest> {
    Ok(json11::parse_body(body.to_string().as_bytes())?)
}

fn create_error(body: Value) -> Result<Option<String>> {
    Ok(create(body)?.validate().err().map(|error| error.code))
}

#[test]
fn create_channel_validates() -> Result<()> {
    let valid = json!({
        "Name": "my-channel",
        "Source": "Custom",
        "Destinations": [{"Type": "EVENT_DATA_STORE", "Location": "EXAMPLEf852-4e8f-8bd1-bcf6cEXAMPLE"}],
        "Tags": [{"Key": "team", "Value": "ops"}, {"Key": "bare"}]
    });
    let validated = create(valid)?.validate()?;
    ensure!(validated.name == "my-channel" && validated.source == "Custom");
    ensure!(validated.destinations.len() == 1 && validated.tags.len() == 2);

    let destination = json!([{"Type": "EVENT_DATA_STORE", "Location": "eds-1234"}]);
    let cases = [
        (
            json!({"Source": "Custom", "Destinations": destination}),
            codes::INVALID_PARAMETER,
        ),
        (
            json!({"Name": "x", "Source": "Custom", "Destinations": destination}),
            codes::INVALID_PARAMETER,
        ),
        (
            json!({"Name": "ok-name", "Destinations": destination}),
            codes::INVALID_SOURCE,
        ),
        (
            json!({"Name": "ok-name", "Source": "", "Destinations": destination}),
            codes::INVALID_SOURCE,
        ),
        (
            json!({"Name": "ok-name", "Source": "Custom"}),
            codes::INVALID_PARAMETER,
        ),
        (
            json!({"Name": "ok-name", "Source": "Custom", "Destinations": []}),
            codes::INVALID_PARAMETER,
        ),
        (
            json!({"Name": "ok-name", "Source": "Custom", "Destinations": [{"Type": "S3", "Location": "bucket"}]}),
            codes::INVALID_PARAMETER,
        ),
        (
            json!({"Name": "ok-name", "Source": "Custom", "Destinations": destination,
                   "Tags": [{"Key": "a"}, {"Key": "a"}]}),
            codes::INVALID_TAG_PARAMETER,
        ),
        (
            json!({"Name": "ok-name", "Source": "Custom", "Destinations": destination,
                   "Tags": [{"Key": ""}]}),
            codes::INVALID_TAG_PARAMETER,
        ),
        (
            json!({"Name": "ok-name", "Source": "Custom", "Destinations": destination,
                   "Tags": (0..51).map(|i| json!({"Key": format!("k{i}")})).collect::<Vec<_>>()}),
            codes::TAGS_LIMIT_EXCEEDED,
        ),
    ];
    for (body, code) in cases {
        ensure!(
            create_error(body.clone())? == Some(code.to_owned()),
            "{body}"
        );
    }
    Ok(())
}

#[test]
fn create_response_shape() -> Result<()> {
    let arn = channel_arn("us-east-1", "111122223333", "abc-123");
    let response = CreateChannelResponse {
        channel_arn: arn.clone(),
        name: "my-channel".to_owned(),
        source: "Custom".to_owned(),
        destinations: vec![Destination {
            destination_type: "EVENT_DATA_STORE".to_owned(),
            location: "eds-1".to_owned(),
        }],
        tags: None,
    };
    let body: Value = serde_json::from_slice(&json11::ok_response(&response).body)?;
    ensure!(
        body == json!({"ChannelArn": arn, "Name": "my-channel", "Source": "Custom",
                       "Destinations": [{"Type": "EVENT_DATA_STORE", "Location": "eds-1"}]}),
        "{body}"
    );
    Ok(())
}

#[test]
fn get_and_delete_take_arn_or_id() -> Result<()> {
    let by_arn: ChannelRequest = json11::parse_body(
        br#"{"Channel":"arn:aws:cloudtrail:eu-west-1:111122223333:channel/abc-123"}"#,
    )?;
    ensure!(
        matches!(by_arn.channel_ref()?, ChannelRef::Arn { ref region, .. } if region == "eu-west-1")
    );
    let by_id: ChannelRequest = json11::parse_body(br#"{"Channel":"abc-123"}"#)?;
    ensure!(by_id.channel_ref()? == ChannelRef::Id("abc-123".to_owned()));
    let missing: ChannelRequest = json11::parse_body(b"{}")?;
    ensure!(
        missing.channel_ref().err().map(|e| e.code) == Some(codes::CHANNEL_ARN_INVALID.to_owned())
    );
    Ok(())
}

#[test]
fn get_response_omits_absent_members() -> Result<()> {
    let response = GetChannelResponse {
        channel_arn: Some("arn:aws:cloudtrail:us-east-1:111122223333:channel/abc".to_owned()),
        name: Some("c".to_owned()),
        source: Some("Custom".to_owned()),
        ingestion_status: Some(IngestionStatus {
            latest_ingestion_success_time: Some(ms_to_epoch_seconds(1_704_164_645_000)),
            latest_ingestion_success_event_id: Some(
                "0f4c2d8e-9a1b-4c3d-8e7f-6a5b4c3d2e1f".to_owned(),
            ),
            ..IngestionStatus::default()
        }),
        ..GetChannelResponse::default()
    };
    let body: Value = serde_json::from_slice(&json11::ok_response(&response).body)?;
    ensure!(
        body == json!({
            "ChannelArn": "arn:aws:cloudtrail:us-east-1:111122223333:channel/abc",
            "Name": "c",
            "Source": "Custom",
            "IngestionStatus": {
                "LatestIngestionSuccessTime": 1704164645.0,
                "LatestIngestionSuccessEventID": "0f4c2d8e-9a1b-4c3d-8e7f-6a5b4c3d2e1f"
            }
        }),
        "{body}"
    );
    Ok(())
}

#[test]
fn list_channels_paging_and_shape() -> Result<()> {
    let default: ListChannelsRequest = json11::parse_body(b"{}")?;
    ensure!(default.page_size()? == 1000);
    let small: ListChannelsRequest = json11::parse_body(br#"{"MaxResults":5}"#)?;
    ensure!(small.page_size()? == 5);
    for bad in [0, 1001] {
        let request = ListChannelsRequest {
            max_results: Some(bad),
            next_token: None,
        };
        ensure!(
            request.page_size().err().map(|e| e.code) == Some(codes::INVALID_PARAMETER.to_owned())
        );
    }
    let response = ListChannelsResponse {
        channels: vec![ChannelSummary {
            channel_arn: "arn:aws:cloudtrail:us-east-1:111122223333:channel/abc".to_owned(),
            name: "c".to_owned(),
        }],
        next_token: None,
    };
    let body: Value = serde_json::from_slice(&json11::ok_response(&response).body)?;
    ensure!(
        body == json!({"Channels": [{"ChannelArn": "arn:aws:cloudtrail:us-east-1:111122223333:channel/abc", "Name": "c"}]})
    );
    Ok(())
}

#[test]
fn update_channel_validates_optional_members() -> Result<()> {
    let ok: UpdateChannelRequest = json11::parse_body(br#"{"Channel":"abc","Name":"new-name"}"#)?;
    ensure!(ok.validate()? == ChannelRef::Id("abc".to_owned()));
    let bad_name: UpdateChannelRequest = json11::parse_body(br#"{"Channel":"abc","Name":"no"}"#)?;
    ensure!(bad_name.validate().err().map(|e| e.code) == Some(codes::INVALID_PARAMETER.to_owned()));
    Ok(())
}
