//! Detection rules over HTTP, for `opentrail rules …`:
//!
//! - `GET /v1/rules` (read role) → [`RulesResponse`]: every rule, running or disabled,
//!   from the rules directory and the API, and every refused rule with its reason.
//! - `POST /v1/rules` with one Sigma rule as YAML → 201 [`RuleResponse`]; a rule that
//!   cannot run answers 400 `InvalidRuleException` with the refusal (line and reason).
//! - `POST /v1/rules/{id}/disable`, `POST /v1/rules/{id}/enable` → [`RuleResponse`]
//!   (directory rules too; persisted).
//! - `DELETE /v1/rules/{id}` → [`RuleResponse`] of the removed rule (API rules only;
//!   a directory rule answers 400 `OperationNotPermittedException`).
//!
//! An unknown id answers 404 `RuleNotFoundException`. Rules judge every account's events,
//! so only an admin of the default account changes them; any read key lists them (the
//! alerts it sees name them anyway). Every call is recorded (self-audit).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use opentrail_detect::{CatalogRefusal, CatalogRule, DetectError, RuleRefusal};
use opentrail_protocol::AwsError;
use opentrail_protocol::native::{RefusedRuleItem, RuleItem, RuleResponse, RulesResponse};

use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::auth::{Caller, RequestBody};
use crate::state::AppState;

const INVALID_RULE: &str = "InvalidRuleException";
const RULE_NOT_FOUND: &str = "RuleNotFoundException";

pub async fn list_rules(
    State(state): State<AppState>,
    call: CallContext,
) -> Result<Json<RulesResponse>, ApiError> {
    let result = call.caller.require_read().map(|()| {
        let catalog = state.detections.catalog();
        RulesResponse {
            rules: catalog.rules.iter().map(rule_item).collect(),
            refused: catalog.refused.iter().map(refused_item).collect(),
        }
    });
    call.record("ListRules", None, result.as_ref().err()).await;
    result.map(Json)
}

pub async fn add_rule(
    State(state): State<AppState>,
    call: CallContext,
    RequestBody(body): RequestBody,
) -> Result<(StatusCode, Json<RuleResponse>), ApiError> {
    let result = add(&state, &call.caller, body).await;
    let parameters = match &result {
        Ok(rule) => serde_json::json!({ "ruleId": rule.id, "title": rule.title }),
        Err(_) => serde_json::json!({}),
    };
    call.record("CreateRule", Some(parameters), result.as_ref().err())
        .await;
    Ok((StatusCode::CREATED, Json(RuleResponse { rule: result? })))
}

async fn add(state: &AppState, caller: &Caller, body: Bytes) -> Result<RuleItem, ApiError> {
    require_rule_admin(state, caller)?;
    let text = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError(AwsError::new(
            INVALID_RULE,
            "The request body must be a Sigma rule as UTF-8 YAML.",
        ))
    })?;
    let detections = state.detections.clone();
    let added = tokio::task::spawn_blocking(move || detections.add_rule(&text))
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| rule_error(error, ""))?;
    tracing::info!(
        rule_id = added.info.id.as_str(),
        title = added.info.title.as_str(),
        "detection rule added"
    );
    Ok(rule_item(&added))
}

pub async fn disable_rule(
    State(state): State<AppState>,
    call: CallContext,
    Path(id): Path<String>,
) -> Result<Json<RuleResponse>, ApiError> {
    change(state, call, id, "DisableRule", Change::Enable(false)).await
}

pub async fn enable_rule(
    State(state): State<AppState>,
    call: CallContext,
    Path(id): Path<String>,
) -> Result<Json<RuleResponse>, ApiError> {
    change(state, call, id, "EnableRule", Change::Enable(true)).await
}

pub async fn delete_rule(
    State(state): State<AppState>,
    call: CallContext,
    Path(id): Path<String>,
) -> Result<Json<RuleResponse>, ApiError> {
    change(state, call, id, "DeleteRule", Change::Remove).await
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Enable(bool),
    Remove,
}

async fn change(
    state: AppState,
    call: CallContext,
    id: String,
    event_name: &str,
    change: Change,
) -> Result<Json<RuleResponse>, ApiError> {
    let result = apply(&state, &call.caller, id.clone(), change).await;
    call.record(
        event_name,
        Some(serde_json::json!({ "ruleId": id })),
        result.as_ref().err(),
    )
    .await;
    result.map(|rule| Json(RuleResponse { rule }))
}

async fn apply(
    state: &AppState,
    caller: &Caller,
    id: String,
    change: Change,
) -> Result<RuleItem, ApiError> {
    require_rule_admin(state, caller)?;
    let detections = state.detections.clone();
    let rule_id = id.clone();
    let changed = tokio::task::spawn_blocking(move || match change {
        Change::Enable(enabled) => detections.set_rule_enabled(&rule_id, enabled),
        Change::Remove => detections.remove_rule(&rule_id),
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|error| rule_error(error, &id))?;
    tracing::info!(rule_id = id.as_str(), change = ?change, "detection rule changed");
    Ok(rule_item(&changed))
}

/// Rules apply to every account's events, so changing them is for the operator.
fn require_rule_admin(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    caller.require_admin()?;
    if caller.is_admin_of_default_account(&state.config.account_id) {
        Ok(())
    } else {
        Err(ApiError(AwsError::access_denied(format!(
            "Access key {} may not change detection rules: rules judge every account's \
             events, so only an admin key of account {} changes them.",
            caller.access_key_id, state.config.account_id
        ))))
    }
}

fn rule_error(error: DetectError, id: &str) -> ApiError {
    match error {
        DetectError::Refused(refusals) => ApiError(AwsError::new(
            INVALID_RULE,
            refusals
                .iter()
                .map(refusal_text)
                .collect::<Vec<_>>()
                .join("; "),
        )),
        DetectError::UnknownRule { id } => ApiError(AwsError::with_status(
            RULE_NOT_FOUND,
            format!("No detection rule has the id {id}."),
            404,
        )),
        error @ DetectError::DirectoryRule { .. } => {
            ApiError(AwsError::operation_not_permitted(format!("{error}.")))
        }
        other => ApiError::internal(format_args!("rule {id}: {other}")),
    }
}

/// A refusal as the client reads it: `line N: rule "T": reason` (the file is the
/// request body).
fn refusal_text(refusal: &RuleRefusal) -> String {
    let mut text = String::new();
    if let Some(line) = refusal.line {
        text.push_str(&format!("line {line}: "));
    }
    if let Some(title) = &refusal.rule_title {
        text.push_str(&format!("rule {title:?}: "));
    }
    text.push_str(&refusal.reason);
    text
}

fn rule_item(rule: &CatalogRule) -> RuleItem {
    RuleItem {
        id: rule.info.id.clone(),
        title: rule.info.title.clone(),
        level: rule.info.level.map(|level| level.as_str().to_owned()),
        status: rule.info.status.map(|status| status.as_str().to_owned()),
        origin: rule.origin.as_str().to_owned(),
        file: rule.info.source.display().to_string(),
        enabled: rule.enabled,
    }
}

fn refused_item(refused: &CatalogRefusal) -> RefusedRuleItem {
    RefusedRuleItem {
        origin: refused.origin.as_str().to_owned(),
        file: refused.refusal.source.display().to_string(),
        line: refused.refusal.line,
        rule_title: refused.refusal.rule_title.clone(),
        reason: refused.refusal.reason.clone(),
    }
}
