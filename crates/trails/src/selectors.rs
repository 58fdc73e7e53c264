//! Which events a trail delivers: its scope (accounts, regions, global services), its
//! logging periods, and its event selectors.
//!
//! # Basic selectors (`EventSelectors`)
//!
//! An event is logged when **any** selector admits it:
//! - a management event (`eventCategory` `Management`): the selector includes management
//!   events, its `ReadWriteType` admits the event's `readOnly`, and the event's
//!   `eventSource` is not in `ExcludeManagementEventSources`;
//! - a data event (`eventCategory` `Data`): its `ReadWriteType` admits the event, and one
//!   of its `DataResources` has the `type` of one of the event's `resources[]` and a value
//!   that is a prefix of that resource's `ARN` (so `arn:aws:s3` selects every object and
//!   `arn:aws:s3:::bucket/` every object of one bucket);
//! - other categories (Insight, NetworkActivity, ActivityAuditLog) are never admitted.
//!
//! A trail without selectors behaves as one basic selector: all management events.
//!
//! # Insights
//!
//! Insights records (`eventCategory` `Insight`, the store's Insight lane) never go into log
//! files, whatever the event selectors say. A trail with Insights selectors delivers them
//! in Insights files instead ([`TrailFilter::for_insights`]): the records of its own
//! account, in its regions, whose `insightDetails.insightType` it selected. Insights
//! records carry no event category of their own, so a selector's `EventCategories` decide
//! what the analysis looks at, not which records a trail delivers.
//!
//! # Advanced selectors
//!
//! An event is logged when **any** advanced selector matches; a selector matches when
//! **every** field selector matches. A field selector matches when some value of its field
//! passes: at least one of its `Equals`/`StartsWith`/`EndsWith` operands matches (when it
//! has any), and none of its `NotEquals`/`NotStartsWith`/`NotEndsWith` operands does.
//! Comparisons are exact and case-sensitive; there are no wildcards.
//!
//! Field values: `eventCategory`, `eventSource`, `eventName`, `eventType`, `errorCode`,
//! `vpcEndpointId`, `sessionCredentialFromConsole` and `userIdentity.arn` as recorded;
//! `readOnly` as `"true"`/`"false"`; `resources.type` and `resources.ARN` once per
//! `resources[]` entry (`ARNPrefix` stands in for a missing `ARN`). An absent field has
//! the single value `""`, which no operand (at least one character) equals, starts or ends,
//! so `Not…` conditions hold for it and positive ones do not.
//!
//! # Scope
//!
//! - Accounts: a trail of the default account (the operator's) delivers every account's
//!   events, each to its own `AWSLogs/<account>/` folder; any other trail delivers only its
//!   own account's events (`recipientAccountId`).
//! - Regions: a single-region trail delivers events whose `awsRegion` is its home region;
//!   a multi-region trail delivers every region's.
//! - Global services: with `IncludeGlobalServiceEvents` off, events of IAM, STS, sign-in,
//!   CloudFront and Route 53 recorded in `us-east-1` (where CloudTrail records global
//!   services) are left out.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde_json::value::RawValue;

use crate::model::{
    AdvancedSelector, BasicSelector, EventSelectors, FieldSelector, LoggingHistory, Trail,
};

/// Services whose events CloudTrail records as global, in `us-east-1`.
pub const GLOBAL_SERVICE_EVENT_SOURCES: [&str; 5] = [
    "iam.amazonaws.com",
    "sts.amazonaws.com",
    "signin.amazonaws.com",
    "cloudfront.amazonaws.com",
    "route53.amazonaws.com",
];
/// The region CloudTrail records global service events in.
pub const GLOBAL_SERVICE_REGION: &str = "us-east-1";
/// The `eventCategory` of Insights records.
pub const INSIGHT_CATEGORY: &str = "Insight";

