//! Channel operations of the JSON 1.1 control plane: CreateChannel, GetChannel,
//! ListChannels, UpdateChannel, DeleteChannel.
//!
//! Permissions: creating, changing and deleting a channel needs an admin key; reading
//! needs a read or admin key. Channels are regional and per account, as in CloudTrail: a
//! caller sees the channels of its own account in the region it signed for (an admin of
//! the default account sees every account's), and any other channel answers
//! `ChannelNotFoundException` exactly as if it did not exist, so keys cannot probe other
//! accounts' channel ids.

use axum::response::Response;
use jiff::Timestamp;
use opentrail_protocol::channels::{
    ChannelRef, ChannelRequest, ChannelSummary, CreateChannelRequest, CreateChannelResponse,
    GetChannelResponse, IngestionStatus, ListChannelsRequest, ListChannelsResponse,
    UpdateChannelRequest, UpdateChannelResponse,
};
use opentrail_protocol::json11::{Operation, empty_ok_response, ok_response, parse_body};
use opentrail_protocol::time::ms_to_epoch_seconds;
use opentrail_protocol::{AwsError, WireResponse, token};

use crate::api_error::{ApiError, wire_response_into_http};
use crate::auth::Caller;
use crate::channels::{
    Channel, ChannelRegistry, ChannelRegistryError, ChannelUpdate, IngestionState, NewChannel,
};
use crate::state::AppState;

/// CreateChannel, GetChannel, ListChannels, UpdateChannel, DeleteChannel.
pub async fn handle(
    state: &AppState,
    caller: &Caller,
    operation: Operation,
    body: &[u8],
) -> Result<Response, ApiError> {
    let wire = handle_operation(
        &state.channels,
        &state.config.account_id,
        caller,
        operation,
        body,
    )
    .await?;
    Ok(wire_response_into_http(wire))
}

/// The operations without the HTTP plumbing, so tests need only a registry.
pub(crate) async fn handle_operation(
    registry: &ChannelRegistry,
    default_account_id: &str,
    caller: &Caller,
    operation: Operation,
    body: &[u8],
) -> Result<WireResponse, ApiError> {
    let scope = Scope {
        registry,
        default_account_id,
        caller,
    };
    match operation {
        Operation::CreateChannel => create_channel(&scope, body).await,
        Operation::GetChannel => get_channel(&scope, body),
        Operation::ListChannels => list_channels(&scope, body),
        Operation::UpdateChannel => update_channel(&scope, body).await,
        Operation::DeleteChannel => delete_channel(&scope, body).await,
        other => Err(ApiError(AwsError::unknown_operation(format!(
            "The operation {} is not a channel operation.",
            other.name()
        )))),
    }
}

/// Who is asking, and what they may see.
struct Scope<'a> {
    registry: &'a ChannelRegistry,
    default_account_id: &'a str,
    caller: &'a Caller,
}

impl Scope<'_> {
    fn can_see(&self, channel: &Channel) -> bool {
        channel.region == self.caller.region
            && self
                .caller
                .may_access_account(&channel.owner_account_id, self.default_account_id)
    }

    /// The named channel if this caller may see it; otherwise `ChannelNotFoundException`.
    fn visible_channel(&self, reference: &ChannelRef) -> Result<Channel, ApiError> {
        self.registry
            .find(reference, &self.caller.region)
            .filter(|channel| self.can_see(channel))
            .ok_or_else(|| channel_not_found(reference.channel_id()))
    }
}

async fn create_channel(scope: &Scope<'_>, body: &[u8]) -> Result<WireResponse, ApiError> {
    scope.caller.require_admin()?;
    let request: CreateChannelRequest = parse_body(body)?;
    let valid = request.validate()?;
    let new = NewChannel {
        owner_account_id: scope.caller.account_id.clone(),
        region: scope.caller.region.clone(),
        name: valid.name,
        source: valid.source,
        destinations: valid.destinations,
        tags: valid.tags,
    };
    let registry = scope.registry.clone();
    let now_ms = Timestamp::now().as_millisecond();
    let channel = run_blocking(move || registry.create(new, now_ms)).await?;
    tracing::info!(
        channel_arn = channel.arn.as_str(),
        name = channel.name.as_str(),
        "channel created"
    );
    Ok(ok_response(&CreateChannelResponse {
        channel_arn: channel.arn,
        name: channel.name,
        source: channel.source,
        destinations: channel.destinations,
        tags: (!channel.tags.is_empty()).then_some(channel.tags),
    }))
}

