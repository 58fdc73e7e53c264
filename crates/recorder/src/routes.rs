//! Naming calls to plain HTTP APIs: configured route rules (method + path template → event
//! name and resource), else a name made from the method and the path's fixed words.
//!
//! ```toml
//! [[routes]]
//! method = "POST"                 # or "*"
//! path = "/v1/users/{user}/keys"  # {name}: one segment; {name+}: the rest of the path
//! event_name = "CreateUserKey"
//! resource_type = "Example::User" # optional
//! resource_name = "users/{user}"  # optional, a template over the same labels
//! read_only = false               # optional; default: GET, HEAD and OPTIONS are read-only
//! ```

use serde::Deserialize;

/// One route rule as configured.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    #[serde(default = "any_method")]
    pub method: String,
    pub path: String,
    pub event_name: String,
    #[serde(default)]
    pub event_source: Option<String>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub read_only: Option<bool>,
}

fn any_method() -> String {
    "*".to_owned()
}

/// What a matching rule says about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedCall {
    pub event_name: String,
    pub event_source: Option<String>,
    pub read_only: bool,
    pub resource: Option<(String, String)>,
    /// The path's labels, for the record's parameters.
    pub labels: Vec<(String, String)>,
}

/// The first rule that matches `method` and `path` (decoded segments), in configured order.
pub fn match_rules(rules: &[RouteRule], method: &str, path: &str) -> Option<NamedCall> {
    let segments: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    rules.iter().find_map(|rule| {
        if rule.method != "*" && !rule.method.eq_ignore_ascii_case(method) {
            return None;
        }
        let labels = match_template(&rule.path, &segments)?;
        let fill = |template: &str| fill_template(template, &labels);
        let resource = match (&rule.resource_type, &rule.resource_name) {
            (Some(kind), Some(name)) => Some((kind.clone(), fill(name))),
            (Some(kind), None) => Some((kind.clone(), path.to_owned())),
            (None, Some(name)) => Some(("Resource".to_owned(), fill(name))),
            (None, None) => None,
        };
        Some(NamedCall {
            event_name: rule.event_name.clone(),
            event_source: rule.event_source.clone(),
            read_only: rule.read_only.unwrap_or_else(|| is_safe_method(method)),
            resource,
            labels,
        })
    })
}

/// Whether a rule's path template is well formed: labels are whole segments, and a greedy
/// label comes last.
pub fn check_template(template: &str) -> Result<(), String> {
    let segments: Vec<&str> = template
        .split('/')
        .filter(|part| !part.is_empty())
        .collect();
    for (index, segment) in segments.iter().enumerate() {
        let is_label = segment.starts_with('{') && segment.ends_with('}');
        if !is_label && (segment.contains('{') || segment.contains('}')) {
            return Err(format!(
                "route path {template:?}: a label must be a whole segment, like /users/{{id}}"
            ));
        }
        if is_label && segment.ends_with("+}") && index + 1 != segments.len() {
            return Err(format!(
                "route path {template:?}: a greedy label {{name+}} must be the last segment"
            ));
        }
    }
    Ok(())
}

fn match_template(template: &str, segments: &[&str]) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let parts: Vec<&str> = template
        .split('/')
        .filter(|part| !part.is_empty())
        .collect();
    let mut index = 0;
    for part in parts {
        match part
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
        {
            Some(label) => {
                if let Some(greedy) = label.strip_suffix('+') {
                    if index >= segments.len() {
                        return None;
                    }
                    labels.push((greedy.to_owned(), segments[index..].join("/")));
                    index = segments.len();
                } else {
                    labels.push((label.to_owned(), (*segments.get(index)?).to_owned()));
                    index += 1;
                }
            }
            None => {
                if *segments.get(index)? != part {
                    return None;
                }
                index += 1;
            }
        }
    }
    (index == segments.len()).then_some(labels)
}

fn fill_template(template: &str, labels: &[(String, String)]) -> String {
    let mut filled = template.to_owned();
    for (name, value) in labels {
        filled = filled
            .replace(&format!("{{{name}}}"), value)
            .replace(&format!("{{{name}+}}"), value);
    }
    filled
}

pub fn is_safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The name of a call no rule names: the method as a verb, then the path's fixed words
/// (segments that look like ids, versions or values are left out), so `GET
/// /api/v1/users/42` is `GetApiUsers` and `DELETE /orders/9f1c…` is `DeleteOrders`.
pub fn default_event_name(method: &str, path: &str) -> String {
    let mut name = pascal(&method.to_ascii_lowercase());
    for segment in path.split('/').filter(|part| !part.is_empty()) {
        let looks_like_a_word = segment.len() <= 32
            && segment
                .chars()
                .all(|character| character.is_ascii_alphabetic() || "-_".contains(character));
        if looks_like_a_word {
            for word in segment.split(['-', '_']).filter(|word| !word.is_empty()) {
                name.push_str(&pascal(word));
            }
        }
    }
    name
}

/// `word` with its first letter upper-cased.
pub(crate) fn pascal(word: &str) -> String {
    let mut characters = word.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_rule_names_the_call_and_its_resource() {
        let rules = vec![
            RouteRule {
                method: "POST".into(),
                path: "/v1/users/{user}/keys".into(),
                event_name: "CreateUserKey".into(),
                event_source: None,
                resource_type: Some("Example::User".into()),
                resource_name: Some("users/{user}".into()),
                read_only: None,
            },
            RouteRule {
                method: "*".into(),
                path: "/files/{path+}".into(),
                event_name: "FileAccess".into(),
                event_source: Some("files.example.com".into()),
                resource_type: None,
                resource_name: None,
                read_only: Some(true),
            },
        ];
        let named = match_rules(&rules, "POST", "/v1/users/alice/keys").expect("match");
        assert_eq!(named.event_name, "CreateUserKey");
        assert!(!named.read_only);
        assert_eq!(
            named.resource,
            Some(("Example::User".into(), "users/alice".into()))
        );
        assert!(match_rules(&rules, "GET", "/v1/users/alice/keys").is_none());
        let named = match_rules(&rules, "PUT", "/files/a/b/c.txt").expect("greedy");
        assert_eq!(named.labels, vec![("path".into(), "a/b/c.txt".into())]);
        assert!(check_template("/files/{path+}/x").is_err());
        assert!(check_template("/users/x{id}").is_err());
    }

    #[test]
    fn unnamed_calls_get_a_name_from_the_method_and_fixed_words() {
        assert_eq!(default_event_name("GET", "/api/v1/users/42"), "GetApiUsers");
        assert_eq!(
            default_event_name("DELETE", "/orders/9f1c2e3a-1111-2222-3333-444455556666"),
            "DeleteOrders"
        );
        assert_eq!(
            default_event_name("POST", "/payment-intents"),
            "PostPaymentIntents"
        );
    }
}
