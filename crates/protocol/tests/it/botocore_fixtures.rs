//! Requests signed by botocore itself (tests/data/botocore/README.md).

use anyhow::{Context, Result, ensure};
use http::{HeaderMap, HeaderName, HeaderValue};
use jiff::Timestamp;
use opentrail_protocol::cloudtrail_data;
use opentrail_protocol::json11;
use opentrail_protocol::lookup_events::LookupEventsRequest;
use opentrail_protocol::sigv4::{SignedRequest, SigningParams, sign, verify};
use serde::Deserialize;

const HOST: &str = "localhost:7480";
const KEY_ID: &str = "AKIAOPENTRAILTEST01";
const SECRET: &str = "opentrail-test-secret/with+symbols=";

#[derive(Deserialize)]
struct Fixture {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: String,
    now: String,
    service: String,
}

impl Fixture {
    fn load(name: &str) -> Result<Self> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/botocore")
            .join(format!("{name}.json"));
        Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
    }

    fn path_and_query(&self) -> Result<&str> {
        let after_scheme = self.url.strip_prefix("http://").context("http url")?;
        let slash = after_scheme.find('/').context("path")?;
        Ok(&after_scheme[slash..])
    }

    fn header_map(&self) -> Result<HeaderMap> {
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static(HOST));
        for (name, value) in &self.headers {
            map.append(
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        Ok(map)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn verify(&self) -> Result<()> {
        let headers = self.header_map()?;
        let (path, query) = self
            .path_and_query()?
            .split_once('?')
            .unwrap_or((self.path_and_query()?, ""));
        let request = SignedRequest {
            method: &self.method,
            path,
            query,
            authority: None,
            headers: &headers,
            body: self.body.as_bytes(),
        };
        let now: Timestamp = self.now.parse()?;
        let verified = verify(&request, now, &self.service, |key| {
            (key == KEY_ID).then(|| SECRET.to_owned())
        })?;
        ensure!(verified.access_key_id == KEY_ID && verified.region == "us-east-1");
        Ok(())
    }

    /// Signs the same request with our signer, over the headers botocore signed.
    fn resign(&self) -> Result<()> {
        let authorization = self.header("Authorization").context("authorization")?;
        let signed_names = authorization
            .split("SignedHeaders=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .context("signed headers")?;
        let mut headers: Vec<(&str, &str)> = vec![("host", HOST)];
        for name in signed_names.split(';') {
            if name != "host" && name != "x-amz-date" {
                headers.push((name, self.header(name).context("signed header value")?));
            }
        }
        let params = SigningParams {
            access_key_id: KEY_ID,
            secret_access_key: SECRET,
            region: "us-east-1",
            service: &self.service,
            now: self.now.parse()?,
            include_content_sha256: false,
        };
        let added = sign(
            &self.method,
            self.path_and_query()?,
            &headers,
            self.body.as_bytes(),
            &params,
        );
        let ours = added
            .iter()
            .find(|(name, _)| name == "Authorization")
            .map(|(_, value)| value.as_str());
        ensure!(
            ours == Some(authorization),
            "ours {ours:?}\nbotocore {authorization}"
        );
        Ok(())
    }
}

#[test]
fn lookup_events_with_attribute_verifies_and_validates() -> Result<()> {
    let fixture = Fixture::load("lookup-events-attribute")?;
    fixture.verify()?;
    fixture.resign()?;
    let target = fixture.header("X-Amz-Target").context("target")?;
    ensure!(json11::parse_target(target)? == json11::Operation::LookupEvents);
    let lookup = json11::parse_body::<LookupEventsRequest>(fixture.body.as_bytes())?.validate()?;
    ensure!(lookup.max_results == 5);
    ensure!(lookup.start_ms == Some(1_704_067_200_000));
    Ok(())
}

#[test]
fn lookup_events_without_parameters_verifies() -> Result<()> {
    let fixture = Fixture::load("lookup-events-empty")?;
    ensure!(fixture.body == "{}");
    fixture.verify()?;
    fixture.resign()
}

#[test]
fn put_audit_events_verifies_and_parses() -> Result<()> {
    let fixture = Fixture::load("put-audit-events")?;
    fixture.verify()?;
    fixture.resign()?;
    let (_, query) = fixture.path_and_query()?.split_once('?').context("query")?;
    let parsed = cloudtrail_data::parse_query(query)?;
    ensure!(
        parsed.channel_arn
            == "arn:aws:cloudtrail:us-east-1:111122223333:channel/6464f5be-705b-4c51-b64c-d46643ff96dc"
    );
    ensure!(parsed.external_id.as_deref() == Some("ext+id=1"));
    ensure!(cloudtrail_data::parse_request(fixture.body.as_bytes())?.len() == 1);
    Ok(())
}