fn get_channel(scope: &Scope<'_>, body: &[u8]) -> Result<WireResponse, ApiError> {
    scope.caller.require_read()?;
    let request: ChannelRequest = parse_body(body)?;
    let channel = scope.visible_channel(&request.channel_ref()?)?;
    let ingestion = scope
        .registry
        .ingestion_state(&channel.id)
        .unwrap_or_default();
    Ok(ok_response(&GetChannelResponse {
        channel_arn: Some(channel.arn),
        name: Some(channel.name),
        source: Some(channel.source),
        // Custom channels have no source configuration (that is for AWS-service sources).
        source_config: None,
        destinations: Some(channel.destinations),
        ingestion_status: Some(ingestion_status(ingestion)),
    }))
}

fn ingestion_status(state: IngestionState) -> IngestionStatus {
    IngestionStatus {
        latest_ingestion_success_time: state.latest_success_time_ms.map(ms_to_epoch_seconds),
        latest_ingestion_success_event_id: state.latest_success_event_id,
        latest_ingestion_error_code: state.latest_error_code,
        latest_ingestion_attempt_time: state.latest_attempt_time_ms.map(ms_to_epoch_seconds),
        latest_ingestion_attempt_event_id: state.latest_attempt_event_id,
    }
}

fn list_channels(scope: &Scope<'_>, body: &[u8]) -> Result<WireResponse, ApiError> {
    scope.caller.require_read()?;
    let request: ListChannelsRequest = parse_body(body)?;
    let page_size = request.page_size()?;
    // The token is bound to what the caller can see (not to MaxResults, which a client may
    // change between pages), so it cannot be replayed into another account's listing.
    let visible_accounts = if scope
        .caller
        .is_admin_of_default_account(scope.default_account_id)
    {
        "*"
    } else {
        scope.caller.account_id.as_str()
    };
    let fingerprint = format!("ListChannels\n{}\n{visible_accounts}", scope.caller.region);
    let after = match request.next_token.as_deref() {
        None => None,
        Some(next_token) => {
            let cursor = token::decode(next_token, fingerprint.as_bytes())?;
            Some(String::from_utf8(cursor).map_err(|_| {
                ApiError(AwsError::invalid_next_token("The NextToken is not valid."))
            })?)
        }
    };
    let page = scope.registry.list_page(
        |channel| scope.can_see(channel),
        after.as_deref(),
        page_size,
    );
    Ok(ok_response(&ListChannelsResponse {
        channels: page
            .channels
            .into_iter()
            .map(|channel| ChannelSummary {
                channel_arn: channel.arn,
                name: channel.name,
            })
            .collect(),
        next_token: page
            .continue_after
            .map(|last_id| token::encode(last_id.as_bytes(), fingerprint.as_bytes())),
    }))
}

async fn update_channel(scope: &Scope<'_>, body: &[u8]) -> Result<WireResponse, ApiError> {
    scope.caller.require_admin()?;
    let request: UpdateChannelRequest = parse_body(body)?;
    let reference = request.validate()?;
    let channel = scope.visible_channel(&reference)?;
    let update = ChannelUpdate {
        name: request.name,
        destinations: request.destinations,
    };
    let registry = scope.registry.clone();
    let updated = run_blocking(move || registry.update(&channel.id, update)).await?;
    Ok(ok_response(&UpdateChannelResponse {
        channel_arn: updated.arn,
        name: updated.name,
        source: updated.source,
        destinations: updated.destinations,
    }))
}

