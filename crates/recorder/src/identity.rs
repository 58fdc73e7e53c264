//! Who made a call, read from its credentials without ever keeping them: the access key of
//! a SigV4 signature (or a presigned URL), the `sub` and `iss` claims of a bearer JWT, the
//! user of HTTP basic auth. Signatures, tokens and passwords are read and dropped; the
//! record only gets names. Nothing here is verified: the upstream authenticates, the
//! recorder records what was presented.

use std::collections::BTreeMap;

use base64::Engine as _;
use http::HeaderMap;
use opentrail_protocol::sigv4::CredentialScope;
use serde_json::{Map, Value, json};

/// The caller of one call, as far as its request tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A SigV4-signed call (header or presigned URL).
    AccessKey(CredentialScope),
    /// A bearer JWT's claims.
    WebIdentity {
        subject: String,
        issuer: Option<String>,
    },
    /// HTTP basic auth's user name.
    BasicUser(String),
    /// A bearer token that is not a JWT: someone presented a token, but it names no one.
    OpaqueToken,
    Anonymous,
}

/// Reads the caller from the request's `Authorization` header and query string.
pub fn caller_of(headers: &HeaderMap, query: &str) -> Caller {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::trim);
    if let Some(authorization) = authorization {
        if authorization.starts_with(opentrail_protocol::sigv4::ALGORITHM)
            && let Some(scope) = CredentialScope::from_authorization(authorization)
        {
            return Caller::AccessKey(scope);
        }
        if let Some(token) = strip_scheme(authorization, "Bearer") {
            return web_identity(token).unwrap_or(Caller::OpaqueToken);
        }
        if let Some(encoded) = strip_scheme(authorization, "Basic")
            && let Some(user) = basic_user(encoded)
        {
            return Caller::BasicUser(user);
        }
    }
    if let Some(scope) = CredentialScope::from_query(query) {
        return Caller::AccessKey(scope);
    }
    Caller::Anonymous
}

impl Caller {
    /// The SigV4 scope when the call was signed.
    pub fn scope(&self) -> Option<&CredentialScope> {
        match self {
            Caller::AccessKey(scope) => Some(scope),
            _ => None,
        }
    }

    /// The record's `userIdentity`, in the shapes CloudTrail uses: `IAMUser` (or
    /// `AssumedRole` for temporary `ASIA…` keys) with `accessKeyId`; `WebIdentityUser`
    /// with the JWT's subject and issuer; `AWSAccount` `ANONYMOUS_PRINCIPAL` for unsigned
    /// calls, as CloudTrail records anonymous S3 requests. `key_names` maps access key ids
    /// to user names.
    pub fn user_identity(
        &self,
        account_id: Option<&str>,
        key_names: &BTreeMap<String, String>,
    ) -> Value {
        let mut identity = Map::new();
        let mut put = |name: &str, value: &str| {
            identity.insert(name.to_owned(), Value::String(value.to_owned()));
        };
        match self {
            Caller::AccessKey(scope) => {
                let temporary = scope.access_key_id.starts_with("ASIA");
                put("type", if temporary { "AssumedRole" } else { "IAMUser" });
                put("principalId", &scope.access_key_id);
                if let Some(account_id) = account_id {
                    put("accountId", account_id);
                }
                put("accessKeyId", &scope.access_key_id);
                if let Some(name) = key_names.get(&scope.access_key_id) {
                    put("userName", name);
                    if let (Some(account_id), false) = (account_id, temporary) {
                        put("arn", &format!("arn:aws:iam::{account_id}:user/{name}"));
                    }
                }
            }
            Caller::WebIdentity { subject, issuer } => {
                put("type", "WebIdentityUser");
                let principal = match issuer {
                    Some(issuer) => format!("{issuer}:{subject}"),
                    None => subject.clone(),
                };
                put("principalId", &principal);
                put("userName", subject);
                if let Some(issuer) = issuer {
                    put("identityProvider", issuer);
                }
            }
            Caller::BasicUser(user) => {
                put("type", "Unknown");
                put("principalId", user);
                put("userName", user);
            }
            Caller::OpaqueToken => {
                put("type", "Unknown");
                put("principalId", "bearer-token");
            }
            Caller::Anonymous => {
                return json!({
                    "type": "AWSAccount",
                    "principalId": "",
                    "accountId": "ANONYMOUS_PRINCIPAL",
                });
            }
        }
        Value::Object(identity)
    }
}

fn strip_scheme<'a>(authorization: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = authorization.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// The `sub` and `iss` claims of a JWT (`header.payload.signature`, base64url).
fn web_identity(token: &str) -> Option<Caller> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&decoded).ok()?;
    let subject = claims.get("sub")?.as_str()?.to_owned();
    let issuer = claims.get("iss").and_then(Value::as_str).map(str::to_owned);
    Some(Caller::WebIdentity { subject, issuer })
}

fn basic_user(encoded: &str) -> Option<String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    // The password after the first ':' is dropped here and never leaves this function.
    let (user, _password) = text.split_once(':')?;
    (!user.is_empty()).then(|| user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            authorization.parse().expect("header"),
        );
        headers
    }

    #[test]
    fn a_sigv4_call_is_named_by_its_access_key_and_the_key_map() {
        let caller = caller_of(
            &headers(
                "AWS4-HMAC-SHA256 Credential=AKIAALICE/20261204/eu-west-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
            ),
            "",
        );
        let scope = caller.scope().expect("signed");
        assert_eq!(scope.service, "dynamodb");
        assert_eq!(scope.region, "eu-west-1");
        let names = BTreeMap::from([("AKIAALICE".to_owned(), "alice".to_owned())]);
        let identity = caller.user_identity(Some("111122223333"), &names);
        assert_eq!(identity["type"], "IAMUser");
        assert_eq!(identity["accessKeyId"], "AKIAALICE");
        assert_eq!(identity["userName"], "alice");
        assert_eq!(identity["arn"], "arn:aws:iam::111122223333:user/alice");
        assert!(!identity.to_string().contains("abc"), "no signature kept");
    }

    #[test]
    fn a_presigned_url_names_its_key() {
        let caller = caller_of(
            &HeaderMap::new(),
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIATEMP%2F20261204%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ff",
        );
        let identity = caller.user_identity(None, &BTreeMap::new());
        assert_eq!(identity["type"], "AssumedRole");
        assert_eq!(identity["accessKeyId"], "ASIATEMP");
    }

    #[test]
    fn a_jwt_gives_its_subject_and_issuer_and_basic_auth_its_user_but_no_secret() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"user-42","iss":"https://idp.example.com","secret":"s3cr3t"}"#);
        let caller = caller_of(
            &headers(&format!("Bearer eyJhbGciOiJIUzI1NiJ9.{payload}.sig")),
            "",
        );
        let identity = caller.user_identity(None, &BTreeMap::new());
        assert_eq!(identity["type"], "WebIdentityUser");
        assert_eq!(identity["userName"], "user-42");
        assert_eq!(identity["identityProvider"], "https://idp.example.com");
        assert!(!identity.to_string().contains("s3cr3t"));

        let basic = base64::engine::general_purpose::STANDARD.encode("carol:hunter2");
        let identity = caller_of(&headers(&format!("Basic {basic}")), "")
            .user_identity(None, &BTreeMap::new());
        assert_eq!(identity["userName"], "carol");
        assert!(!identity.to_string().contains("hunter2"));

        let identity = caller_of(&HeaderMap::new(), "").user_identity(None, &BTreeMap::new());
        assert_eq!(identity["accountId"], "ANONYMOUS_PRINCIPAL");
    }
}
