//! `POST /v1/k8s-audit`: the Kubernetes API server's audit webhook backend. The body is the
//! `audit.k8s.io/v1` `EventList` it sends; each completed request becomes one CloudTrail
//! record (the mapping is in `opentrail_recorder::k8s_audit`). The event id is the
//! `auditID`, so a batch the API server sends again adds nothing.
//!
//! `?cluster=NAME` on the webhook URL names the cluster (`eventSource` `k8s.NAME`,
//! default `kubernetes`). The webhook's kubeconfig authenticates with an ingest key's
//! bearer token (`token: otb_…`).

use axum::extract::{RawQuery, State};
use axum::response::Response;
use opentrail_event::{EventRecord, IngestContext};
use opentrail_protocol::AwsError;
use opentrail_protocol::native::{IngestFailure, IngestResponse};
use opentrail_recorder::k8s_audit::records_from_event_list;

use crate::api_error::ApiError;
use crate::audit::CallContext;
use crate::auth::RequestBody;
use crate::routes::events::{ingest_answer, store_accepted};
use crate::state::AppState;

const DEFAULT_CLUSTER: &str = "kubernetes";

pub async fn receive(
    State(state): State<AppState>,
    call: CallContext,
    RawQuery(query): RawQuery,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    let caller = &call.caller;
    caller.require_ingest()?;
    let _permit = state.ingest.admit()?;
    let cluster = cluster_name(query.as_deref().unwrap_or_default())?;
    let account_id = caller.account_id.clone();
    let region = caller.region.clone();
    let mapped = tokio::task::spawn_blocking(move || {
        let mapped = records_from_event_list(&body, &cluster, &account_id, &region)?;
        let context = IngestContext { account_id, region };
        let mut records = Vec::with_capacity(mapped.records.len());
        let mut failed: Vec<IngestFailure> = mapped
            .failed
            .into_iter()
            .map(|failure| IngestFailure {
                index: failure.index,
                error_code: "InvalidData".into(),
                message: failure.message,
            })
            .collect();
        for (index, text) in mapped.records {
            match EventRecord::from_json_object(&text, &context) {
                Ok(record) => records.push((index, record)),
                Err(error) => failed.push(IngestFailure {
                    index,
                    error_code: "InvalidData".into(),
                    message: error.to_string(),
                }),
            }
        }
        Ok::<_, opentrail_recorder::k8s_audit::AuditBodyError>((
            records,
            failed,
            mapped.skipped_stages,
        ))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|error| ApiError(AwsError::new("SerializationException", error.to_string())))?;
    let (records, failed, skipped_stages) = mapped;
    let response = IngestResponse {
        failed,
        skipped_stages: Some(skipped_stages),
        ..IngestResponse::default()
    };
    ingest_answer(&store_accepted(&state, caller, records, response).await?)
}

/// `cluster=NAME` from the query: 1–63 lower-case letters, digits, `-` and `.`.
fn cluster_name(query: &str) -> Result<String, ApiError> {
    let named = opentrail_protocol::aws_calls::form_pairs(query)
        .into_iter()
        .find(|(name, _)| name == "cluster")
        .map(|(_, value)| value);
    let Some(name) = named else {
        return Ok(DEFAULT_CLUSTER.to_owned());
    };
    let valid = (1..=63).contains(&name.len())
        && name.chars().all(|character| {
            character.is_ascii_lowercase() || character.is_ascii_digit() || "-.".contains(character)
        });
    if valid {
        Ok(name)
    } else {
        Err(ApiError(AwsError::new(
            opentrail_protocol::error::codes::VALIDATION,
            format!("cluster {name:?} must be 1-63 lower-case letters, digits, '-' or '.'"),
        )))
    }
}
