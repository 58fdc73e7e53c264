//! Key management over HTTP, for `opentrail keys …`. Admin keys only.
//!
//! - `POST /v1/keys` `{"role":"read","accountId":"…"}` → 201 with the new key's secret
//!   (and, for ingest keys, a bearer token). The only time they are shown.
//! - `GET /v1/keys` → `{"keys":[…]}` without secrets.
//! - `DELETE /v1/keys/{accessKeyId}` → the revoked key.
//!
//! An admin manages keys of its own account; an admin of the default account manages
//! every account's. A key of another account answers 404, as if it did not exist, so its
//! existence does not leak across accounts.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use opentrail_protocol::AwsError;
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::auth::Caller;
use crate::auth::RequestBody;
use crate::config::is_valid_account_id;
use crate::keys::{AccessKey, CreatedAccessKey, KeyStoreError, Role};
use crate::state::AppState;

/// The wire shapes are kept apart from [`AccessKey`], so an internal change never silently
/// changes what clients receive.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateKeyRequest {
    role: String,
    /// Defaults to the caller's account.
    account_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKeyResponse {
    access_key_id: String,
    secret_access_key: String,
    role: &'static str,
    account_id: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyResponse {
    access_key_id: String,
    role: &'static str,
    account_id: String,
    /// `Active` or `Revoked`.
    status: &'static str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ListKeysResponse {
    keys: Vec<KeyResponse>,
}

pub async fn create_key(
    State(state): State<AppState>,
    call: CallContext,
    RequestBody(body): RequestBody,
) -> Result<(StatusCode, Json<CreatedKeyResponse>), ApiError> {
    let result = create_key_for(&state, &call.caller, &body).await;
    // The parameters name the role and account, never the secret.
    let parameters = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let created_id = result
        .as_ref()
        .ok()
        .map(|created| created.access_key_id.clone());
    call.record(
        "CreateAccessKey",
        Some(serde_json::json!({
            "request": parameters,
            "createdAccessKeyId": created_id,
        })),
        result.as_ref().err(),
    )
    .await;
    Ok((StatusCode::CREATED, Json(result?)))
}

async fn create_key_for(
    state: &AppState,
    caller: &Caller,
    body: &Bytes,
) -> Result<CreatedKeyResponse, ApiError> {
    caller.require_admin()?;
    let request: CreateKeyRequest = serde_json::from_slice(body).map_err(|error| {
        validation(format!(
            "The request body must be {{\"role\": \"admin|read|ingest\", \"accountId\": \"<12 digits>\"}}: {error}"
        ))
    })?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        validation(format!(
            "Unknown role '{}': expected admin, read or ingest.",
            request.role
        ))
    })?;
    let account_id = request
        .account_id
        .unwrap_or_else(|| caller.account_id.clone());
    if !is_valid_account_id(&account_id) {
        return Err(validation(format!(
            "Invalid accountId '{account_id}': an account id is exactly 12 digits."
        )));
    }
    if !caller.may_access_account(&account_id, &state.config.account_id) {
        return Err(ApiError(AwsError::access_denied(format!(
            "Access key {} may only create keys for account {}.",
            caller.access_key_id, caller.account_id
        ))));
    }

    let keys = state.keys.clone();
    let created = tokio::task::spawn_blocking(move || keys.create(role, &account_id))
        .await
        .map_err(ApiError::internal)?
        .map_err(key_store_failure)?;
    tracing::info!(
        created_access_key_id = created.key.access_key_id.as_str(),
        role = created.key.role.as_str(),
        account_id = created.key.account_id.as_str(),
        "access key created"
    );
    Ok(created_key_response(created))
}

pub async fn list_keys(
    State(state): State<AppState>,
    call: CallContext,
) -> Result<Json<ListKeysResponse>, ApiError> {
    let result = call.caller.require_admin().map(|()| {
        let keys = state
            .keys
            .list()
            .into_iter()
            .filter(|key| {
                call.caller
                    .may_access_account(&key.account_id, &state.config.account_id)
            })
            .map(key_response)
            .collect();
        ListKeysResponse { keys }
    });
    call.record("ListAccessKeys", None, result.as_ref().err())
        .await;
    Ok(Json(result?))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    call: CallContext,
    Path(access_key_id): Path<String>,
) -> Result<Json<KeyResponse>, ApiError> {
    let parameters = serde_json::json!({ "accessKeyId": access_key_id });
    let result = revoke_key_for(&state, &call.caller, access_key_id).await;
    call.record("DeleteAccessKey", Some(parameters), result.as_ref().err())
        .await;
    Ok(Json(result?))
}

async fn revoke_key_for(
    state: &AppState,
    caller: &Caller,
    access_key_id: String,
) -> Result<KeyResponse, ApiError> {
    caller.require_admin()?;
    let visible = state
        .keys
        .get(&access_key_id)
        .is_some_and(|key| caller.may_access_account(&key.account_id, &state.config.account_id));
    if !visible {
        return Err(key_not_found(&access_key_id));
    }
    let keys = state.keys.clone();
    let revoked = tokio::task::spawn_blocking(move || keys.revoke(&access_key_id))
        .await
        .map_err(ApiError::internal)?
        .map_err(key_store_failure)?;
    tracing::info!(
        revoked_access_key_id = revoked.access_key_id.as_str(),
        "access key revoked"
    );
    Ok(key_response(revoked))
}

fn created_key_response(created: CreatedAccessKey) -> CreatedKeyResponse {
    CreatedKeyResponse {
        access_key_id: created.key.access_key_id,
        secret_access_key: created.secret_access_key,
        role: created.key.role.as_str(),
        account_id: created.key.account_id,
        created_at: created.key.created_at.to_string(),
        token: created.bearer_token,
    }
}

fn key_response(key: AccessKey) -> KeyResponse {
    KeyResponse {
        status: if key.is_active() { "Active" } else { "Revoked" },
        access_key_id: key.access_key_id,
        role: key.role.as_str(),
        account_id: key.account_id,
        created_at: key.created_at.to_string(),
        revoked_at: key.revoked_at.map(|revoked_at| revoked_at.to_string()),
    }
}

fn validation(message: String) -> ApiError {
    ApiError(AwsError::validation(message))
}

fn key_not_found(access_key_id: &str) -> ApiError {
    ApiError(AwsError::with_status(
        "AccessKeyNotFoundException",
        format!("No access key {access_key_id}."),
        404,
    ))
}

fn key_store_failure(error: KeyStoreError) -> ApiError {
    match error {
        KeyStoreError::NotFound(access_key_id) => key_not_found(&access_key_id),
        KeyStoreError::InvalidAccountId(account_id) => validation(format!(
            "Invalid accountId '{account_id}': an account id is exactly 12 digits."
        )),
        other => ApiError::internal(other),
    }
}
