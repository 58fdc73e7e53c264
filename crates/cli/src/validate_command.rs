//! `opentrail validate`: checks a trail's digest chain and log files in its bucket, like
//! `aws cloudtrail validate-logs` but also catching what that tool misses (several
//! consecutive deleted digests, gaps in time). The checks live in
//! `opentrail_trails::validate`; this is the command-line edge.
//!
//! - The trail (bucket, prefix) comes from the server's DescribeTrails, and the public
//!   keys from its ListPublicKeys over `[start, end + 2 h]`, both signed like every client
//!   command (see `client.rs` for endpoint and credentials).
//! - The bucket is read directly: from the S3-compatible endpoint the server delivers to
//!   (`--s3-endpoint` / `OPENTRAIL_S3_*`, the server's own settings), else from the local
//!   directory destination `<data-dir>/buckets/<bucket>`.
//! - Digests are those of `--region` (default: the trail's home region), for the ARN's
//!   account unless `--account-id` names another one the trail delivers for.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use opentrail_protocol::json11::Operation;
use opentrail_protocol::public_keys::{ListPublicKeysRequest, ListPublicKeysResponse};
use opentrail_protocol::time::ms_to_epoch_seconds;
use opentrail_trails::destinations::BUCKETS_DIR_NAME;
use opentrail_trails::validate::{ValidationRequest, validate};
use opentrail_trails::{DestinationConfig, Destinations, PublicKeyInfo};

use crate::client::{ApiClient, ConnectionArgs};
use crate::time_arg::{RangeEnd, parse_time};

/// The aws CLI asks for keys up to two hours past the end (spec §6.3).
const KEYS_END_SLACK_MS: i64 = 2 * 3600 * 1000;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The trail: arn:aws:cloudtrail:REGION:ACCOUNT:trail/NAME.
    #[arg(long, value_name = "ARN")]
    trail_arn: String,
    /// Validate digests from this time (now, -1h, -7d, 2024-01-02, RFC 3339, epoch s).
    #[arg(long, value_name = "TIME")]
    start_time: String,
    /// …up to this time [default: now].
    #[arg(long, value_name = "TIME")]
    end_time: Option<String>,
    /// Also print the checked range and where the bucket was read.
    #[arg(long)]
    verbose: bool,
    /// The account whose digests to check [default: the ARN's account].
    #[arg(long, value_name = "ID")]
    account_id: Option<String>,
    /// Read this bucket instead of the trail's.
    #[arg(long, value_name = "BUCKET")]
    s3_bucket: Option<String>,
    /// With --s3-bucket: the key prefix.
    #[arg(long, value_name = "PREFIX")]
    s3_prefix: Option<String>,
    #[command(flatten)]
    s3: crate::s3_args::S3Args,
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// What the ARN names.
struct TrailArn {
    home_region: String,
    account_id: String,
    name: String,
}

fn parse_trail_arn(arn: &str) -> anyhow::Result<TrailArn> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "cloudtrail"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|byte| byte.is_ascii_digit());
    let name = parts
        .get(5)
        .and_then(|resource| resource.strip_prefix("trail/"));
    match (valid, name) {
        (true, Some(name)) if !name.is_empty() => Ok(TrailArn {
            home_region: parts[3].to_owned(),
            account_id: parts[4].to_owned(),
            name: name.to_owned(),
        }),
        _ => bail!(
            "invalid trail ARN {arn:?}: expected arn:aws:cloudtrail:REGION:ACCOUNT:trail/NAME"
        ),
    }
}

/// Runs the command; `Ok(false)` when something is invalid (exit status 1).
pub async fn run(args: ValidateArgs) -> anyhow::Result<bool> {
    let arn = parse_trail_arn(&args.trail_arn)?;
    let now = jiff::Timestamp::now();
    let start_ms = parse_time(&args.start_time, now, RangeEnd::Start)?.as_millisecond();
    let end_ms = match &args.end_time {
        Some(text) => parse_time(text, now, RangeEnd::End)?.as_millisecond(),
        None => now.as_millisecond(),
    };
    if start_ms > end_ms {
        bail!("--start-time must be before --end-time");
    }
    let region = args
        .connection
        .region
        .clone()
        .unwrap_or_else(|| arn.home_region.clone());
    let server = SignedClient::new(&args.connection, &region)?;
    let (bucket, prefix) = match &args.s3_bucket {
        Some(bucket) => (bucket.clone(), args.s3_prefix.clone()),
        None => server.trail_bucket(&args.trail_arn).await?,
    };
    let public_keys = server
        .public_keys(start_ms, end_ms.saturating_add(KEYS_END_SLACK_MS))
        .await?;
    if public_keys.is_empty() {
        bail!(
            "no public keys found in {region} between {} and {} (has the trail written digests?)",
            opentrail_trails::digest::format_digest_time(start_ms),
            opentrail_trails::digest::format_digest_time(end_ms + KEYS_END_SLACK_MS)
        );
    }
    let destination = args
        .s3
        .destination(&region)
        .unwrap_or_else(|| DestinationConfig::local_in_data_dir(&args.connection.data_dir));
    if let DestinationConfig::LocalDirectory { buckets_dir } = &destination
        && !buckets_dir.join(&bucket).is_dir()
    {
        bail!(
            "bucket {bucket} is not a directory under {} (for an S3 destination set --s3-endpoint or OPENTRAIL_S3_ENDPOINT)",
            buckets_dir.display()
        );
    }
    let destinations = Arc::new(Destinations::from_config(&destination));
    let request = ValidationRequest {
        bucket: bucket.clone(),
        prefix,
        account_id: args.account_id.clone().unwrap_or(arn.account_id),
        region,
        trail_name: arn.name,
        home_region: arn.home_region,
        start_ms,
        end_ms,
        public_keys,
    };
    println!(
        "Validating log files for trail {} between {} and {}\n",
        args.trail_arn,
        opentrail_trails::digest::format_digest_time(start_ms),
        opentrail_trails::digest::format_digest_time(end_ms)
    );
    if args.verbose {
        println!(
            "Reading s3://{bucket} ({}), digests of account {} in {}\n",
            match &args.s3.s3_endpoint {
                Some(endpoint) => endpoint.clone(),
                None => format!(
                    "{}",
                    args.connection.data_dir.join(BUCKETS_DIR_NAME).display()
                ),
            },
            request.account_id,
            request.region
        );
    }
    let report = validate(&destinations, &request)
        .await
        .with_context(|| format!("cannot read bucket {bucket}"))?;
    for finding in &report.findings {
        println!("{}", finding.line());
    }
    if report.findings.is_empty() {
        println!("No digests found");
    }
    println!("\n{}", report.summary());
    Ok(report.is_valid())
}