/// The members of a stored record that filtering and file naming read, borrowed from the
/// record's JSON text. Everything else is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
pub struct EventView<'a> {
    #[serde(rename = "eventCategory", default, borrow)]
    pub event_category: Option<Cow<'a, str>>,
    #[serde(rename = "eventSource", default, borrow)]
    pub event_source: Option<Cow<'a, str>>,
    #[serde(rename = "eventName", default, borrow)]
    pub event_name: Option<Cow<'a, str>>,
    #[serde(rename = "eventType", default, borrow)]
    pub event_type: Option<Cow<'a, str>>,
    #[serde(rename = "eventTime", default, borrow)]
    pub event_time: Option<Cow<'a, str>>,
    #[serde(rename = "errorCode", default, borrow)]
    pub error_code: Option<Cow<'a, str>>,
    #[serde(rename = "awsRegion", default, borrow)]
    pub aws_region: Option<Cow<'a, str>>,
    #[serde(rename = "recipientAccountId", default, borrow)]
    pub recipient_account_id: Option<Cow<'a, str>>,
    #[serde(rename = "readOnly", default)]
    pub read_only: LenientBool,
    #[serde(rename = "vpcEndpointId", default, borrow)]
    pub vpc_endpoint_id: LenientText<'a>,
    #[serde(rename = "sessionCredentialFromConsole", default, borrow)]
    pub session_credential_from_console: LenientText<'a>,
    #[serde(rename = "userIdentity", default, borrow)]
    pub user_identity: Option<UserIdentityView<'a>>,
    #[serde(default, borrow)]
    pub resources: Option<Vec<ResourceView<'a>>>,
    /// Kept as text and read only for Insights records ([`EventView::insight_type`]), so
    /// other records pay nothing for it and an odd value never makes one unreadable.
    #[serde(rename = "insightDetails", default, borrow)]
    pub insight_details: Option<&'a RawValue>,
}

/// The member of `insightDetails` delivery reads.
#[derive(Debug, Default, Deserialize)]
struct InsightDetailsView<'a> {
    #[serde(rename = "insightType", default, borrow)]
    insight_type: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserIdentityView<'a> {
    #[serde(default, borrow)]
    pub arn: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ResourceView<'a> {
    #[serde(rename = "ARN", default, borrow)]
    pub arn: Option<Cow<'a, str>>,
    #[serde(rename = "ARNPrefix", default, borrow)]
    pub arn_prefix: Option<Cow<'a, str>>,
    #[serde(rename = "type", default, borrow)]
    pub resource_type: Option<Cow<'a, str>>,
}

impl<'a> EventView<'a> {
    /// Parses the members filtering needs from a stored record.
    pub fn parse(json: &'a str) -> Result<EventView<'a>, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn category(&self) -> &str {
        self.event_category.as_deref().unwrap_or("Management")
    }

    pub fn account_id(&self) -> &str {
        self.recipient_account_id.as_deref().unwrap_or_default()
    }

    pub fn region(&self) -> &str {
        self.aws_region.as_deref().unwrap_or_default()
    }

    /// Whether this is an Insights record (the store's Insight lane).
    pub fn is_insight(&self) -> bool {
        self.category() == INSIGHT_CATEGORY
    }

    /// `insightDetails.insightType`, when present and a string.
    pub fn insight_type(&self) -> Option<Cow<'a, str>> {
        let details: InsightDetailsView<'a> =
            serde_json::from_str(self.insight_details?.get()).ok()?;
        details.insight_type
    }

    /// `eventTime` in milliseconds, when it parses as RFC 3339.
    pub fn event_time_ms(&self) -> Option<i64> {
        let text = self.event_time.as_deref()?;
        text.parse::<jiff::Timestamp>()
            .ok()
            .map(|timestamp| timestamp.as_millisecond())
    }

    fn resources(&self) -> &[ResourceView<'a>] {
        self.resources.as_deref().unwrap_or_default()
    }

