//! An event data store's advanced event selectors as a DataFusion filter: the store's
//! table is a view of every event of its account that a selector admits.
//!
//! The semantics are CloudTrail's, the same as a trail's (`opentrail_trails::selectors`):
//! an event is admitted when any selector matches; a selector matches when every field
//! condition does; a condition passes a value when some positive operator (Equals,
//! StartsWith, EndsWith) matches, if there is one, and no negative operator does. A
//! missing field reads as the empty string; `resources.*` fields pass when any resource's
//! value passes (or the empty string when the event has no resources).
//!
//! Compiling to an expression rather than testing records keeps the columns path: a
//! selector on `eventCategory` reads one Parquet column, not the record.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, cast,
    col, lit,
};
use serde::{Deserialize, Serialize};

use crate::schema::timestamp_type;

/// One advanced event selector: a name, and conditions that must all pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub field_selectors: Vec<FieldCondition>,
}

/// A condition on one field (`eventCategory`, `resources.ARN`…).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldCondition {
    pub field: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starts_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ends_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_equals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_starts_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ends_with: Vec<String>,
}

impl FieldCondition {
    /// Whether one value passes (the same rule as a trail's field selector).
    pub fn passes(&self, value: &str) -> bool {
        let has_positive =
            !(self.equals.is_empty() && self.starts_with.is_empty() && self.ends_with.is_empty());
        let positive = self.equals.iter().any(|operand| value == operand)
            || self
                .starts_with
                .iter()
                .any(|operand| value.starts_with(operand.as_str()))
            || self
                .ends_with
                .iter()
                .any(|operand| value.ends_with(operand.as_str()));
        let negative = self.not_equals.iter().any(|operand| value == operand)
            || self
                .not_starts_with
                .iter()
                .any(|operand| value.starts_with(operand.as_str()))
            || self
                .not_ends_with
                .iter()
                .any(|operand| value.ends_with(operand.as_str()));
        (!has_positive || positive) && !negative
    }

    /// The condition over a text expression (missing reads as `''`).
    fn over_text(&self, value: Expr) -> Expr {
        use datafusion::functions::string::expr_fn::{ends_with, starts_with};
        let value = datafusion::functions::core::expr_fn::coalesce(vec![value, lit("")]);
        let literals = |operands: &[String]| operands.iter().map(lit).collect::<Vec<_>>();
        let mut positives = Vec::new();
        if !self.equals.is_empty() {
            positives.push(value.clone().in_list(literals(&self.equals), false));
        }
        positives.extend(
            self.starts_with
                .iter()
                .map(|operand| starts_with(value.clone(), lit(operand))),
        );
        positives.extend(
            self.ends_with
                .iter()
                .map(|operand| ends_with(value.clone(), lit(operand))),
        );
        let mut negatives = Vec::new();
        if !self.not_equals.is_empty() {
            negatives.push(value.clone().in_list(literals(&self.not_equals), false));
        }
        negatives.extend(
            self.not_starts_with
                .iter()
                .map(|operand| starts_with(value.clone(), lit(operand))),
        );
        negatives.extend(
            self.not_ends_with
                .iter()
                .map(|operand| ends_with(value.clone(), lit(operand))),
        );
        let positive = any_of(positives).unwrap_or_else(|| lit(true));
        match any_of(negatives) {
            Some(negative) => positive.and(Expr::Not(Box::new(negative))),
            None => positive,
        }
    }
}

fn any_of(exprs: Vec<Expr>) -> Option<Expr> {
    exprs.into_iter().reduce(Expr::or)
}

fn all_of(exprs: Vec<Expr>) -> Option<Expr> {
    exprs.into_iter().reduce(Expr::and)
}

/// The filter admitting what `selectors` admit, and only events whose `eventtime` is at or
/// after `min_event_time_ms` (the store's retention). `None` when nothing needs filtering.
pub(crate) fn table_filter(
    selectors: &[EventSelector],
    min_event_time_ms: Option<i64>,
) -> Option<Expr> {
    let mut parts = Vec::new();
    if !selectors.is_empty() {
        let admitted = selectors
            .iter()
            .map(|selector| {
                all_of(
                    selector
                        .field_selectors
                        .iter()
                        .map(condition_expr)
                        .collect(),
                )
                .unwrap_or_else(|| lit(true))
            })
            .collect();
        parts.extend(any_of(admitted));
    }
    if let Some(floor) = min_event_time_ms {
        let floor = ScalarValue::TimestampMillisecond(Some(floor), Some("UTC".into()));
        debug_assert_eq!(floor.data_type(), timestamp_type());
        parts.push(col("eventtime").gt_eq(lit(floor)));
    }
    all_of(parts)
}