/// Signed AWS JSON 1.1 calls to the server (DescribeTrails, ListPublicKeys), through the
/// client every command uses.
struct SignedClient {
    client: ApiClient,
    region: String,
}

impl SignedClient {
    fn new(connection: &ConnectionArgs, region: &str) -> anyhow::Result<SignedClient> {
        let mut connection = connection.clone();
        connection.region = Some(region.to_owned());
        Ok(SignedClient {
            client: ApiClient::from_connection_args(&connection)?,
            region: region.to_owned(),
        })
    }

    async fn call(
        &self,
        operation: Operation,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.client
            .call_json11(&operation.target(), body)
            .await
            .with_context(|| format!("{} failed", operation.name()))
    }

    /// The trail's bucket and prefix, from DescribeTrails (as the aws CLI finds them).
    async fn trail_bucket(&self, trail_arn: &str) -> anyhow::Result<(String, Option<String>)> {
        let answer = self
            .call(
                Operation::DescribeTrails,
                &serde_json::json!({"trailNameList": [trail_arn], "includeShadowTrails": true}),
            )
            .await?;
        let trails = answer
            .get("trailList")
            .and_then(|list| list.as_array())
            .cloned()
            .unwrap_or_default();
        let Some(trail) = trails
            .iter()
            .find(|trail| trail.get("TrailARN").and_then(|arn| arn.as_str()) == Some(trail_arn))
        else {
            bail!("trail {trail_arn} not found (DescribeTrails does not list it)");
        };
        let bucket = trail
            .get("S3BucketName")
            .and_then(|bucket| bucket.as_str())
            .context("the trail has no S3BucketName")?
            .to_owned();
        let prefix = trail
            .get("S3KeyPrefix")
            .and_then(|prefix| prefix.as_str())
            .map(str::to_owned);
        Ok((bucket, prefix))
    }

    async fn public_keys(&self, start_ms: i64, end_ms: i64) -> anyhow::Result<Vec<PublicKeyInfo>> {
        let request = ListPublicKeysRequest {
            start_time: Some(ms_to_epoch_seconds(start_ms)),
            end_time: Some(ms_to_epoch_seconds(end_ms)),
            next_token: None,
        };
        let body = serde_json::to_value(&request).context("cannot encode ListPublicKeys")?;
        let answer = self.call(Operation::ListPublicKeys, &body).await?;
        let response: ListPublicKeysResponse =
            serde_json::from_value(answer).context("unexpected ListPublicKeys answer")?;
        let seconds_to_ms = |number: &serde_json::Number| {
            opentrail_protocol::time::epoch_seconds_to_ms(number).unwrap_or_default()
        };
        Ok(response
            .public_key_list
            .iter()
            .filter_map(|key| {
                Some(PublicKeyInfo {
                    region: self.region.clone(),
                    fingerprint: key.fingerprint.clone(),
                    public_der: key.der()?,
                    valid_from_ms: seconds_to_ms(&key.validity_start_time),
                    valid_until_ms: seconds_to_ms(&key.validity_end_time),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trail_arns_parse_like_the_aws_cli_expects() {
        let arn = parse_trail_arn("arn:aws:cloudtrail:us-east-2:111122223333:trail/my-trail")
            .expect("valid");
        assert_eq!(arn.home_region, "us-east-2");
        assert_eq!(arn.account_id, "111122223333");
        assert_eq!(arn.name, "my-trail");
        assert!(parse_trail_arn("arn:aws:cloudtrail:us-east-2:1111:trail/x").is_err());
        assert!(parse_trail_arn("arn:aws:s3:::bucket").is_err());
    }
}