    /// Every value of an advanced-selector field (see the module docs); `None` for a field
    /// OpenTrail does not know, which validation rejects before it gets here.
    pub fn field_values(&self, field: &str) -> Option<Vec<&str>> {
        fn single(value: Option<&str>) -> Option<Vec<&str>> {
            Some(vec![value.unwrap_or_default()])
        }
        match field {
            "eventCategory" => Some(vec![self.category()]),
            "eventSource" => single(self.event_source.as_deref()),
            "eventName" => single(self.event_name.as_deref()),
            "eventType" => single(self.event_type.as_deref()),
            "errorCode" => single(self.error_code.as_deref()),
            "vpcEndpointId" => single(self.vpc_endpoint_id.0.as_deref()),
            "sessionCredentialFromConsole" => {
                single(self.session_credential_from_console.0.as_deref())
            }
            "userIdentity.arn" => single(
                self.user_identity
                    .as_ref()
                    .and_then(|identity| identity.arn.as_deref()),
            ),
            "readOnly" => single(self.read_only.0.map(|read_only| match read_only {
                true => "true",
                false => "false",
            })),
            "resources.type" => {
                Some(self.resource_values(|resource| resource.resource_type.as_deref()))
            }
            "resources.ARN" => Some(self.resource_values(|resource| {
                resource.arn.as_deref().or(resource.arn_prefix.as_deref())
            })),
            _ => None,
        }
    }

    fn resource_values<'s>(
        &'s self,
        value_of: impl Fn(&'s ResourceView<'a>) -> Option<&'s str>,
    ) -> Vec<&'s str> {
        let values: Vec<&str> = self.resources().iter().filter_map(value_of).collect();
        if values.is_empty() { vec![""] } else { values }
    }
}

/// `readOnly` as CloudTrail records it (a boolean); the strings `"true"`/`"false"`, which
/// OpenTrail's ingest also accepts, read the same.
#[derive(Debug, Default, Clone, Copy)]
pub struct LenientBool(pub Option<bool>);

