//! What a record must never keep. Values are replaced by CloudTrail's own marker,
//! `HIDDEN_DUE_TO_SECURITY_REASONS`, so a reader sees that a value was there.
//!
//! Always hidden: the credential headers (`Authorization`, `Cookie`, `X-Amz-Security-Token`
//! …), signature query parameters, and members named like secrets anywhere in the
//! parameters (`password`, `secretAccessKey`, `sessionToken`, `clientSecret`…). Configured
//! on top: more header names, and JSON paths (`credentials.apiKey`, `items.*.token`; `*`
//! matches any member or array element).

use serde_json::Value;

pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

const ALWAYS_HIDDEN_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-amz-security-token",
    "x-api-key",
    "x-auth-token",
];

/// Member names (compared case-insensitively, anywhere in the tree) whose values are
/// secrets in the APIs people put the recorder in front of.
const ALWAYS_HIDDEN_MEMBERS: [&str; 16] = [
    "password",
    "newpassword",
    "oldpassword",
    "secret",
    "secretaccesskey",
    "secretstring",
    "secretbinary",
    "sessiontoken",
    "token",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "privatekey",
    "clientsecret",
    "x-amz-signature",
    "x-amz-security-token",
];

/// The redaction rules of one recorder.
#[derive(Debug, Clone, Default)]
pub struct Redaction {
    headers: Vec<String>,
    paths: Vec<Vec<String>>,
}

impl Redaction {
    /// `headers`: extra header names to hide. `json_paths`: dotted paths into the request
    /// parameters.
    pub fn new(headers: &[String], json_paths: &[String]) -> Redaction {
        Redaction {
            headers: headers
                .iter()
                .map(|name| name.to_ascii_lowercase())
                .collect(),
            paths: json_paths
                .iter()
                .map(|path| path.split('.').map(str::to_owned).collect())
                .collect(),
        }
    }

    pub fn hides_header(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        ALWAYS_HIDDEN_HEADERS.contains(&name.as_str()) || self.headers.contains(&name)
    }

    /// Hides every secret member and every configured path in `value`.
    pub fn apply(&self, value: &mut Value) {
        hide_secret_members(value);
        for path in &self.paths {
            hide_path(value, path);
        }
    }
}

fn hide_secret_members(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (name, member) in object.iter_mut() {
                let lowered = name.to_ascii_lowercase();
                if ALWAYS_HIDDEN_MEMBERS.contains(&lowered.as_str()) && !member.is_null() {
                    *member = Value::String(HIDDEN.to_owned());
                } else {
                    hide_secret_members(member);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(hide_secret_members),
        _ => {}
    }
}

fn hide_path(value: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        *value = Value::String(HIDDEN.to_owned());
        return;
    };
    match value {
        Value::Object(object) => {
            for (name, member) in object.iter_mut() {
                if first == "*" || name == first {
                    hide_path(member, rest);
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                if first == "*" || *first == index.to_string() {
                    hide_path(item, rest);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_and_configured_paths_are_hidden_and_the_rest_kept() {
        let redaction = Redaction::new(
            &["X-Tenant-Key".to_owned()],
            &["card.number".to_owned(), "items.*.pin".to_owned()],
        );
        let mut parameters = json!({
            "userName": "bob",
            "Password": "hunter2",
            "card": {"number": "4111111111111111", "holder": "Bob"},
            "items": [{"pin": "1234", "sku": "a"}, {"pin": "9999"}],
            "nested": {"clientSecret": "xyz"},
        });
        redaction.apply(&mut parameters);
        let text = parameters.to_string();
        for secret in ["hunter2", "4111111111111111", "1234", "9999", "xyz"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(parameters["userName"], "bob");
        assert_eq!(parameters["card"]["holder"], "Bob");
        assert_eq!(parameters["items"][0]["sku"], "a");
        assert_eq!(parameters["Password"], HIDDEN);
        assert!(redaction.hides_header("x-tenant-key"));
        assert!(redaction.hides_header("Authorization"));
        assert!(!redaction.hides_header("content-type"));
    }
}
