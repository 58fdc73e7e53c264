//! Writing one record: who (the `userIdentity`, source address and agent), what (the
//! operation's parameters, response and resources), and the envelope around them.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::catalog::{
    self, ACCOUNT_WEIGHTS, ActorClass, BUCKETS, FUNCTIONS, GENERAL_ERRORS, HUMAN_AGENTS,
    LOG_GROUPS, MISCONFIGURED_ROLES, OPERATIONS, Operation, PARAMETERS, QUEUES, REGION_WEIGHTS,
    ROLES, RoleKind, SECRETS, Shape, TABLES, USER_NAMES,
};
use crate::json::{
    bool_field, field, field_parts, first_field, first_field_parts, number_field, raw_field,
};
use crate::rng::{Rng, Weighted, hash};
use crate::{EventMeta, format_event_time};

/// The caller of one record.
pub(crate) struct Identity {
    /// The `userIdentity` object.
    pub json: String,
    pub source_ip: String,
    pub user_agent: String,
}

/// What was called, ready to write.
pub(crate) struct Call<'a> {
    pub event_version: &'a str,
    pub source: &'a str,
    pub name: &'a str,
    pub read_only: bool,
    pub data: bool,
    pub event_type: &'a str,
    /// Raw JSON (`null` or an object).
    pub request: String,
    pub response: String,
    pub additional: Option<String>,
    /// Raw JSON array, or empty for no `resources` member.
    pub resources: String,
    pub error: Option<(&'a str, String)>,
    pub tls_host: Option<String>,
    pub shared_event_id: Option<String>,
    pub vpc_endpoint: Option<String>,
    pub request_id: String,
}

/// Writes a whole record.
#[allow(clippy::too_many_arguments)] // Each is a distinct member of the envelope.
pub(crate) fn write_record(
    out: &mut String,
    event_time: &str,
    account: &str,
    region: &str,
    event_id: &str,
    identity: &Identity,
    call: &Call<'_>,
) {
    out.push('{');
    first_field(out, "eventVersion", call.event_version);
    raw_field(out, "userIdentity", &identity.json);
    field(out, "eventTime", event_time);
    field(out, "eventSource", call.source);
    field(out, "eventName", call.name);
    field(out, "awsRegion", region);
    field(out, "sourceIPAddress", &identity.source_ip);
    field(out, "userAgent", &identity.user_agent);
    if let Some((code, message)) = &call.error {
        field(out, "errorCode", code);
        field(out, "errorMessage", message);
    }
    raw_field(out, "requestParameters", &call.request);
    raw_field(out, "responseElements", &call.response);
    if let Some(additional) = &call.additional {
        raw_field(out, "additionalEventData", additional);
    }
    field(out, "requestID", &call.request_id);
    field(out, "eventID", event_id);
    bool_field(out, "readOnly", call.read_only);
    if !call.resources.is_empty() {
        raw_field(out, "resources", &call.resources);
    }
    field(out, "eventType", call.event_type);
    bool_field(out, "managementEvent", !call.data);
    field(out, "recipientAccountId", account);
    if let Some(shared) = &call.shared_event_id {
        field(out, "sharedEventID", shared);
    }
    if let Some(endpoint) = &call.vpc_endpoint {
        field(out, "vpcEndpointId", endpoint);
    }
    field(
        out,
        "eventCategory",
        if call.data { "Data" } else { "Management" },
    );
    if let Some(host) = &call.tls_host {
        out.push_str(",\"tlsDetails\":{");
        first_field(out, "tlsVersion", "TLSv1.3");
        field(out, "cipherSuite", "TLS_AES_128_GCM_SHA256");
        field(out, "clientProvidedHostHeader", host);
        out.push('}');
    }
    out.push('}');
}

// ---- identifiers -------------------------------------------------------------------

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const HEX: &[u8; 16] = b"0123456789abcdef";

/// 16 upper-case base32 characters, as in access key ids and principal ids.
pub(crate) fn id16(seed: u64) -> String {
    Id16::new(seed).as_str().to_owned()
}

/// [`id16`] without an allocation, for ids joined into longer values.
pub(crate) struct Id16([u8; 16]);

impl Id16 {
    pub(crate) fn new(seed: u64) -> Id16 {
        let mut bits = seed;
        let mut more = crate::rng::mix(seed);
        let mut characters = [0u8; 16];
        for (i, character) in characters.iter_mut().enumerate() {
            if i == 12 {
                bits = more;
                more = 0;
            }
            *character = BASE32[(bits & 31) as usize];
            bits >>= 5;
        }
        Id16(characters)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Base32 characters are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// `len` lower-case hex characters.
pub(crate) fn hex(seed: u64, len: usize) -> String {
    let mut out = String::with_capacity(len);
    push_hex(&mut out, seed, len);
    out
}

/// Appends [`hex`]`(seed, len)`.
pub(crate) fn push_hex(out: &mut String, seed: u64, len: usize) {
    let mut bits = seed;
    for i in 0..len {
        if i % 16 == 0 && i > 0 {
            bits = crate::rng::mix(bits ^ i as u64);
        }
        out.push(HEX[(bits & 15) as usize] as char);
        bits >>= 4;
    }
}

/// A random version-4 UUID in its usual text form.
pub(crate) fn uuid(rng: &mut Rng) -> String {
    let high = rng.next_u64();
    let low = rng.next_u64();
    let bytes: [u8; 16] = {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        bytes
    };
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 15) as usize] as char);
    }
    out
}

/// S3-style request ids: 16 upper-case alphanumerics.
fn s3_request_id(rng: &mut Rng) -> String {
    const ALNUM: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bits = rng.next_u64();
    (0..16)
        .map(|i| {
            if i == 10 {
                bits = rng.next_u64();
            }
            let character = ALNUM[(bits % 36) as usize] as char;
            bits /= 36;
            character
        })
        .collect()
}