impl<'de> Deserialize<'de> for LenientBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenientBoolVisitor;
        impl<'de> Visitor<'de> for LenientBoolVisitor {
            type Value = LenientBool;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<LenientBool, E> {
                Ok(LenientBool(Some(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<LenientBool, E> {
                Ok(LenientBool(match value {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                }))
            }
            fn visit_unit<E: de::Error>(self) -> Result<LenientBool, E> {
                Ok(LenientBool(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<LenientBool, E> {
                Ok(LenientBool(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<LenientBool, E> {
                Ok(LenientBool(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<LenientBool, E> {
                Ok(LenientBool(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<LenientBool, E> {
                Ok(LenientBool(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<LenientBool, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LenientBool(None))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<LenientBool, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LenientBool(None))
            }
        }
        deserializer.deserialize_any(LenientBoolVisitor)
    }
}

/// A member that ingest does not validate: its text when it is a string or a boolean,
/// otherwise absent. (`sessionCredentialFromConsole` is the string `"true"` in CloudTrail
/// records; some producers send a boolean.)
#[derive(Debug, Default)]
pub struct LenientText<'a>(pub Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for LenientText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenientTextVisitor;
        impl<'de> Visitor<'de> for LenientTextVisitor {
            type Value = LenientText<'de>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(LenientText(Some(Cow::Borrowed(value))))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(LenientText(Some(Cow::Owned(value.to_owned()))))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
                Ok(LenientText(Some(Cow::Borrowed(if value {
                    "true"
                } else {
                    "false"
                }))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LenientText(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LenientText(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(LenientText(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(LenientText(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(LenientText(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LenientText(None))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LenientText(None))
            }
        }
        deserializer.deserialize_any(LenientTextVisitor)
    }
}

/// Whether a basic selector admits an event.
pub fn basic_selector_admits(selector: &BasicSelector, event: &EventView<'_>) -> bool {
    let read_only = event.read_only.0;
    match event.category() {
        "Management" => {
            selector.include_management_events
                && selector.read_write_type.admits(read_only)
                && !selector
                    .exclude_management_event_sources
                    .iter()
                    .any(|source| Some(source.as_str()) == event.event_source.as_deref())
        }
        "Data" => {
            selector.read_write_type.admits(read_only)
                && selector.data_resources.iter().any(|data_resource| {
                    event.resources().iter().any(|resource| {
                        let arn = resource.arn.as_deref().or(resource.arn_prefix.as_deref());
                        resource.resource_type.as_deref()
                            == Some(data_resource.resource_type.as_str())
                            && arn.is_some_and(|arn| {
                                data_resource
                                    .values
                                    .iter()
                                    .any(|prefix| arn.starts_with(prefix.as_str()))
                            })
                    })
                })
        }
        _ => false,
    }
}

/// Whether one value passes a field selector's operators.
pub fn field_value_passes(selector: &FieldSelector, value: &str) -> bool {
    let has_positive = !(selector.equals.is_empty()
        && selector.starts_with.is_empty()
        && selector.ends_with.is_empty());
    let positive = selector.equals.iter().any(|operand| value == operand)
        || selector
            .starts_with
            .iter()
            .any(|operand| value.starts_with(operand.as_str()))
        || selector
            .ends_with
            .iter()
            .any(|operand| value.ends_with(operand.as_str()));
    let negative = selector.not_equals.iter().any(|operand| value == operand)
        || selector
            .not_starts_with
            .iter()
            .any(|operand| value.starts_with(operand.as_str()))
        || selector
            .not_ends_with
            .iter()
            .any(|operand| value.ends_with(operand.as_str()));
    (!has_positive || positive) && !negative
}

/// Whether an advanced selector matches an event: every field selector matches.
pub fn advanced_selector_matches(selector: &AdvancedSelector, event: &EventView<'_>) -> bool {
    selector.field_selectors.iter().all(|field_selector| {
        event
            .field_values(&field_selector.field)
            .is_some_and(|values| {
                values
                    .iter()
                    .any(|value| field_value_passes(field_selector, value))
            })
    })
}

/// Whether a trail's selectors admit an event.
pub fn selectors_admit(selectors: &EventSelectors, event: &EventView<'_>) -> bool {
    match selectors {
        EventSelectors::Default => EventSelectors::default_basic()
            .iter()
            .any(|selector| basic_selector_admits(selector, event)),
        EventSelectors::Basic(basic) => basic
            .iter()
            .any(|selector| basic_selector_admits(selector, event)),
        EventSelectors::Advanced(advanced) => advanced
            .iter()
            .any(|selector| advanced_selector_matches(selector, event)),
    }
}

/// Everything that decides whether a trail delivers an event, taken from one version of
/// the trail. Cheap to build; rebuilt whenever the trail changes.
#[derive(Debug, Clone)]
pub struct TrailFilter {
    /// `None`: every account (a trail of the default account).
    account_id: Option<String>,
    /// `None`: every region (a multi-region trail).
    region: Option<String>,
    include_global_service_events: bool,
    selection: Selection,
    logging: LoggingHistory,
}

/// What a filter picks among the records in scope.
#[derive(Debug, Clone)]
enum Selection {
    /// Log files: what the event selectors admit (never Insights records).
    Events(EventSelectors),
    /// Insights files: Insights records of these `insightType`s.
    Insights(Vec<String>),
}

/// What filtering decided about one log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Delivered, into the stream of this account and region.
    Deliver { account_id: String, region: String },
    /// Not delivered (outside a logging period, out of scope, or not selected).
    Skip,
    /// The stored record does not parse; it is skipped and counted.
    Unreadable(String),
}

impl TrailFilter {
    /// What the trail's log files (and streams) hold.
    pub fn new(trail: &Trail, default_account_id: &str) -> TrailFilter {
        TrailFilter {
            account_id: (trail.account_id != default_account_id).then(|| trail.account_id.clone()),
            region: (!trail.settings.is_multi_region_trail).then(|| trail.home_region.clone()),
            include_global_service_events: trail.settings.include_global_service_events,
            selection: Selection::Events(trail.selectors.clone()),
            logging: trail.logging.clone(),
        }
    }

    /// What the trail's Insights files hold: the Insights records of its own account (the
    /// analysis runs per account of a trail with Insights selectors), in its regions, of
    /// the types it selected, accepted while it was logging.
    pub fn for_insights(trail: &Trail) -> TrailFilter {
        TrailFilter {
            account_id: Some(trail.account_id.clone()),
            region: (!trail.settings.is_multi_region_trail).then(|| trail.home_region.clone()),
            include_global_service_events: true,
            selection: Selection::Insights(
                trail
                    .insight_selectors
                    .iter()
                    .map(|selector| selector.insight_type.clone())
                    .collect(),
            ),
            logging: trail.logging.clone(),
        }
    }

    pub fn logging(&self) -> &LoggingHistory {
        &self.logging
    }

    /// Decides one log entry. Entries outside every logging period are skipped without
    /// parsing their JSON.
    pub fn decide(&self, seq: u64, json: &str) -> Decision {
        if !self.logging.covers(seq) {
            return Decision::Skip;
        }
        let event = match EventView::parse(json) {
            Ok(event) => event,
            Err(error) => return Decision::Unreadable(error.to_string()),
        };
        if self.admits(&event) {
            Decision::Deliver {
                account_id: event.account_id().to_owned(),
                region: event.region().to_owned(),
            }
        } else {
            Decision::Skip
        }
    }

    /// Scope and selection, without the logging periods.
    pub fn admits(&self, event: &EventView<'_>) -> bool {
        if let Some(account_id) = &self.account_id
            && event.account_id() != account_id
        {
            return false;
        }
        if let Some(region) = &self.region
            && event.region() != region
        {
            return false;
        }
        match &self.selection {
            Selection::Events(selectors) => {
                if event.is_insight() {
                    return false;
                }
                if !self.include_global_service_events && is_global_service_event(event) {
                    return false;
                }
                selectors_admit(selectors, event)
            }
            Selection::Insights(insight_types) => {
                event.is_insight()
                    && event.insight_type().is_some_and(|insight_type| {
                        insight_types
                            .iter()
                            .any(|selected| selected.as_str() == insight_type)
                    })
            }
        }
    }
}

/// Whether a trail with these selectors logs management events; with `writes`, write
/// management events. PutInsightSelectors needs them: `ApiCallRateInsight` on management
/// events analyses writes, `ApiErrorRateInsight` any management call.
pub fn logs_management_events(selectors: &EventSelectors, writes: bool) -> bool {
    match selectors {
        EventSelectors::Default => true,
        EventSelectors::Basic(basic) => basic.iter().any(|selector| {
            selector.include_management_events
                && (!writes || selector.read_write_type != crate::model::ReadWriteType::ReadOnly)
        }),
        EventSelectors::Advanced(advanced) => advanced.iter().any(|selector| {
            let management = selector.field_selectors.iter().any(|field| {
                field.field == "eventCategory"
                    && field.equals.iter().any(|value| value == "Management")
            });
            let read_only_only = selector.field_selectors.iter().any(|field| {
                field.field == "readOnly"
                    && !field.equals.is_empty()
                    && field.equals.iter().all(|value| value == "true")
            });
            management && (!writes || !read_only_only)
        }),
    }
}

/// Whether a trail with these selectors logs any data events (Insights on data events
/// need them).
pub fn logs_data_events(selectors: &EventSelectors) -> bool {
    match selectors {
        EventSelectors::Default => false,
        EventSelectors::Basic(basic) => basic
            .iter()
            .any(|selector| !selector.data_resources.is_empty()),
        EventSelectors::Advanced(advanced) => advanced.iter().any(|selector| {
            selector.field_selectors.iter().any(|field| {
                field.field == "eventCategory" && field.equals.iter().any(|value| value == "Data")
            })
        }),
    }
}

/// Whether CloudTrail would count this event as a global service event.
pub fn is_global_service_event(event: &EventView<'_>) -> bool {
    event.region() == GLOBAL_SERVICE_REGION
        && event
            .event_source
            .as_deref()
            .is_some_and(|source| GLOBAL_SERVICE_EVENT_SOURCES.contains(&source))
}
