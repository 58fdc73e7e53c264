//! `opentrail alerts`: what the server's detection rules matched, newest first, over
//! `GET /v1/alerts` (a read key sees its own account's alerts), and `opentrail alerts
//! acknowledge ALERT_ID` over `POST /v1/alerts/{alertId}/acknowledge` (an admin key).

use opentrail_protocol::native::{ALERTS_LIMIT_MAX, AlertItem, AlertResponse, AlertsResponse};

use crate::client::{ApiClient, ConnectionArgs, path_segment};
use crate::output::{OutputArgs, OutputFormat, print_json, render_table};

#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    action: Option<AlertsAction>,
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// The most alerts to show, newest first.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=ALERTS_LIMIT_MAX as i64))]
    limit: u32,
    /// Only the alerts nobody has acknowledged yet.
    #[arg(long)]
    unacknowledged: bool,
}

#[derive(Debug, clap::Subcommand)]
enum AlertsAction {
    /// Mark an alert as seen (by its ALERT ID, as listed): it then shows as acknowledged,
    /// with when and by which key, and `--unacknowledged` leaves it out. Needs an admin key.
    #[command(visible_alias = "ack")]
    Acknowledge {
        /// The alert's id (`alertId` in `--output json`).
        alert_id: String,
    },
}

pub async fn run(args: AlertsArgs) -> anyhow::Result<()> {
    let client = ApiClient::from_connection_args(&args.connection)?;
    if let Some(AlertsAction::Acknowledge { alert_id }) = &args.action {
        let path = format!("/v1/alerts/{}/acknowledge", path_segment(alert_id));
        let answer: serde_json::Value = client.post_json(&path, &serde_json::json!({})).await?;
        return match args.output.output {
            OutputFormat::Json => print_json(&answer),
            OutputFormat::Table => {
                let AlertResponse { alert } = serde_json::from_value(answer)?;
                println!(
                    "Acknowledged {} ({}) at {} by {}.",
                    alert.alert_id,
                    alert.rule_title,
                    alert.acknowledged_at.as_deref().unwrap_or("-"),
                    alert.acknowledged_by.as_deref().unwrap_or("-"),
                );
                Ok(())
            }
        };
    }
    let answer: serde_json::Value = client
        .get_json(&format!(
            "/v1/alerts?limit={}&unacknowledged={}",
            args.limit, args.unacknowledged
        ))
        .await?;
    match args.output.output {
        OutputFormat::Json => print_json(&answer),
        OutputFormat::Table => {
            let alerts: AlertsResponse = serde_json::from_value(answer)?;
            if alerts.alerts.is_empty() {
                println!("No alerts.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = alerts.alerts.into_iter().map(alert_row).collect();
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
                        "EVENT ID",
                        "ACKNOWLEDGED BY",
                        "ALERT ID",
                    ],
                    &rows
                )
            );
            Ok(())
        }
    }
}

fn alert_row(alert: AlertItem) -> Vec<String> {
    let acknowledged_by = match (alert.acknowledged, alert.acknowledged_by) {
        (true, Some(key)) => key,
        (true, None) => "yes".to_owned(),
        (false, _) => String::new(),
    };
    vec![
        alert.detected_at,
        alert.level,
        alert.rule_title,
        alert.event_time,
        alert.event_name,
        alert.recipient_account_id,
        alert.event_id,
        acknowledged_by,
        alert.alert_id,
    ]
}