fn condition_expr(condition: &FieldCondition) -> Expr {
    use datafusion::functions::core::expr_fn::get_field;
    let text = |column: &str| col(column);
    match condition.field.as_str() {
        "eventCategory" => condition.over_text(text("eventcategory")),
        "eventSource" => condition.over_text(text("eventsource")),
        "eventName" => condition.over_text(text("eventname")),
        "eventType" => condition.over_text(text("eventtype")),
        "errorCode" => condition.over_text(text("errorcode")),
        "vpcEndpointId" => condition.over_text(text("vpcendpointid")),
        "sessionCredentialFromConsole" => condition.over_text(text("sessioncredentialfromconsole")),
        "userIdentity.arn" => condition.over_text(get_field(col("useridentity"), "arn")),
        "readOnly" => condition.over_text(cast(col("readonly"), DataType::Utf8)),
        "resources.type" => resources_condition(condition, ResourceField::Type),
        "resources.ARN" => resources_condition(condition, ResourceField::Arn),
        // Validation refuses every other field; admit nothing rather than everything.
        _ => lit(false),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ResourceField {
    Type,
    Arn,
}

fn resources_condition(condition: &FieldCondition, field: ResourceField) -> Expr {
    let function = ResourcesCondition {
        field,
        condition: condition.clone(),
        signature: Signature::any(1, Volatility::Immutable),
    };
    ScalarUDF::new_from_impl(function).call(vec![col("resources")])
}

/// Whether any resource's `type` (or `arn`, falling back to `arnprefix`) passes a
/// condition: DataFusion has no "any element" over a list of structs.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ResourcesCondition {
    field: ResourceField,
    condition: FieldCondition,
    signature: Signature,
}

impl ScalarUDFImpl for ResourcesCondition {
    fn name(&self) -> &str {
        match self.field {
            ResourceField::Type => "event_selector_resources_type",
            ResourceField::Arn => "event_selector_resources_arn",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows;
        let [resources] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes the resources column",
                self.name()
            )));
        };
        let resources = resources.to_array(rows)?;
        Ok(ColumnarValue::Array(self.evaluate(&resources)?))
    }
}

impl ResourcesCondition {
    fn evaluate(&self, resources: &ArrayRef) -> datafusion::common::Result<ArrayRef> {
        let lists = resources.as_list_opt::<i32>().ok_or_else(|| {
            DataFusionError::Internal("resources is not a list column".to_owned())
        })?;
        let items = lists.values().as_struct_opt().ok_or_else(|| {
            DataFusionError::Internal("resources is not a list of structs".to_owned())
        })?;
        let child = |name: &str| {
            items
                .column_by_name(name)
                .and_then(|column| column.as_any().downcast_ref::<StringArray>())
        };
        let (primary, fallback) = match self.field {
            ResourceField::Type => (child("type"), None),
            ResourceField::Arn => (child("arn"), child("arnprefix")),
        };
        let value_at = |index: usize| -> Option<&str> {
            text_at(primary, index).or_else(|| text_at(fallback, index))
        };
        let mut passes = BooleanBuilder::with_capacity(lists.len());
        for row in 0..lists.len() {
            let range = if lists.is_null(row) {
                0..0
            } else {
                let offsets = lists.value_offsets();
                offsets[row] as usize..offsets[row + 1] as usize
            };
            let mut values = range.filter_map(value_at).peekable();
            let admitted = if values.peek().is_none() {
                self.condition.passes("")
            } else {
                values.any(|value| self.condition.passes(value))
            };
            passes.append_value(admitted);
        }
        Ok(Arc::new(passes.finish()))
    }
}

fn text_at(column: Option<&StringArray>, index: usize) -> Option<&str> {
    let column = column?;
    (!column.is_null(index)).then(|| column.value(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(field: &str) -> FieldCondition {
        FieldCondition {
            field: field.to_owned(),
            ..FieldCondition::default()
        }
    }

    #[test]
    fn a_condition_needs_a_positive_match_and_no_negative_one() {
        let mut starts = condition("eventName");
        starts.starts_with = vec!["Delete".into()];
        starts.not_equals = vec!["DeleteTrail".into()];
        assert!(starts.passes("DeleteBucket"));
        assert!(!starts.passes("DeleteTrail"));
        assert!(!starts.passes("CreateBucket"));
        let mut only_negative = condition("eventName");
        only_negative.not_ends_with = vec!["Object".into()];
        assert!(only_negative.passes("CreateBucket"));
        assert!(!only_negative.passes("GetObject"));
    }

    #[test]
    fn no_selectors_and_no_floor_filter_nothing() {
        assert!(table_filter(&[], None).is_none());
        assert!(table_filter(&[], Some(0)).is_some());
    }
}
