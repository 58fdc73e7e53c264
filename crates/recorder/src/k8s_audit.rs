//! Kubernetes audit events → CloudTrail records, for the API server's webhook backend
//! (`POST /v1/k8s-audit` takes the `audit.k8s.io/v1` `EventList` it sends).
//!
//! | record member | from the audit event |
//! |---|---|
//! | `eventID`, `requestID` | `auditID`: a resent event is a duplicate, not a second record |
//! | `eventTime` | `requestReceivedTimestamp` |
//! | `eventSource` | `k8s.<cluster>` (`?cluster=` on the webhook URL, default `kubernetes`) |
//! | `eventName` | verb + kind (+ subresource): `create pods` → `CreatePod`, `list pods` → `ListPods`, `create pods/exec` → `CreatePodExec`, `delete secrets` → `DeleteSecret`; a non-resource URL: verb + its words (`get /healthz` → `GetHealthz`) |
//! | `readOnly` | verb is `get`, `list` or `watch` |
//! | `userIdentity` | `type` `KubernetesUser`, `KubernetesServiceAccount` (`system:serviceaccount:…`) or `KubernetesNode` (`system:node:…`); `principalId` the uid (else the user name); `userName`; `groups`; `impersonatedUser` |
//! | `sourceIPAddress` | the first of `sourceIPs` (all of them in `additionalEventData`) |
//! | `userAgent` | `userAgent` |
//! | `resources` | `objectRef` as `{"type": "K8s::<Kind>", "ARN": "arn:k8s:<cluster>:<namespace>::<resource>/<name>"}`, so `ResourceName=<name>` finds it |
//! | `requestParameters` | `verb`, `requestURI`, `objectRef`, and `requestObject` with secret members hidden; never for Secrets, TokenRequests or TokenReviews, whose bodies are credentials |
//! | `errorCode`, `errorMessage` | `responseStatus.reason` (else the HTTP status name) and `.message`, when `responseStatus.code` ≥ 400; a `Panic` stage is `errorCode` `Panic` |
//! | `additionalEventData` | `stage`, `level`, `responseCode`, `sourceIPs`, `annotations` (the authorizer's decision and reason), `stageTimestamp` |
//!
//! Only the `ResponseComplete` and `Panic` stages are recorded: the earlier stages of the
//! same request share its `auditID` and say less.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::redact::Redaction;
use crate::routes::{default_event_name, pascal};

/// Why a body is not an audit event list.
#[derive(Debug, thiserror::Error)]
pub enum AuditBodyError {
    #[error("the body is not an audit.k8s.io/v1 EventList: {0}")]
    NotAnEventList(String),
}

/// One audit event that cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEventError {
    pub index: usize,
    pub message: String,
}