async fn delete_channel(scope: &Scope<'_>, body: &[u8]) -> Result<WireResponse, ApiError> {
    scope.caller.require_admin()?;
    let request: ChannelRequest = parse_body(body)?;
    let channel = scope.visible_channel(&request.channel_ref()?)?;
    let registry = scope.registry.clone();
    let deleted = run_blocking(move || registry.delete(&channel.id)).await?;
    tracing::info!(channel_arn = deleted.arn.as_str(), "channel deleted");
    Ok(empty_ok_response())
}

/// Runs a registry write (it fsyncs) off the async workers.
async fn run_blocking(
    write: impl FnOnce() -> Result<Channel, ChannelRegistryError> + Send + 'static,
) -> Result<Channel, ApiError> {
    tokio::task::spawn_blocking(write)
        .await
        .map_err(ApiError::internal)?
        .map_err(registry_error)
}

fn registry_error(error: ChannelRegistryError) -> ApiError {
    match error {
        ChannelRegistryError::NameTaken { name, .. } => ApiError(AwsError::channel_already_exists(
            format!("A channel named '{name}' already exists in this account and region."),
        )),
        ChannelRegistryError::LimitExceeded { limit, .. } => {
            ApiError(AwsError::channel_max_limit_exceeded(format!(
                "An account can have at most {limit} channels in a region."
            )))
        }
        ChannelRegistryError::NotFound { id } => channel_not_found(&id),
        error @ (ChannelRegistryError::Read { .. }
        | ChannelRegistryError::Invalid { .. }
        | ChannelRegistryError::Write { .. }) => ApiError::internal(error),
    }
}

