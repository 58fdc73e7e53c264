//! `opentrail backup` and `opentrail restore`: to and from a directory or
//! `s3://BUCKET/PREFIX` (through a local staging directory).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use opentrail_server::backup::{self, BackupManifest, parse_s3_url};
use opentrail_trails::Destinations;

use crate::s3_args::S3Args;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The data directory to copy [default: ./opentrail-data].
    #[arg(long, value_name = "DIR", default_value = "opentrail-data")]
    data_dir: PathBuf,
    /// Where the backup goes: a new or empty directory, or s3://BUCKET[/PREFIX] (an
    /// S3-compatible server given by --s3-endpoint).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    to: String,
    /// For s3:// targets: where the backup is assembled before the upload
    /// [default: a new directory in the system's temporary directory].
    #[arg(long, value_name = "DIR")]
    staging_dir: Option<PathBuf>,
    #[command(flatten)]
    s3: S3Args,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// What `opentrail backup` made: a directory or s3://BUCKET[/PREFIX].
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    from: String,
    /// The data directory to create (new or empty).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// For s3:// sources: where the backup is downloaded before the restore.
    #[arg(long, value_name = "DIR")]
    staging_dir: Option<PathBuf>,
    #[command(flatten)]
    s3: S3Args,
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let made = match parse_s3_url(&args.to) {
        None => {
            let data_dir = args.data_dir.clone();
            let to = PathBuf::from(&args.to);
            tokio::task::spawn_blocking(move || backup::backup(&data_dir, &to)).await??
        }
        Some((bucket_name, prefix)) => {
            let bucket = open_bucket(&args.s3, &bucket_name)?;
            let staging = staging_dir(args.staging_dir.as_deref(), "backup");
            let (data_dir, stage) = (args.data_dir.clone(), staging.clone());
            let made =
                tokio::task::spawn_blocking(move || backup::backup(&data_dir, &stage)).await??;
            let uploaded = backup::upload_backup(&staging, &bucket, &prefix, &args.to).await;
            let _ = std::fs::remove_dir_all(&staging);
            uploaded?;
            made
        }
    };
    println!(
        "Backed up {} to {}: events through seq {} (every event acknowledged before the backup began{}).",
        args.data_dir.display(),
        args.to,
        made.last_seq,
        made.archived_through_seq
            .map(|seq| format!("; the archive through seq {seq}"))
            .unwrap_or_default()
    );
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let restored: BackupManifest = match parse_s3_url(&args.from) {
        None => {
            let (from, data_dir) = (PathBuf::from(&args.from), args.data_dir.clone());
            tokio::task::spawn_blocking(move || backup::restore(&from, &data_dir)).await??
        }
        Some((bucket_name, prefix)) => {
            let bucket = open_bucket(&args.s3, &bucket_name)?;
            let staging = staging_dir(args.staging_dir.as_deref(), "restore");
            let downloaded = backup::download_backup(&bucket, &prefix, &staging, &args.from).await;
            let restored = match downloaded {
                Ok(_) => {
                    let (stage, data_dir) = (staging.clone(), args.data_dir.clone());
                    tokio::task::spawn_blocking(move || backup::restore(&stage, &data_dir)).await?
                }
                Err(error) => Err(error),
            };
            let _ = std::fs::remove_dir_all(&staging);
            restored?
        }
    };
    println!(
        "Restored the backup of {} (events through seq {}) into {}; start it with: opentrail serve --data-dir {}",
        restored.created_at,
        restored.last_seq,
        args.data_dir.display(),
        args.data_dir.display()
    );
    Ok(())
}

fn open_bucket(
    s3: &S3Args,
    bucket: &str,
) -> anyhow::Result<std::sync::Arc<dyn object_store::ObjectStore>> {
    let Some(destination) = s3.destination("us-east-1") else {
        bail!("an s3:// location needs --s3-endpoint (or OPENTRAIL_S3_ENDPOINT)");
    };
    let bucket = Destinations::from_config(&destination)
        .bucket(bucket)
        .with_context(|| format!("cannot open bucket {bucket}"))?;
    Ok(bucket.object_store())
}

fn staging_dir(given: Option<&Path>, purpose: &str) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "opentrail-{purpose}-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_millisecond()
        ))
    })
}