/// The records of one `EventList`.
#[derive(Debug, Default)]
pub struct AuditRecords {
    /// (index in `items`, record JSON text).
    pub records: Vec<(usize, String)>,
    /// Events of earlier stages, left out.
    pub skipped_stages: usize,
    pub failed: Vec<AuditEventError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventList {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    items: Vec<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AuditEvent {
    level: Option<String>,
    #[serde(rename = "auditID")]
    audit_id: String,
    stage: String,
    #[serde(rename = "requestURI")]
    request_uri: String,
    verb: String,
    user: UserInfo,
    impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs")]
    source_ips: Vec<String>,
    user_agent: Option<String>,
    object_ref: Option<ObjectReference>,
    response_status: Option<ResponseStatus>,
    request_object: Option<Value>,
    request_received_timestamp: Option<String>,
    stage_timestamp: Option<String>,
    annotations: Option<Map<String, Value>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserInfo {
    username: String,
    uid: Option<String>,
    groups: Vec<String>,
}

#[derive(Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "camelCase", default)]
struct ObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    subresource: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResponseStatus {
    code: Option<u16>,
    reason: Option<String>,
    message: Option<String>,
}

/// Maps an `EventList` (or a single `Event`) to records of `account_id`.
pub fn records_from_event_list(
    body: &[u8],
    cluster: &str,
    account_id: &str,
    region: &str,
) -> Result<AuditRecords, AuditBodyError> {
    let list: EventList = serde_json::from_slice(body)
        .map_err(|error| AuditBodyError::NotAnEventList(error.to_string()))?;
    if let Some(version) = &list.api_version
        && !version.starts_with("audit.k8s.io/")
    {
        return Err(AuditBodyError::NotAnEventList(format!(
            "apiVersion is {version:?}, not audit.k8s.io/v1"
        )));
    }
    let items = match list.kind.as_deref() {
        Some("EventList") | None => list.items,
        Some("Event") => vec![
            serde_json::from_slice(body)
                .map_err(|error| AuditBodyError::NotAnEventList(error.to_string()))?,
        ],
        Some(other) => {
            return Err(AuditBodyError::NotAnEventList(format!(
                "kind is {other:?}, not EventList"
            )));
        }
    };
    let mut result = AuditRecords::default();
    for (index, item) in items.into_iter().enumerate() {
        let event: AuditEvent = match serde_json::from_value(item) {
            Ok(event) => event,
            Err(error) => {
                result.failed.push(AuditEventError {
                    index,
                    message: format!("not an audit event: {error}"),
                });
                continue;
            }
        };
        if !matches!(event.stage.as_str(), "ResponseComplete" | "Panic") {
            result.skipped_stages += 1;
            continue;
        }
        match record_of(&event, cluster, account_id, region) {
            Ok(record) => result.records.push((index, record)),
            Err(message) => result.failed.push(AuditEventError { index, message }),
        }
    }
    Ok(result)
}

fn record_of(
    event: &AuditEvent,
    cluster: &str,
    account_id: &str,
    region: &str,
) -> Result<String, String> {
    if event.audit_id.is_empty() {
        return Err("auditID is missing".to_owned());
    }
    if event.verb.is_empty() {
        return Err("verb is missing".to_owned());
    }
    let received = event
        .request_received_timestamp
        .as_deref()
        .or(event.stage_timestamp.as_deref())
        .ok_or("requestReceivedTimestamp is missing")?;
    let event_time: jiff::Timestamp = received
        .parse()
        .map_err(|error| format!("requestReceivedTimestamp {received:?}: {error}"))?;

    let object = event
        .object_ref
        .as_ref()
        .filter(|object| !object.resource.is_empty());
    let event_name = match object {
        Some(object) => resource_event_name(&event.verb, object),
        None => {
            let path = event.request_uri.split('?').next().unwrap_or_default();
            default_event_name(&event.verb, path)
        }
    };
    let read_only = matches!(event.verb.as_str(), "get" | "list" | "watch");

    let mut parameters = Map::new();
    parameters.insert("verb".into(), json!(event.verb));
    parameters.insert("requestURI".into(), json!(event.request_uri));
    if let Some(object) = object {
        parameters.insert("objectRef".into(), json!(object));
        let holds_credentials = matches!(
            object.resource.as_str(),
            "secrets" | "tokenrequests" | "tokenreviews"
        ) || object.subresource == "token";
        if let (Some(request_object), false) = (&event.request_object, holds_credentials) {
            let mut request_object = request_object.clone();
            Redaction::default().apply(&mut request_object);
            parameters.insert("requestObject".into(), request_object);
        }
    }

    let status_code = event
        .response_status
        .as_ref()
        .and_then(|status| status.code);
    let (error_code, error_message) = if event.stage == "Panic" {
        (
            Some("Panic".to_owned()),
            Some("the API server panicked".to_owned()),
        )
    } else {
        match (&event.response_status, status_code) {
            (Some(status), Some(code)) if code >= 400 => (
                Some(
                    status
                        .reason
                        .clone()
                        .filter(|reason| !reason.is_empty())
                        .unwrap_or_else(|| opentrail_protocol::aws_calls::status_code_name(code)),
                ),
                status.message.clone(),
            ),
            _ => (None, None),
        }
    };

    let mut record = Map::new();
    record.insert(
        "eventVersion".into(),
        json!(opentrail_event::DEFAULT_EVENT_VERSION),
    );
    record.insert("userIdentity".into(), user_identity(event));
    record.insert(
        "eventTime".into(),
        json!(event_time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
    );
    record.insert("eventSource".into(), json!(format!("k8s.{cluster}")));
    record.insert("eventName".into(), json!(event_name));
    record.insert("awsRegion".into(), json!(region));
    record.insert(
        "sourceIPAddress".into(),
        json!(event.source_ips.first().map_or("unknown", String::as_str)),
    );
    record.insert("userAgent".into(), json!(event.user_agent));
    if let Some(code) = &error_code {
        record.insert("errorCode".into(), json!(code));
        record.insert(
            "errorMessage".into(),
            json!(error_message.clone().unwrap_or_else(|| code.clone())),
        );
    }
    record.insert("requestParameters".into(), Value::Object(parameters));
    record.insert("responseElements".into(), Value::Null);
    record.insert(
        "additionalEventData".into(),
        json!({
            "stage": event.stage,
            "level": event.level,
            "responseCode": status_code,
            "sourceIPs": event.source_ips,
            "annotations": event.annotations,
            "stageTimestamp": event.stage_timestamp,
        }),
    );
    record.insert("requestID".into(), json!(event.audit_id));
    record.insert("eventID".into(), json!(event.audit_id));
    record.insert("readOnly".into(), json!(read_only));
    if let Some(object) = object.filter(|object| !object.name.is_empty()) {
        record.insert(
            "resources".into(),
            json!([{
                "accountId": account_id,
                "type": format!("K8s::{}", kind_of(&object.resource)),
                "ARN": format!(
                    "arn:k8s:{cluster}:{}::{}/{}",
                    object.namespace, object.resource, object.name
                ),
            }]),
        );
    }
    record.insert("eventType".into(), json!("AwsApiCall"));
    record.insert("managementEvent".into(), json!(true));
    record.insert("recipientAccountId".into(), json!(account_id));
    record.insert("eventCategory".into(), json!("Management"));
    Ok(Value::Object(record).to_string())
}

fn user_identity(event: &AuditEvent) -> Value {
    let user = &event.user;
    let kind = if user.username.starts_with("system:serviceaccount:") {
        "KubernetesServiceAccount"
    } else if user.username.starts_with("system:node:") {
        "KubernetesNode"
    } else {
        "KubernetesUser"
    };
    let mut identity = json!({
        "type": kind,
        "principalId": user.uid.clone().filter(|uid| !uid.is_empty()).unwrap_or_else(|| user.username.clone()),
        "userName": user.username,
        "groups": user.groups,
    });
    if let Some(impersonated) = &event.impersonated_user {
        identity["impersonatedUser"] = json!({
            "userName": impersonated.username,
            "groups": impersonated.groups,
        });
    }
    identity
}

/// `create pods` → `CreatePod`; list-like verbs keep the plural (`ListPods`).
fn resource_event_name(verb: &str, object: &ObjectReference) -> String {
    let verb_name = match verb {
        "deletecollection" => "DeleteCollection".to_owned(),
        other => pascal(other),
    };
    let kind = kind_of(&object.resource);
    let plural = matches!(verb, "list" | "watch" | "deletecollection");
    let mut name = verb_name;
    if plural {
        name.push_str(&plural_of(&kind));
    } else {
        name.push_str(&kind);
    }
    for word in object
        .subresource
        .split(['/', '-'])
        .filter(|word| !word.is_empty())
    {
        name.push_str(&pascal(word));
    }
    name
}

/// The kind of a resource: the well-known ones by table, others by taking the plural off.
fn kind_of(resource: &str) -> String {
    const KINDS: [(&str, &str); 36] = [
        ("pods", "Pod"),
        ("secrets", "Secret"),
        ("configmaps", "ConfigMap"),
        ("services", "Service"),
        ("serviceaccounts", "ServiceAccount"),
        ("namespaces", "Namespace"),
        ("nodes", "Node"),
        ("events", "Event"),
        ("endpoints", "Endpoints"),
        ("endpointslices", "EndpointSlice"),
        ("persistentvolumes", "PersistentVolume"),
        ("persistentvolumeclaims", "PersistentVolumeClaim"),
        ("replicationcontrollers", "ReplicationController"),
        ("resourcequotas", "ResourceQuota"),
        ("limitranges", "LimitRange"),
        ("deployments", "Deployment"),
        ("replicasets", "ReplicaSet"),
        ("statefulsets", "StatefulSet"),
        ("daemonsets", "DaemonSet"),
        ("jobs", "Job"),
        ("cronjobs", "CronJob"),
        ("horizontalpodautoscalers", "HorizontalPodAutoscaler"),
        ("poddisruptionbudgets", "PodDisruptionBudget"),
        ("ingresses", "Ingress"),
        ("networkpolicies", "NetworkPolicy"),
        ("roles", "Role"),
        ("rolebindings", "RoleBinding"),
        ("clusterroles", "ClusterRole"),
        ("clusterrolebindings", "ClusterRoleBinding"),
        ("customresourcedefinitions", "CustomResourceDefinition"),
        ("storageclasses", "StorageClass"),
        ("leases", "Lease"),
        ("tokenreviews", "TokenReview"),
        ("subjectaccessreviews", "SubjectAccessReview"),
        ("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
        ("certificatesigningrequests", "CertificateSigningRequest"),
    ];
    if let Some((_, kind)) = KINDS.iter().find(|(plural, _)| *plural == resource) {
        return (*kind).to_owned();
    }
    let singular = if let Some(stem) = resource.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = resource
        .strip_suffix("es")
        .filter(|stem| stem.ends_with("ss") || stem.ends_with('x') || stem.ends_with("ch"))
    {
        stem.to_owned()
    } else {
        resource.strip_suffix('s').unwrap_or(resource).to_owned()
    };
    pascal(&singular)
}

fn plural_of(kind: &str) -> String {
    if kind.ends_with("ss") || kind.ends_with('x') || kind.ends_with("ch") {
        format!("{kind}es")
    } else if kind.ends_with('s') {
        kind.to_owned()
    } else if let Some(stem) = kind.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{kind}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_verb_and_kind() {
        let object = |resource: &str, subresource: &str| ObjectReference {
            resource: resource.into(),
            subresource: subresource.into(),
            ..ObjectReference::default()
        };
        assert_eq!(
            resource_event_name("create", &object("pods", "")),
            "CreatePod"
        );
        assert_eq!(resource_event_name("list", &object("pods", "")), "ListPods");
        assert_eq!(
            resource_event_name("create", &object("pods", "exec")),
            "CreatePodExec"
        );
        assert_eq!(
            resource_event_name("delete", &object("secrets", "")),
            "DeleteSecret"
        );
        assert_eq!(
            resource_event_name("watch", &object("networkpolicies", "")),
            "WatchNetworkPolicies"
        );
        assert_eq!(
            resource_event_name("get", &object("widgets", "status")),
            "GetWidgetStatus"
        );
        assert_eq!(
            resource_event_name("deletecollection", &object("ingresses", "")),
            "DeleteCollectionIngresses"
        );
    }
}
