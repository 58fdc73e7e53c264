//! `opentrail alerts`: what the server's detection rules matched, newest first, over
//! `GET /v1/alerts` (a read key sees its own account's alerts).

use opentrail_protocol::native::{ALERTS_LIMIT_MAX, AlertsResponse};

use crate::client::{ApiClient, ConnectionArgs};
use crate::output::{OutputArgs, OutputFormat, print_json, render_table};

#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// The most alerts to show, newest first.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=ALERTS_LIMIT_MAX as i64))]
    limit: u32,
}

pub async fn run(args: AlertsArgs) -> anyhow::Result<()> {
    let client = ApiClient::from_connection_args(&args.connection)?;
    let answer: serde_json::Value = client
        .get_json(&format!("/v1/alerts?limit={}", args.limit))
        .await?;
    match args.output.output {
        OutputFormat::Json => print_json(&answer),
        OutputFormat::Table => {
            let alerts: AlertsResponse = serde_json::from_value(answer)?;
            if alerts.alerts.is_empty() {
                println!("No alerts.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = alerts
                .alerts
                .into_iter()
                .map(|alert| {
                    vec![
                        alert.detected_at,
                        alert.level,
                        alert.rule_title,
                        alert.event_time,
                        alert.event_name,
                        alert.recipient_account_id,
                        alert.event_id,
                    ]
                })
                .collect();
            print!(
                "{}",
                render_table(
                    &[
                        "DETECTED",
                        "LEVEL",
                        "RULE",
                        "EVENT TIME",
                        "EVENT",
                        "ACCOUNT",
                        "EVENT ID"
                    ],
                    &rows
                )
            );
            Ok(())
        }
    }
}
