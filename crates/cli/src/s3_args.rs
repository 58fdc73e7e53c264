//! The S3-compatible endpoint flags that commands reading or writing buckets share.

use opentrail_store::S3Connection;
use opentrail_trails::DestinationConfig;

#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    /// The S3-compatible endpoint, for example http://127.0.0.1:9000 (path-style; plain
    /// http allowed). Without it: trail buckets are the directories under
    /// <data-dir>/buckets (validate, backup), s3:// sources are AWS S3 (import).
    #[arg(long, value_name = "URL", env = "OPENTRAIL_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, value_name = "REGION", env = "OPENTRAIL_S3_REGION")]
    pub s3_region: Option<String>,
    #[arg(long, value_name = "ID", env = "OPENTRAIL_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    #[arg(
        long,
        value_name = "SECRET",
        env = "OPENTRAIL_S3_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub s3_secret_access_key: Option<String>,
}

impl S3Args {
    /// The S3 destination these flags name, if an endpoint is given.
    pub fn destination(&self, default_region: &str) -> Option<DestinationConfig> {
        self.s3_endpoint
            .as_ref()
            .map(|_| DestinationConfig::S3(self.connection(default_region)))
    }

    /// The connection these flags describe; the region defaults to `default_region`.
    pub fn connection(&self, default_region: &str) -> S3Connection {
        S3Connection {
            endpoint: self.s3_endpoint.clone(),
            region: self
                .s3_region
                .clone()
                .unwrap_or_else(|| default_region.to_owned()),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
        }
    }
}
