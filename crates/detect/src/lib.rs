//! Detections: Sigma rules evaluated against CloudTrail records.
//!
//! Rules are Sigma YAML with `logsource: product: aws, service: cloudtrail`, as in the
//! public SigmaHQ `rules/cloud/aws/cloudtrail` set. Field names are the record's dotted
//! paths (`eventSource`, `userIdentity.type`, `requestParameters.bucketName`); a path
//! through an array matches when any element matches
//! (`requestParameters.ipPermissions.items.ipRanges.items.cidrIp`). Parsing and evaluation
//! are [rsigma](https://github.com/timescale/rsigma)'s (`rsigma-parser`, `rsigma-eval`);
//! this crate loads and screens rules, passes over the records no rule can fire without
//! parsing them, and parses each other record once, only as far as the rules read it.
//!
//! Around the rules, the live side: [`DetectionConsumer`] matches every acknowledged event
//! as a consumer of the log (cursor `detections`), [`AlertLog`] keeps each match durably,
//! [`AlertDelivery`] sends alerts to one [`AlertTarget`] (a signed webhook, syslog, an
//! NDJSON file), and [`Detections`] is what the server holds: the [`RuleCatalog`] of the
//! rules directory (reloaded when it changes) and of rules added through the API, some
//! of them disabled.
//!
//! ```
//! # fn main() -> Result<(), opentrail_detect::DetectError> {
//! let rules = opentrail_detect::RuleSet::from_yaml("bucket.yml", r#"
//! title: S3 bucket deleted
//! id: 9d3c1a55-0000-4000-8000-000000000001
//! level: high
//! logsource: {product: aws, service: cloudtrail}
//! detection:
//!     selection:
//!         eventSource: s3.amazonaws.com
//!         eventName: DeleteBucket
//!     condition: selection
//! "#)?;
//! let fired = rules.matches(r#"{"eventSource":"s3.amazonaws.com","eventName":"DeleteBucket"}"#)?;
//! assert_eq!(fired[0].rule_title, "S3 bucket deleted");
//! # Ok(()) }
//! ```
//!
//! # Supported
//!
//! Everything in a Sigma detection rule that judges one event: field values (lists are
//! OR, maps are AND), the modifiers `contains`, `startswith`, `endswith`, `all`, `re`
//! (with `i`, `m`, `s`), `cidr`, `exists`, `cased`, `fieldref` (compare with another
//! field of the same record), `gt`/`gte`/`lt`/`lte`/`neq`, the encodings (`base64`,
//! `base64offset`, `wide`, `windash`…), `null` values, keyword (field-less) searches, and
//! conditions with `and`, `or`, `not`, parentheses, `1 of selection*`, `all of them`.
//! Matching is Sigma's: case-insensitive unless `cased` or `re`.
//!
//! # Refused
//!
//! A refused rule is reported with its file and, where it can be told, its line, and
//! never runs; nothing is evaluated half-way.
//!
//! - **Correlation rules** (`correlation:` documents: `event_count`, `value_count`,
//!   `temporal`…), **aggregations** in a condition (`| count() by … > N`) and
//!   `timeframe`: they count or order events across a window, and this crate judges each
//!   event on its own.
//! - **Filter documents** (`filter:`), which rewrite other rules: put the exclusion in the
//!   rule's own condition.
//! - The **`expand`** modifier: its `%placeholders%` are filled by a processing pipeline,
//!   and OpenTrail has none.
//! - **Array blocks** (`field[any]:`, `field[all]:`): an rsigma extension, not Sigma.
//! - Rules **without an `id`**, or with an id another loaded rule has: alerts name their
//!   rule by id.
//! - Anything rsigma cannot parse or compile (unknown modifiers, bad regexes or CIDRs,
//!   conditions naming missing selections, invalid `level` or `status` values…).
//!
//! Rules for other log sources are not refused but skipped (and reported as such).
//!
//! **Invariant:** a file loads whole or not at all: one problem in a multi-document file
//! refuses all of it, since rsigma does not say which document a parse error belongs to.
//!
//! **Invariant:** [`RuleSet::matches`] parses the record at most once per call, whatever
//! the number of rules, and its answer equals evaluating every rule against the whole
//! record: the prefilter only passes over records on which no rule's witness holds.

mod acknowledgements;
mod alerts;
mod catalog;
mod consumer;
mod delivery;
mod error;
mod load;
mod locate;
mod prefilter;
mod record;
mod rule_set;
mod screen;
mod screening;
mod service;

pub use acknowledgements::{
    ACKNOWLEDGEMENTS_FILE_NAME, Acknowledged, Acknowledgement, Acknowledgements,
};
pub use alerts::{ALERT_LOG_FILE_NAME, Alert, AlertLog};
pub use catalog::{CatalogRefusal, CatalogRule, RuleCatalog, RuleOrigin};
pub use consumer::{
    DETECTIONS_CONSUMER, DetectionConsumer, DetectionFaults, ScanReport, SharedRules,
};
pub use delivery::{AlertDelivery, AlertTarget, DELIVERY_STATE_FILE_NAME, SIGNATURE_HEADER};
pub use error::{DetectError, RuleRefusal};
pub use rule_set::{Level, LoadedRules, RuleInfo, RuleMatch, RuleSet, Status};
pub use screening::{SCREENED_SEQS_MAX, Screening, Verdicts};
pub use service::{DetectionWorkers, Detections, DetectionsOptions};
