//! `opentrail keys create | list | revoke`, over the server's `/v1/keys` API.

use serde::{Deserialize, Serialize};

use crate::client::{ApiClient, ConnectionArgs};
use crate::output::{OutputArgs, OutputFormat, print_json, render_table};

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create a key. Its secret (and, for ingest keys, its bearer token) is shown once.
    Create {
        /// What the key may do: admin (everything), read (look up, query), ingest (write events).
        #[arg(long, value_enum)]
        role: RoleArgument,
        /// Account the key belongs to (12 digits) [default: the calling key's account].
        #[arg(long, value_name = "ID")]
        account: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key: its signatures and token stop working at once.
    Revoke {
        /// The access key id to revoke. (Named apart from the global --access-key-id: clap
        /// identifies arguments by field name.)
        #[arg(value_name = "KEY_ID")]
        key_id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoleArgument {
    Admin,
    Read,
    Ingest,
}

impl RoleArgument {
    fn as_wire(self) -> &'static str {
        match self {
            RoleArgument::Admin => "admin",
            RoleArgument::Read => "read",
            RoleArgument::Ingest => "ingest",
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateKeyRequest<'a> {
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

/// The fields the table view shows; JSON output passes the server's answer through whole.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyView {
    access_key_id: String,
    role: String,
    account_id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    secret_access_key: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Deserialize)]
struct KeyListView {
    keys: Vec<KeyView>,
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let client = ApiClient::from_connection_args(&args.connection)?;
    let format = args.output.output;
    match args.command {
        KeysCommand::Create { role, account } => {
            let request = CreateKeyRequest {
                role: role.as_wire(),
                account_id: account.as_deref(),
            };
            let answer: serde_json::Value = client.post_json("/v1/keys", &request).await?;
            match format {
                OutputFormat::Json => print_json(&answer)?,
                OutputFormat::Table => print_created_key(serde_json::from_value(answer)?),
            }
        }
        KeysCommand::List => {
            let answer: serde_json::Value = client.get_json("/v1/keys").await?;
            match format {
                OutputFormat::Json => print_json(&answer)?,
                OutputFormat::Table => print_key_list(serde_json::from_value(answer)?),
            }
        }
        KeysCommand::Revoke { key_id } => {
            // The id goes into the URL path; anything but letters and digits is not a key id.
            if key_id.is_empty() || !key_id.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
                anyhow::bail!("invalid access key id {key_id:?}: expected letters and digits only");
            }
            let answer: serde_json::Value =
                client.delete_json(&format!("/v1/keys/{key_id}")).await?;
            match format {
                OutputFormat::Json => print_json(&answer)?,
                OutputFormat::Table => {
                    let key: KeyView = serde_json::from_value(answer)?;
                    println!("Revoked {}", key.access_key_id);
                }
            }
        }
    }
    Ok(())
}

fn print_created_key(key: KeyView) {
    let mut rows = vec![
        ("Access key id", key.access_key_id),
        (
            "Secret access key",
            key.secret_access_key.unwrap_or_default(),
        ),
        ("Role", key.role),
        ("Account", key.account_id),
    ];
    if let Some(token) = key.token {
        rows.push(("Bearer token", token));
    }
    for (label, value) in rows {
        println!("{:<18} {value}", format!("{label}:"));
    }
    eprintln!("Store the secret now: it cannot be shown again.");
}

fn print_key_list(list: KeyListView) {
    let rows: Vec<Vec<String>> = list
        .keys
        .into_iter()
        .map(|key| {
            vec![
                key.access_key_id,
                key.role,
                key.account_id,
                key.status.unwrap_or_default(),
                key.created_at
                    .map(|created_at| to_whole_seconds(&created_at))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        render_table(
            &["ACCESS KEY ID", "ROLE", "ACCOUNT", "STATUS", "CREATED"],
            &rows
        )
    );
}

/// `2026-11-25T09:16:43.447833765Z` → `2026-11-25T09:16:43Z`: sub-seconds only widen the
/// table. Text that is not such a timestamp is shown unchanged.
fn to_whole_seconds(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(timestamp) => timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct KeysOnly {
        #[command(flatten)]
        keys: KeysArgs,
    }

    #[test]
    fn revoke_key_id_does_not_fill_the_global_access_key_flag() {
        use clap::Parser as _;
        let parsed =
            KeysOnly::try_parse_from(["keys", "revoke", "OTAKREVOKEME00000000"]).expect("parses");
        assert_eq!(parsed.keys.connection.access_key_id, None);
        match parsed.keys.command {
            KeysCommand::Revoke { key_id } => assert_eq!(key_id, "OTAKREVOKEME00000000"),
            other => panic!("expected revoke, got {other:?}"),
        }
    }

    #[test]
    fn table_timestamps_drop_sub_seconds() {
        assert_eq!(
            to_whole_seconds("2026-11-25T09:16:43.447833765Z"),
            "2026-11-25T09:16:43Z"
        );
        assert_eq!(to_whole_seconds("not a time"), "not a time");
    }
}