/// Base64-looking text of `len` characters (S3's `x-amz-id-2`, STS session tokens).
fn base64ish(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(len);
    let mut bits = 0u64;
    for i in 0..len {
        if i % 10 == 0 {
            bits = rng.next_u64();
        }
        out.push(ALPHABET[(bits & 63) as usize] as char);
        bits >>= 6;
    }
    out
}

/// A stable 64-bit value for a name (FNV-1a), to seed per-entity identifiers.
pub(crate) fn str_seed(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |acc, byte| {
        (acc ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn octet(value: u64) -> u64 {
    value % 254 + 1
}

/// A residential or office address (people).
pub(crate) fn public_ip(seed: u64) -> String {
    const FIRST: [u64; 16] = [
        24, 67, 71, 73, 76, 81, 86, 92, 98, 104, 108, 174, 185, 188, 213, 217,
    ];
    let h = hash(&[seed, 0x1b]);
    format!(
        "{}.{}.{}.{}",
        FIRST[(h % 16) as usize],
        (h >> 8) % 256,
        (h >> 16) % 256,
        octet(h >> 24)
    )
}

/// An AWS public address (Lambda, NAT gateways).
fn aws_ip(seed: u64) -> String {
    const FIRST: [u64; 7] = [3, 18, 34, 35, 44, 52, 54];
    let h = hash(&[seed, 0x2c]);
    format!(
        "{}.{}.{}.{}",
        FIRST[(h % 7) as usize],
        (h >> 8) % 256,
        (h >> 16) % 256,
        octet(h >> 24)
    )
}

fn private_ip(seed: u64) -> String {
    let h = hash(&[seed, 0x3d]);
    format!("10.{}.{}.{}", h % 4, (h >> 8) % 256, octet(h >> 16))
}

/// The name of user `index`: the named ones, then the long tail of contractors.
pub(crate) fn user_name(index: usize) -> String {
    match USER_NAMES.get(index) {
        Some(name) => (*name).to_owned(),
        None => format!("contractor-{:02}", index - USER_NAMES.len() + 1),
    }
}

/// An IAM user's `userIdentity`. `session_key` selects a console session's temporary key
/// (with `sessionContext`) instead of the user's long-term key.
pub(crate) fn iam_user_identity(
    account: &str,
    name: &str,
    user_seed: u64,
    session_key: Option<(u64, &str)>,
    invoked_by: Option<&str>,
) -> String {
    let mut out = String::with_capacity(400);
    out.push('{');
    first_field(&mut out, "type", "IAMUser");
    let principal = Id16::new(hash(&[user_seed, 1]));
    field_parts(&mut out, "principalId", &["AIDA", principal.as_str()]);
    field_parts(&mut out, "arn", &["arn:aws:iam::", account, ":user/", name]);
    field(&mut out, "accountId", account);
    match session_key {
        Some((session, created)) => {
            let key = Id16::new(hash(&[user_seed, session]));
            field_parts(&mut out, "accessKeyId", &["ASIA", key.as_str()]);
            field(&mut out, "userName", name);
            out.push_str(",\"sessionContext\":{\"sessionIssuer\":{},\"webIdFederationData\":{},\"attributes\":{");
            first_field(&mut out, "creationDate", created);
            field(&mut out, "mfaAuthenticated", "true");
            out.push_str("}}");
        }
        None => {
            let key = Id16::new(hash(&[user_seed, 2]));
            field_parts(&mut out, "accessKeyId", &["AKIA", key.as_str()]);
            field(&mut out, "userName", name);
        }
    }
    if let Some(service) = invoked_by {
        field(&mut out, "invokedBy", service);
    }
    out.push('}');
    out
}

/// An assumed role's `userIdentity`.
pub(crate) fn assumed_role_identity(
    account: &str,
    role: &str,
    session: &str,
    key_seed: u64,
    created: &str,
    invoked_by: Option<&str>,
) -> String {
    let role_id = Id16::new(hash(&[str_seed(account), str_seed(role), 3]));
    let mut out = String::with_capacity(700);
    out.push('{');
    first_field(&mut out, "type", "AssumedRole");
    field_parts(
        &mut out,
        "principalId",
        &["AROA", role_id.as_str(), ":", session],
    );
    field_parts(
        &mut out,
        "arn",
        &[
            "arn:aws:sts::",
            account,
            ":assumed-role/",
            role,
            "/",
            session,
        ],
    );
    field(&mut out, "accountId", account);
    let key = Id16::new(key_seed);
    field_parts(&mut out, "accessKeyId", &["ASIA", key.as_str()]);
    out.push_str(",\"sessionContext\":{\"sessionIssuer\":{");
    first_field(&mut out, "type", "Role");
    field_parts(&mut out, "principalId", &["AROA", role_id.as_str()]);
    field_parts(&mut out, "arn", &["arn:aws:iam::", account, ":role/", role]);
    field(&mut out, "accountId", account);
    field(&mut out, "userName", role);
    out.push_str("},\"webIdFederationData\":{},\"attributes\":{");
    first_field(&mut out, "creationDate", created);
    field(&mut out, "mfaAuthenticated", "false");
    out.push_str("}}");
    if let Some(service) = invoked_by {
        field(&mut out, "invokedBy", service);
    }
    out.push('}');
    out
}

fn service_identity(service: &str) -> String {
    let mut out = String::with_capacity(64);
    out.push('{');
    first_field(&mut out, "type", "AWSService");
    field(&mut out, "invokedBy", service);
    out.push('}');
    out
}

fn root_identity(account: &str, key_seed: u64, created: &str) -> String {
    let mut out = String::with_capacity(300);
    out.push('{');
    first_field(&mut out, "type", "Root");
    field(&mut out, "principalId", account);
    field_parts(&mut out, "arn", &["arn:aws:iam::", account, ":root"]);
    field(&mut out, "accountId", account);
    let key = Id16::new(key_seed);
    field_parts(&mut out, "accessKeyId", &["ASIA", key.as_str()]);
    out.push_str(
        ",\"sessionContext\":{\"sessionIssuer\":{},\"webIdFederationData\":{},\"attributes\":{",
    );
    first_field(&mut out, "creationDate", created);
    field(&mut out, "mfaAuthenticated", "true");
    out.push_str("}}}");
    out
}

/// `[{"accountId":…,"type":…,"ARN":…}, …]`.
pub(crate) fn resources_json(account: &str, entries: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(256);
    out.push('[');
    for (i, (kind, arn)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // S3 objects carry no accountId in real records (only their bucket does).
        if *kind == "AWS::S3::Object" {
            out.push('{');
            first_field(&mut out, "type", kind);
        } else {
            out.push('{');
            first_field(&mut out, "accountId", account);
            field(&mut out, "type", kind);
        }
        field(&mut out, "ARN", arn);
        out.push('}');
    }
    out.push(']');
    out
}

// ---- the background stream ---------------------------------------------------------

/// State for background (non-story) records: the weighted tables and a cache of the
/// current second's text.
pub(crate) struct Background {
    rng: Rng,
    accounts: Vec<Arc<str>>,
    regions: Vec<Arc<str>>,
    global_region: Arc<str>,
    account_table: Weighted,
    region_table: Weighted,
    operation_table: Weighted,
    actor_tables: Vec<Weighted>,
    user_table: Weighted,
    role_table: Weighted,
    session_table: Weighted,
    bucket_table: Weighted,
    object_table: Weighted,
    small_table: Weighted,
    roaming_ip_table: Weighted,
    agent_table: Weighted,
    cached_second: i64,
    cached_time: String,
}

/// How many users there are.
const USERS: usize = USER_NAMES.len() + catalog::EXTRA_USERS;

impl Background {
    pub fn new(rng: Rng, accounts: Vec<Arc<str>>, regions: Vec<Arc<str>>) -> Background {
        Background {
            rng,
            account_table: Weighted::new(&ACCOUNT_WEIGHTS[..accounts.len()]),
            region_table: Weighted::new(&REGION_WEIGHTS[..regions.len()]),
            accounts,
            regions,
            global_region: Arc::from(catalog::GLOBAL_REGION),
            operation_table: Weighted::new(
                &OPERATIONS.iter().map(|op| op.weight).collect::<Vec<_>>(),
            ),
            actor_tables: OPERATIONS
                .iter()
                .map(|op| {
                    // An operation without services cannot have service callers.
                    let mut weights = op.actors;
                    if op.services.is_empty() {
                        weights[2] = 0.0;
                    }
                    Weighted::new(&weights)
                })
                .collect(),
            user_table: Weighted::zipf(USERS, 1.2),
            role_table: Weighted::zipf(ROLES.len(), 0.9),
            session_table: Weighted::zipf(8, 1.0),
            bucket_table: Weighted::zipf(BUCKETS.len(), 1.0),
            object_table: Weighted::zipf(50_000, 1.05),
            small_table: Weighted::zipf(8, 1.1),
            roaming_ip_table: Weighted::zipf(600, 1.1),
            agent_table: Weighted::zipf(HUMAN_AGENTS.len(), 1.0),
            cached_second: i64::MIN,
            cached_time: String::new(),
        }
    }

    pub fn write_event(&mut self, time_ms: i64, out: &mut String) -> EventMeta {
        let second = time_ms.div_euclid(1000);
        if second != self.cached_second {
            self.cached_second = second;
            self.cached_time = format_event_time(time_ms);
        }
        let time = self.cached_time.clone();
        let op_index = self.operation_table.sample(&mut self.rng);
        let op = &OPERATIONS[op_index];
        let account_index = self.account_table.sample(&mut self.rng);
        let account = Arc::clone(&self.accounts[account_index]);
        let region = if catalog::is_global(op.source) {
            Arc::clone(&self.global_region)
        } else {
            Arc::clone(&self.regions[self.region_table.sample(&mut self.rng)])
        };
        let actor = match self.actor_tables[op_index].sample(&mut self.rng) {
            0 => ActorClass::User,
            1 => ActorClass::Role,
            2 => ActorClass::Service,
            _ => ActorClass::Root,
        };
        let hour = second / 3600;
        let (identity, principal) = self.identity(op, actor, &account, hour, &time);
        let call = self.call(op, actor, &principal, &account, &region, time_ms);
        let event_id = uuid(&mut self.rng);
        write_record(out, &time, &account, &region, &event_id, &identity, &call);
        EventMeta {
            event_time_ms: time_ms,
            account_id: account,
            region,
        }
    }

    fn identity(
        &mut self,
        op: &Operation,
        actor: ActorClass,
        account: &str,
        hour: i64,
        time: &str,
    ) -> (Identity, Principal) {
        let rng = &mut self.rng;
        let (behalf_services, behalf_chance) = op.on_behalf;
        let on_behalf = (!behalf_services.is_empty() && rng.chance(behalf_chance))
            .then(|| behalf_services[rng.below(behalf_services.len())]);
        match actor {
            ActorClass::User => {
                let user = self.user_table.sample(rng);
                let name = user_name(user);
                let user_seed = hash(&[str_seed(account), user as u64, 0x5eed]);
                let console = rng.chance(0.2);
                let session = console.then_some((hour as u64, time));
                let json = iam_user_identity(account, &name, user_seed, session, on_behalf);
                let (source_ip, user_agent) = match on_behalf {
                    Some(service) => (service.to_owned(), service.to_owned()),
                    None => {
                        // People work from their usual address most of the time.
                        let ip = if rng.chance(0.85) {
                            public_ip(user_seed)
                        } else {
                            public_ip(self.roaming_ip_table.sample(rng) as u64 + 10_000)
                        };
                        let agent = if console {
                            "console.amazonaws.com"
                        } else {
                            HUMAN_AGENTS[self.agent_table.sample(rng)]
                        };
                        (ip, agent.to_owned())
                    }
                };
                let misconfigured = false;
                (
                    Identity {
                        json,
                        source_ip,
                        user_agent,
                    },
                    Principal {
                        arn: ["arn:aws:iam::", account, ":user/", &name].concat(),
                        misconfigured,
                    },
                )
            }
            ActorClass::Role => {
                let role = &ROLES[self.role_table.sample(rng)];
                let session_pick = self.session_table.sample(rng) as u64;
                let session = match role.kind {
                    RoleKind::EcsTask => {
                        hex(hash(&[str_seed(role.name), hour as u64, session_pick]), 32)
                    }
                    RoleKind::Ec2Instance => format!(
                        "i-0{}",
                        hex(hash(&[str_seed(role.name), 0xec2, session_pick]), 16)
                    ),
                    _ => role.sessions[(session_pick as usize) % role.sessions.len().max(1)]
                        .to_owned(),
                };
                let session_seed = hash(&[str_seed(account), str_seed(role.name), session_pick]);
                let key_seed = hash(&[session_seed, hour as u64]);
                let service_linked = match role.kind {
                    RoleKind::ServiceLinked(service) => Some(service),
                    _ => None,
                };
                let invoked_by = on_behalf.or(service_linked);
                let json =
                    assumed_role_identity(account, role.name, &session, key_seed, time, invoked_by);
                let (source_ip, user_agent) = match invoked_by {
                    Some(service) => (service.to_owned(), service.to_owned()),
                    None => match role.kind {
                        RoleKind::Lambda => (
                            aws_ip(session_seed ^ hour as u64),
                            catalog::LAMBDA_AGENT.to_owned(),
                        ),
                        RoleKind::EcsTask => {
                            (private_ip(session_seed), catalog::ECS_AGENT.to_owned())
                        }
                        RoleKind::Ec2Instance => {
                            (private_ip(session_seed), catalog::EC2_AGENT.to_owned())
                        }
                        RoleKind::Sso => (
                            public_ip(session_seed),
                            HUMAN_AGENTS[self.agent_table.sample(rng)].to_owned(),
                        ),
                        RoleKind::Ci => (
                            format!("140.82.{}.{}", 112 + session_seed % 16, octet(hour as u64)),
                            HUMAN_AGENTS[5].to_owned(),
                        ),
                        RoleKind::Integration => (
                            format!(
                                "3.233.{}.{}",
                                144 + session_seed % 8,
                                octet(session_seed >> 8)
                            ),
                            catalog::INTEGRATION_AGENT.to_owned(),
                        ),
                        RoleKind::ServiceLinked(service) => {
                            (service.to_owned(), service.to_owned())
                        }
                    },
                };
                (
                    Identity {
                        json,
                        source_ip,
                        user_agent,
                    },
                    Principal {
                        arn: [
                            "arn:aws:sts::",
                            account,
                            ":assumed-role/",
                            role.name,
                            "/",
                            &session,
                        ]
                        .concat(),
                        misconfigured: MISCONFIGURED_ROLES.contains(&role.name),
                    },
                )
            }
            ActorClass::Service => {
                let service = op.services[rng.below(op.services.len().max(1))];
                (
                    Identity {
                        json: service_identity(service),
                        source_ip: service.to_owned(),
                        user_agent: service.to_owned(),
                    },
                    Principal {
                        arn: String::new(),
                        misconfigured: false,
                    },
                )
            }
            ActorClass::Root => {
                let key_seed = hash(&[str_seed(account), hour as u64, 0x9007]);
                (
                    Identity {
                        json: root_identity(account, key_seed, time),
                        source_ip: public_ip(0x9007),
                        user_agent: HUMAN_AGENTS[3].to_owned(),
                    },
                    Principal {
                        arn: format!("arn:aws:iam::{account}:root"),
                        misconfigured: false,
                    },
                )
            }
        }
    }

    fn call<'a>(
        &mut self,
        op: &'a Operation,
        actor: ActorClass,
        principal: &Principal,
        account: &str,
        region: &str,
        time_ms: i64,
    ) -> Call<'a> {
        let rng = &mut self.rng;
        let mut call = Call {
            event_version: match op.source {
                "s3.amazonaws.com" => "1.10",
                "kms.amazonaws.com" | "sts.amazonaws.com" => "1.08",
                "dynamodb.amazonaws.com" | "lambda.amazonaws.com" => "1.11",
                _ => "1.09",
            },
            source: op.source,
            name: op.name,
            read_only: op.read_only,
            data: op.data,
            event_type: "AwsApiCall",
            request: "null".to_owned(),
            response: "null".to_owned(),
            additional: None,
            resources: String::new(),
            error: None,
            tls_host: (actor != ActorClass::Service).then(|| {
                let service = op
                    .source
                    .strip_suffix(".amazonaws.com")
                    .unwrap_or(op.source);
                [service, ".", region, ".amazonaws.com"].concat()
            }),
            shared_event_id: None,
            vpc_endpoint: None,
            request_id: String::new(),
        };
        let uuid_request_id = uuid(rng);
        call.request_id = uuid_request_id;
        // Errors: the operation's own first, then the general ones; a misconfigured role
        // is denied most of the time.
        for (code, message, probability) in op.errors {
            if call.error.is_none() && rng.chance(*probability) {
                call.error = Some((code, (*message).to_owned()));
            }
        }
        if call.error.is_none() && actor != ActorClass::Service {
            let denied_chance = if principal.misconfigured {
                0.6
            } else {
                GENERAL_ERRORS[0].1
            };
            if rng.chance(denied_chance) {
                let action = format!(
                    "{}:{}",
                    op.source
                        .strip_suffix(".amazonaws.com")
                        .unwrap_or(op.source),
                    op.name
                );
                call.error = Some((
                    GENERAL_ERRORS[0].0,
                    format!(
                        "User: {} is not authorized to perform: {action} because no identity-based policy allows the {action} action",
                        principal.arn
                    ),
                ));
            } else if rng.chance(GENERAL_ERRORS[1].1) {
                call.error = Some((GENERAL_ERRORS[1].0, "Rate exceeded".to_owned()));
            }
        }
        let failed = call.error.is_some();
        match op.shape {
            Shape::S3Object | Shape::S3Bucket | Shape::S3Service => {
                let bucket = match (actor, op.services.first()) {
                    (ActorClass::Service, Some(_)) => BUCKETS[1 + rng.below(3)],
                    _ => BUCKETS[self.bucket_table.sample(rng)],
                };
                let host = [bucket, ".s3.", region, ".amazonaws.com"].concat();
                call.request_id = s3_request_id(rng);
                let mut request = String::with_capacity(300);
                request.push('{');
                if op.shape == Shape::S3Service {
                    first_field_parts(&mut request, "Host", &["s3.", region, ".amazonaws.com"]);
                } else {
                    first_field(&mut request, "bucketName", bucket);
                    field(&mut request, "Host", &host);
                }
                let mut resources: Vec<(&str, String)> = Vec::new();
                match op.shape {
                    Shape::S3Object => {
                        let delivery = actor == ActorClass::Service && !op.read_only;
                        let key = if delivery {
                            let date = format_event_time(time_ms);
                            let compact: String =
                                date.chars().filter(char::is_ascii_digit).take(12).collect();
                            format!(
                                "AWSLogs/{account}/vpcflowlogs/{region}/{}/{}/{}/{account}_vpcflowlogs_{region}_fl-0{}_{}T{}Z_{}.log.gz",
                                &date[0..4],
                                &date[5..7],
                                &date[8..10],
                                hex(hash(&[str_seed(account), 7]), 16),
                                &compact[..8],
                                &compact[8..12],
                                hex(rng.next_u64(), 8)
                            )
                        } else if op.read_only {
                            let object = self.object_table.sample(rng);
                            format!(
                                "data/2025/{:02}/part-{object:05}-{}.snappy.parquet",
                                object % 12 + 1,
                                hex(hash(&[object as u64]), 8)
                            )
                        } else {
                            format!("uploads/{}/{}.json", hex(rng.next_u64(), 8), uuid(rng))
                        };
                        field(&mut request, "key", &key);
                        if delivery {
                            field(&mut request, "x-amz-acl", "bucket-owner-full-control");
                            call.shared_event_id = Some(uuid(rng));
                        }
                        resources.push((
                            "AWS::S3::Object",
                            ["arn:aws:s3:::", bucket, "/", &key].concat(),
                        ));
                        resources.push(("AWS::S3::Bucket", ["arn:aws:s3:::", bucket].concat()));
                    }
                    Shape::S3Bucket => {
                        let subresource = match op.name {
                            "GetBucketAcl" => "acl",
                            "GetBucketLocation" => "location",
                            "ListObjects" => "list-type",
                            _ => "policy",
                        };
                        field(
                            &mut request,
                            subresource,
                            if subresource == "list-type" { "2" } else { "" },
                        );
                        if op.name == "ListObjects" {
                            field(&mut request, "prefix", "data/2025/");
                            field(&mut request, "encoding-type", "url");
                        }
                        if actor == ActorClass::Service {
                            call.shared_event_id = Some(uuid(rng));
                        }
                        resources.push(("AWS::S3::Bucket", format!("arn:aws:s3:::{bucket}")));
                    }
                    _ => {}
                }
                request.push('}');
                call.request = request;
                let bytes_out = if op.read_only && !failed {
                    rng.below(2_000_000) as u64
                } else {
                    0
                };
                let bytes_in = if !op.read_only && !failed {
                    rng.below(500_000) as u64
                } else {
                    0
                };
                let mut additional = String::with_capacity(256);
                additional.push('{');
                first_field(&mut additional, "SignatureVersion", "SigV4");
                field(&mut additional, "CipherSuite", "TLS_AES_128_GCM_SHA256");
                number_field(&mut additional, "bytesTransferredIn", bytes_in);
                field(&mut additional, "AuthenticationMethod", "AuthHeader");
                field(&mut additional, "x-amz-id-2", &base64ish(rng, 76));
                number_field(&mut additional, "bytesTransferredOut", bytes_out);
                additional.push('}');
                call.additional = Some(additional);
                if !resources.is_empty() {
                    let entries: Vec<(&str, &str)> = resources
                        .iter()
                        .map(|(kind, arn)| (*kind, arn.as_str()))
                        .collect();
                    call.resources = resources_json(account, &entries);
                }
                if call.tls_host.is_some() {
                    call.tls_host = Some(host);
                }
                if rng.chance(0.3) {
                    call.vpc_endpoint = Some(format!(
                        "vpce-0{}",
                        hex(hash(&[str_seed(account), 0xb]), 16)
                    ));
                }
            }
            Shape::Kms => {
                let key_index = self.small_table.sample(rng) as u64;
                let mut key_arn = String::with_capacity(96);
                key_arn.push_str("arn:aws:kms:");
                key_arn.push_str(region);
                key_arn.push(':');
                key_arn.push_str(account);
                key_arn.push_str(":key/");
                for (part, (prefix, len)) in [("", 8), ("-", 4), ("-4", 3), ("-8", 3), ("-", 12)]
                    .into_iter()
                    .enumerate()
                {
                    key_arn.push_str(prefix);
                    push_hex(&mut key_arn, hash(&[key_index, part as u64 + 1]), len);
                }
                let bucket = BUCKETS[self.bucket_table.sample(rng)];
                let mut request = String::with_capacity(300);
                request.push('{');
                if op.name == "Decrypt" {
                    first_field(&mut request, "encryptionAlgorithm", "SYMMETRIC_DEFAULT");
                } else {
                    first_field(&mut request, "keyId", &key_arn);
                    if op.name == "GenerateDataKey" {
                        field(&mut request, "keySpec", "AES_256");
                    }
                }
                request.push_str(",\"encryptionContext\":{");
                if rng.chance(0.5) {
                    first_field(
                        &mut request,
                        "aws:s3:arn",
                        &format!("arn:aws:s3:::{bucket}/data/{}", hex(rng.next_u64(), 12)),
                    );
                } else {
                    let secret = SECRETS[self.small_table.sample(rng) % SECRETS.len()];
                    first_field(
                        &mut request,
                        "SecretARN",
                        &format!(
                            "arn:aws:secretsmanager:{region}:{account}:secret:{secret}-{}",
                            &id16(str_seed(secret))[..6]
                        ),
                    );
                    field(&mut request, "SecretVersionId", &uuid(rng).to_uppercase());
                }
                request.push_str("}}");
                call.request = request;
                call.resources = resources_json(account, &[("AWS::KMS::Key", &key_arn)]);
            }
            Shape::AssumeRole => {
                let target = &ROLES[self.role_table.sample(rng)];
                let session = match actor {
                    ActorClass::Service => format!("{}", rng.next_u64() % 10_000_000_000),
                    _ => format!("session-{}", hex(rng.next_u64(), 8)),
                };
                let role_arn = format!("arn:aws:iam::{account}:role/{}", target.name);
                let assumed_arn = format!(
                    "arn:aws:sts::{account}:assumed-role/{}/{session}",
                    target.name
                );
                let mut request = String::with_capacity(200);
                request.push('{');
                first_field(&mut request, "roleArn", &role_arn);
                field(&mut request, "roleSessionName", &session);
                number_field(&mut request, "durationSeconds", 3600);
                request.push('}');
                call.request = request;
                if !failed {
                    let key = format!("ASIA{}", id16(rng.next_u64()));
                    let mut response = String::with_capacity(900);
                    response.push_str("{\"credentials\":{");
                    first_field(&mut response, "accessKeyId", &key);
                    field(&mut response, "sessionToken", &base64ish(rng, 360));
                    field(&mut response, "expiration", "Jun 2, 2025, 1:00:00 PM");
                    response.push_str("},\"assumedRoleUser\":{");
                    first_field(
                        &mut response,
                        "assumedRoleId",
                        &format!(
                            "AROA{}:{session}",
                            id16(hash(&[str_seed(account), str_seed(target.name), 3]))
                        ),
                    );
                    field(&mut response, "arn", &assumed_arn);
                    response.push_str("}}");
                    call.response = response;
                    call.resources = resources_json(
                        account,
                        &[
                            (
                                "AWS::IAM::AccessKey",
                                &format!("arn:aws:iam::{account}:accesskey/{key}"),
                            ),
                            ("AWS::STS::AssumedRole", &assumed_arn),
                            ("AWS::IAM::Role", &role_arn),
                        ],
                    );
                } else {
                    call.resources = resources_json(account, &[("AWS::IAM::Role", &role_arn)]);
                }
                call.tls_host = call
                    .tls_host
                    .as_ref()
                    .map(|_| format!("sts.{region}.amazonaws.com"));
            }
            Shape::NoParameters => {}
            Shape::Ec2Describe => {
                let mut request = String::with_capacity(300);
                request.push_str("{\"instancesSet\":{},\"filterSet\":{\"items\":[{\"name\":\"tag:Environment\",\"valueSet\":{\"items\":[{\"value\":\"prod\"}]}},{\"name\":\"instance-state-name\",\"valueSet\":{\"items\":[{\"value\":\"running\"},{\"value\":\"pending\"}]}}]}");
                let _ = write!(request, ",\"maxResults\":{}", 1000);
                request.push('}');
                call.request = request;
            }
            Shape::Ec2Instances => {
                let instance = format!("i-0{}", hex(rng.next_u64(), 16));
                call.request = ec2_instances_request(op.name, &instance, rng);
                if !failed {
                    call.response =
                        ec2_instances_response(op.name, &instance, account, region, time_ms, rng);
                }
                call.resources = resources_json(
                    account,
                    &[(
                        "AWS::EC2::Instance",
                        &format!("arn:aws:ec2:{region}:{account}:instance/{instance}"),
                    )],
                );
            }
            Shape::LambdaInvoke | Shape::LambdaFunction => {
                let function = FUNCTIONS[self.small_table.sample(rng)];
                let arn = format!("arn:aws:lambda:{region}:{account}:function:{function}");
                let mut request = String::with_capacity(200);
                request.push('{');
                first_field(
                    &mut request,
                    "functionName",
                    if op.shape == Shape::LambdaInvoke {
                        &arn
                    } else {
                        function
                    },
                );
                if op.shape == Shape::LambdaInvoke {
                    field(
                        &mut request,
                        "sourceArn",
                        &format!(
                            "arn:aws:sqs:{region}:{account}:{}",
                            QUEUES[rng.below(QUEUES.len())]
                        ),
                    );
                    call.additional = Some(format!("{{\"functionVersion\":\"{arn}:$LATEST\"}}"));
                }
                request.push('}');
                call.request = request;
                call.resources = resources_json(account, &[("AWS::Lambda::Function", &arn)]);
            }
            Shape::DynamoItem | Shape::DynamoTable => {
                let table = TABLES[self.small_table.sample(rng)];
                let arn = format!("arn:aws:dynamodb:{region}:{account}:table/{table}");
                let mut request = String::with_capacity(200);
                request.push('{');
                first_field(&mut request, "tableName", table);
                match op.name {
                    "Query" => {
                        field(
                            &mut request,
                            "keyConditionExpression",
                            "pk = :pk AND begins_with(sk, :sk)",
                        );
                        number_field(&mut request, "limit", 100);
                    }
                    "DescribeTable" => {}
                    _ => {
                        let _ = write!(
                            request,
                            ",\"key\":{{\"pk\":\"ORDER#{}\",\"sk\":\"ITEM#{}\"}}",
                            rng.below(1_000_000),
                            rng.below(20)
                        );
                    }
                }
                request.push('}');
                call.request = request;
                call.resources = resources_json(account, &[("AWS::DynamoDB::Table", &arn)]);
            }
            Shape::IamUser => {
                let user = user_name(self.user_table.sample(rng));
                call.request = format!("{{\"userName\":\"{user}\"}}");
                if op.name == "CreateAccessKey" && !failed {
                    call.response = format!(
                        "{{\"accessKey\":{{\"accessKeyId\":\"AKIA{}\",\"status\":\"Active\",\"userName\":\"{user}\",\"createDate\":\"{}\"}}}}",
                        id16(rng.next_u64()),
                        format_event_time(time_ms)
                    );
                }
                call.tls_host = call
                    .tls_host
                    .as_ref()
                    .map(|_| "iam.amazonaws.com".to_owned());
            }
            Shape::IamRole => {
                let role = ROLES[self.role_table.sample(rng)].name;
                call.request = if op.name == "AttachRolePolicy" {
                    format!(
                        "{{\"roleName\":\"{role}\",\"policyArn\":\"arn:aws:iam::aws:policy/ReadOnlyAccess\"}}"
                    )
                } else {
                    format!("{{\"roleName\":\"{role}\"}}")
                };
                call.tls_host = call
                    .tls_host
                    .as_ref()
                    .map(|_| "iam.amazonaws.com".to_owned());
            }
            Shape::LogStream => {
                let group = LOG_GROUPS[self.small_table.sample(rng) % LOG_GROUPS.len()];
                call.request = if op.name == "CreateLogStream" {
                    let date = format_event_time(time_ms);
                    format!(
                        "{{\"logGroupName\":\"{group}\",\"logStreamName\":\"{}/{}/{}/[$LATEST]{}\"}}",
                        &date[0..4],
                        &date[5..7],
                        &date[8..10],
                        hex(rng.next_u64(), 32)
                    )
                } else {
                    "{\"logGroupNamePrefix\":\"/aws/lambda/\",\"limit\":50}".to_owned()
                };
            }
            Shape::SsmParameter => {
                let parameter = PARAMETERS[self.small_table.sample(rng) % PARAMETERS.len()];
                call.request = format!("{{\"name\":\"{parameter}\",\"withDecryption\":true}}");
            }
            Shape::Secret => {
                let secret = SECRETS[self.small_table.sample(rng) % SECRETS.len()];
                call.request = format!(
                    "{{\"secretId\":\"arn:aws:secretsmanager:{region}:{account}:secret:{secret}-{}\"}}",
                    &id16(str_seed(secret))[..6]
                );
            }
            Shape::SqsMessage => {
                let queue = QUEUES[self.small_table.sample(rng) % QUEUES.len()];
                let url = format!("https://sqs.{region}.amazonaws.com/{account}/{queue}");
                call.request = if op.name == "SendMessage" {
                    format!(
                        "{{\"queueUrl\":\"{url}\",\"messageBody\":\"HIDDEN_DUE_TO_SECURITY_REASONS\"}}"
                    )
                } else {
                    format!(
                        "{{\"queueUrl\":\"{url}\",\"maxNumberOfMessages\":10,\"waitTimeSeconds\":20,\"attributeNames\":[\"All\"]}}"
                    )
                };
                if op.name == "SendMessage" && !failed {
                    call.response = format!(
                        "{{\"mD5OfMessageBody\":\"{}\",\"messageId\":\"{}\"}}",
                        hex(rng.next_u64(), 32),
                        uuid(rng)
                    );
                }
                call.resources = resources_json(
                    account,
                    &[(
                        "AWS::SQS::Queue",
                        &format!("arn:aws:sqs:{region}:{account}:{queue}"),
                    )],
                );
            }
            Shape::Metrics => {
                call.request = if op.name == "GetMetricData" {
                    "{\"metricDataQueries\":[{\"id\":\"cpu\",\"metricStat\":{\"metric\":{\"namespace\":\"AWS/EC2\",\"metricName\":\"CPUUtilization\",\"dimensions\":[{\"name\":\"AutoScalingGroupName\",\"value\":\"web-fleet-asg\"}]},\"period\":300,\"stat\":\"Average\"},\"returnData\":true}],\"startTime\":\"Jun 2, 2025, 9:00:00 AM\",\"endTime\":\"Jun 2, 2025, 10:00:00 AM\"}".to_owned()
                } else {
                    "{\"stateValue\":\"ALARM\",\"maxRecords\":100}".to_owned()
                };
            }
            Shape::ConsoleLogin => {
                call.event_type = "AwsConsoleSignIn";
                let success = !failed;
                call.error = (!success)
                    .then(|| ("Failed authentication", "Failed authentication".to_owned()));
                call.response = format!(
                    "{{\"ConsoleLogin\":\"{}\"}}",
                    if success { "Success" } else { "Failure" }
                );
                call.additional = Some(
                    "{\"LoginTo\":\"https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true\",\"MobileVersion\":\"No\",\"MFAUsed\":\"Yes\"}".to_owned(),
                );
                call.request_id = String::new();
                call.tls_host = call
                    .tls_host
                    .as_ref()
                    .map(|_| "signin.aws.amazon.com".to_owned());
            }
            Shape::CloudFormation => {
                call.request = "{\"stackName\":\"web-fleet\"}".to_owned();
            }
            Shape::Ecr => {
                call.request = if op.name == "BatchGetImage" {
                    call.resources = resources_json(
                        account,
                        &[(
                            "AWS::ECR::Repository",
                            &format!("arn:aws:ecr:{region}:{account}:repository/payments"),
                        )],
                    );
                    format!(
                        "{{\"repositoryName\":\"payments\",\"imageIds\":[{{\"imageTag\":\"v1.{}.0\"}}],\"registryId\":\"{account}\",\"acceptedMediaTypes\":[\"application/vnd.docker.distribution.manifest.v2+json\",\"application/vnd.oci.image.manifest.v1+json\"]}}",
                        rng.below(60)
                    )
                } else {
                    format!("{{\"registryIds\":[\"{account}\"]}}")
                };
            }
        }
        if call.request_id.is_empty() && op.shape != Shape::ConsoleLogin {
            call.request_id = uuid(rng);
        }
        call
    }
}

/// What a call's error message and resource sometimes need to know about the caller.
pub(crate) struct Principal {
    arn: String,
    misconfigured: bool,
}

pub(crate) fn ec2_instances_request(name: &str, instance: &str, rng: &mut Rng) -> String {
    let mut request = String::with_capacity(600);
    match name {
        "RunInstances" => {
            let _ = write!(
                request,
                "{{\"instancesSet\":{{\"items\":[{{\"imageId\":\"ami-0{}\",\"minCount\":1,\"maxCount\":1}}]}},\"instanceType\":\"t3.medium\",\"blockDeviceMapping\":{{}},\"monitoring\":{{\"enabled\":false}},\"disableApiTermination\":false,\"disableApiStop\":false,\"clientToken\":\"{}\",\"iamInstanceProfile\":{{\"name\":\"web-instance-profile\"}},\"ebsOptimized\":false,\"tagSpecificationSet\":{{\"items\":[{{\"resourceType\":\"instance\",\"tags\":[{{\"key\":\"Name\",\"value\":\"web\"}},{{\"key\":\"Environment\",\"value\":\"prod\"}}]}}]}}}}",
                hex(hash(&[0xa31]), 16),
                uuid(rng)
            );
        }
        "CreateTags" => {
            let _ = write!(
                request,
                "{{\"resourcesSet\":{{\"items\":[{{\"resourceId\":\"{instance}\"}}]}},\"tagSet\":{{\"items\":[{{\"key\":\"Owner\",\"value\":\"platform-team\"}}]}}}}"
            );
        }
        _ => {
            let _ = write!(
                request,
                "{{\"instancesSet\":{{\"items\":[{{\"instanceId\":\"{instance}\"}}]}}}}"
            );
        }
    }
    request
}

pub(crate) fn ec2_instances_response(
    name: &str,
    instance: &str,
    account: &str,
    region: &str,
    time_ms: i64,
    rng: &mut Rng,
) -> String {
    let mut response = String::with_capacity(900);
    let request_id = uuid(rng);
    match name {
        "RunInstances" => {
            let ip_seed = rng.next_u64();
            let _ = write!(
                response,
                "{{\"requestId\":\"{request_id}\",\"reservationId\":\"r-0{}\",\"ownerId\":\"{account}\",\"groupSet\":{{}},\"instancesSet\":{{\"items\":[{{\"instanceId\":\"{instance}\",\"imageId\":\"ami-0{}\",\"currentInstanceBootMode\":\"uefi\",\"instanceState\":{{\"code\":0,\"name\":\"pending\"}},\"privateDnsName\":\"ip-10-0-{}-{}.ec2.internal\",\"amiLaunchIndex\":0,\"productCodes\":{{}},\"instanceType\":\"t3.medium\",\"launchTime\":{time_ms},\"placement\":{{\"availabilityZone\":\"{region}a\",\"tenancy\":\"default\"}},\"monitoring\":{{\"state\":\"disabled\"}},\"subnetId\":\"subnet-0{}\",\"vpcId\":\"vpc-0{}\",\"privateIpAddress\":\"10.0.{}.{}\"}}]}}}}",
                hex(rng.next_u64(), 16),
                hex(hash(&[0xa31]), 16),
                ip_seed % 256,
                octet(ip_seed >> 8),
                hex(hash(&[str_seed(account), 0x5b]), 16),
                hex(hash(&[str_seed(account), 0x7c]), 16),
                ip_seed % 256,
                octet(ip_seed >> 8),
            );
        }
        "TerminateInstances" => {
            let _ = write!(
                response,
                "{{\"requestId\":\"{request_id}\",\"instancesSet\":{{\"items\":[{{\"instanceId\":\"{instance}\",\"currentState\":{{\"code\":32,\"name\":\"shutting-down\"}},\"previousState\":{{\"code\":16,\"name\":\"running\"}}}}]}}}}"
            );
        }
        _ => {
            let _ = write!(
                response,
                "{{\"requestId\":\"{request_id}\",\"_return\":true}}"
            );
        }
    }
    response
}