fn channel_not_found(channel_id: &str) -> ApiError {
    ApiError(AwsError::channel_not_found(format!(
        "Channel {channel_id} does not exist."
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::auth::AuthenticationMethod;
    use crate::keys::Role;

    const DEFAULT_ACCOUNT: &str = "111122223333";
    const OTHER_ACCOUNT: &str = "444455556666";
    const REGION: &str = "us-east-1";

    fn caller(role: Role, account_id: &str) -> Caller {
        Caller {
            access_key_id: "OTAKTESTTESTTESTTEST".to_owned(),
            role,
            account_id: account_id.to_owned(),
            region: REGION.to_owned(),
            method: AuthenticationMethod::SigV4,
        }
    }

    struct Fixture {
        registry: ChannelRegistry,
        _directory: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> anyhow::Result<Fixture> {
            let directory = tempfile::tempdir()?;
            Ok(Fixture {
                registry: ChannelRegistry::open(directory.path())?,
                _directory: directory,
            })
        }

        async fn call(
            &self,
            caller: &Caller,
            operation: Operation,
            body: Value,
        ) -> Result<Value, AwsError> {
            // AwsError, unlike ApiError, is a std error, so tests can `?` it into anyhow.
            let wire = handle_operation(
                &self.registry,
                DEFAULT_ACCOUNT,
                caller,
                operation,
                body.to_string().as_bytes(),
            )
            .await
            .map_err(|ApiError(error)| error)?;
            assert_eq!(wire.status, 200);
            Ok(serde_json::from_slice(&wire.body).unwrap_or(Value::Null))
        }

        async fn create(&self, caller: &Caller, name: &str) -> anyhow::Result<String> {
            let created = self
                .call(caller, Operation::CreateChannel, create_body(name))
                .await?;
            Ok(created["ChannelArn"]
                .as_str()
                .unwrap_or_default()
                .to_owned())
        }
    }

    fn create_body(name: &str) -> Value {
        json!({
            "Name": name,
            "Source": "Custom",
            "Destinations": [{"Type": "EVENT_DATA_STORE", "Location": "arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/x"}],
        })
    }

    fn code(result: Result<Value, AwsError>) -> Option<String> {
        result.err().map(|error| error.code)
    }

    #[tokio::test]
    async fn create_get_update_list_delete() -> anyhow::Result<()> {
        let fixture = Fixture::new()?;
        let admin = caller(Role::Admin, DEFAULT_ACCOUNT);
        let created = fixture
            .call(&admin, Operation::CreateChannel, create_body("app-1"))
            .await?;
        let arn = created["ChannelArn"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(arn.starts_with("arn:aws:cloudtrail:us-east-1:111122223333:channel/"));
        assert_eq!(created["Name"], "app-1");
        assert_eq!(created["Source"], "Custom");
        assert_eq!(created["Destinations"], create_body("x")["Destinations"]);

        let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
        for reference in [&arn, &id] {
            let got = fixture
                .call(&admin, Operation::GetChannel, json!({"Channel": reference}))
                .await?;
            assert_eq!(got["ChannelArn"], arn.as_str());
            assert_eq!(got["Name"], "app-1");
        }

        let updated = fixture
            .call(
                &admin,
                Operation::UpdateChannel,
                json!({"Channel": arn, "Name": "app-renamed"}),
            )
            .await?;
        assert_eq!(updated["Name"], "app-renamed");
        assert_eq!(updated["Destinations"], create_body("x")["Destinations"]);

        let listed = fixture
            .call(&admin, Operation::ListChannels, json!({}))
            .await?;
        assert_eq!(
            listed,
            json!({"Channels": [{"ChannelArn": arn, "Name": "app-renamed"}]})
        );

        let deleted = fixture
            .call(&admin, Operation::DeleteChannel, json!({"Channel": arn}))
            .await?;
        assert_eq!(deleted, json!({}));
        let after_delete = fixture
            .call(&admin, Operation::GetChannel, json!({"Channel": arn}))
            .await;
        let error = after_delete.err();
        assert_eq!(
            error
                .as_ref()
                .map(|error| (error.code.as_str(), error.status)),
            Some(("ChannelNotFoundException", 404))
        );
        Ok(())
    }

    #[tokio::test]
    async fn duplicate_names_and_bad_input_are_refused() -> anyhow::Result<()> {
        let fixture = Fixture::new()?;
        let admin = caller(Role::Admin, DEFAULT_ACCOUNT);
        fixture.create(&admin, "app").await?;
        assert_eq!(
            code(
                fixture
                    .call(&admin, Operation::CreateChannel, create_body("app"))
                    .await
            ),
            Some("ChannelAlreadyExistsException".to_owned())
        );
        // The same name in another account is fine.
        fixture
            .create(&caller(Role::Admin, OTHER_ACCOUNT), "app")
            .await?;
        assert_eq!(
            code(
                fixture
                    .call(&admin, Operation::CreateChannel, create_body("a b"))
                    .await
            ),
            Some("InvalidParameterException".to_owned())
        );
        assert_eq!(
            code(
                fixture
                    .call(
                        &admin,
                        Operation::GetChannel,
                        json!({"Channel": "not a channel"})
                    )
                    .await
            ),
            Some("ChannelARNInvalidException".to_owned())
        );
        assert_eq!(
            code(
                fixture
                    .call(
                        &admin,
                        Operation::ListChannels,
                        json!({"NextToken": "garbage"})
                    )
                    .await
            ),
            Some("InvalidNextTokenException".to_owned())
        );
        Ok(())
    }

    #[tokio::test]
    async fn roles_are_enforced() -> anyhow::Result<()> {
        let fixture = Fixture::new()?;
        let arn = fixture
            .create(&caller(Role::Admin, DEFAULT_ACCOUNT), "app")
            .await?;
        let reader = caller(Role::Read, DEFAULT_ACCOUNT);
        let ingester = caller(Role::Ingest, DEFAULT_ACCOUNT);
        for writer_only in [
            Operation::CreateChannel,
            Operation::UpdateChannel,
            Operation::DeleteChannel,
        ] {
            let body = json!({"Channel": arn, "Name": "app-x", "Source": "Custom",
                "Destinations": create_body("x")["Destinations"]});
            for who in [&reader, &ingester] {
                assert_eq!(
                    code(fixture.call(who, writer_only, body.clone()).await),
                    Some("AccessDeniedException".to_owned()),
                    "{writer_only:?}"
                );
            }
        }
        fixture
            .call(&reader, Operation::GetChannel, json!({"Channel": arn}))
            .await?;
        fixture
            .call(&reader, Operation::ListChannels, json!({}))
            .await?;
        assert_eq!(
            code(
                fixture
                    .call(&ingester, Operation::ListChannels, json!({}))
                    .await
            ),
            Some("AccessDeniedException".to_owned())
        );
        Ok(())
    }

    #[tokio::test]
    async fn other_accounts_channels_look_absent() -> anyhow::Result<()> {
        let fixture = Fixture::new()?;
        let other_admin = caller(Role::Admin, OTHER_ACCOUNT);
        let theirs = fixture.create(&other_admin, "theirs").await?;
        let default_admin = caller(Role::Admin, DEFAULT_ACCOUNT);
        let mine = fixture.create(&default_admin, "mine").await?;

        // A reader of the default account is still confined to its own account.
        let reader = caller(Role::Read, DEFAULT_ACCOUNT);
        let not_found = Some("ChannelNotFoundException".to_owned());
        assert_eq!(
            code(
                fixture
                    .call(&reader, Operation::GetChannel, json!({"Channel": theirs}))
                    .await
            ),
            not_found
        );
        let listed = fixture
            .call(&reader, Operation::ListChannels, json!({}))
            .await?;
        assert_eq!(
            listed["Channels"],
            json!([{"ChannelArn": mine, "Name": "mine"}])
        );

        // The other account's admin cannot touch the default account's channel.
        assert_eq!(
            code(
                fixture
                    .call(
                        &other_admin,
                        Operation::DeleteChannel,
                        json!({"Channel": mine})
                    )
                    .await
            ),
            not_found
        );
        // The admin of the default account sees both.
        let everything = fixture
            .call(&default_admin, Operation::ListChannels, json!({}))
            .await?;
        assert_eq!(everything["Channels"].as_array().map(Vec::len), Some(2));
        fixture
            .call(
                &default_admin,
                Operation::GetChannel,
                json!({"Channel": theirs}),
            )
            .await?;

        // Another region sees nothing.
        let elsewhere = Caller {
            region: "eu-west-1".to_owned(),
            ..default_admin.clone()
        };
        assert_eq!(
            code(
                fixture
                    .call(&elsewhere, Operation::GetChannel, json!({"Channel": mine}))
                    .await
            ),
            not_found
        );
        Ok(())
    }

    #[tokio::test]
    async fn listing_pages_with_bound_tokens() -> anyhow::Result<()> {
        let fixture = Fixture::new()?;
        let admin = caller(Role::Admin, DEFAULT_ACCOUNT);
        let mut created = Vec::new();
        for index in 0..5 {
            created.push(fixture.create(&admin, &format!("app-{index}")).await?);
        }
        created.sort();
        let mut listed = Vec::new();
        let mut request = json!({"MaxResults": 2});
        let mut last_token = None;
        loop {
            let page = fixture
                .call(&admin, Operation::ListChannels, request.clone())
                .await?;
            let channels = page["Channels"].as_array().cloned().unwrap_or_default();
            assert!(channels.len() <= 2);
            listed.extend(
                channels
                    .iter()
                    .filter_map(|channel| channel["ChannelArn"].as_str().map(str::to_owned)),
            );
            match page.get("NextToken").and_then(Value::as_str) {
                Some(token) => {
                    last_token = Some(token.to_owned());
                    request = json!({"MaxResults": 2, "NextToken": token});
                }
                None => break,
            }
        }
        // Ids are random UUIDs and the ARNs share a prefix, so ARN order is id order.
        assert_eq!(listed, created);
        // A token is bound to the caller's view: another account cannot replay it.
        let other_reader = caller(Role::Read, OTHER_ACCOUNT);
        assert_eq!(
            code(
                fixture
                    .call(
                        &other_reader,
                        Operation::ListChannels,
                        json!({"NextToken": last_token})
                    )
                    .await
            ),
            Some("InvalidNextTokenException".to_owned())
        );
        assert_eq!(
            code(
                fixture
                    .call(&admin, Operation::ListChannels, json!({"MaxResults": 0}))
                    .await
            ),
            Some("InvalidParameterException".to_owned())
        );
        Ok(())
    }
}
