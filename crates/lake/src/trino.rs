//! Trino functions and forms CloudTrail Lake queries use that DataFusion lacks or spells
//! otherwise, so that samples copied from AWS's documentation run unchanged:
//!
//! - `element_at(map, key)` is the value (NULL when the key is missing); on a list it is
//!   the 1-based element, as before. DataFusion's own `element_at` on a map answers a list.
//! - `json_extract_scalar(json, '$.a.b[0]')`: a scalar at a simple JSONPath, as text.
//! - `from_iso8601_timestamp(text)` and `to_iso8601(timestamp)`.
//! - `date_add(unit, n, timestamp)` and `date_diff(unit, from, to)` for the units
//!   `millisecond` … `day` and `week`.
//! - `regexp_extract(text, pattern)` and `regexp_extract(text, pattern, group)`: the first
//!   match (or its group), NULL when nothing matches; patterns are the `regex` crate's
//!   syntax, which is Trino's (Java's) without look-around and back-references.
//! - `if(condition, value)` and `if(condition, value, otherwise)`, evaluated as a `CASE`.
//! - The aggregates `count_if(condition)`, `max_by(x, y)` and `min_by(x, y)`
//!   ([`aggregates`]).
//! - `CROSS JOIN UNNEST(list) AS t(element)`, lateral as in Trino ([`lateral_unnest`]).
//! - `.field` after a call or a subscript, `element_at(resources, 1).arn`
//!   ([`field_access`], applied to the text before parsing).

mod aggregates;
mod field_access;
mod lateral_unnest;

pub(crate) use field_access::subscript_field_access;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::{cast, kernels::zip::zip};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::type_coercion::other::get_coerce_type_for_case_expression;
use datafusion::logical_expr::{
    AggregateUDF, ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility, create_udf, when,
};
use datafusion::prelude::SessionContext;
use regex::Regex;

use crate::schema::timestamp_type;

/// Registers every function of this module in `context`.
pub(crate) fn register(context: &SessionContext) {
    context.register_udf(ScalarUDF::new_from_impl(ElementAt {
        signature: Signature::any(2, Volatility::Immutable),
    }));
    context.register_udf(create_udf(
        "json_extract_scalar",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(json_extract_scalar),
    ));
    context.register_udf(create_udf(
        "from_iso8601_timestamp",
        vec![DataType::Utf8],
        timestamp_type(),
        Volatility::Immutable,
        Arc::new(from_iso8601_timestamp),
    ));
    context.register_udf(create_udf(
        "to_iso8601",
        vec![timestamp_type()],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(to_iso8601),
    ));
    context.register_udf(create_udf(
        "date_add",
        vec![DataType::Utf8, DataType::Int64, timestamp_type()],
        timestamp_type(),
        Volatility::Immutable,
        Arc::new(date_add),
    ));
    context.register_udf(create_udf(
        "date_diff",
        vec![DataType::Utf8, timestamp_type(), timestamp_type()],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(date_diff),
    ));
    context.register_udf(ScalarUDF::new_from_impl(RegexpExtract {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8, DataType::Int64]),
            ],
            Volatility::Immutable,
        ),
    }));
    context.register_udf(ScalarUDF::new_from_impl(If {
        signature: Signature::user_defined(Volatility::Immutable),
    }));
    context.register_udaf(AggregateUDF::new_from_impl(aggregates::CountIf::new()));
    for extreme in [aggregates::Extreme::Max, aggregates::Extreme::Min] {
        context.register_udaf(AggregateUDF::new_from_impl(aggregates::ValueBy::new(
            extreme,
        )));
    }
    context.add_analyzer_rule(Arc::new(lateral_unnest::LateralUnnest));
}

type Result<T> = datafusion::common::Result<T>;

/// Every argument as an array of `rows` rows.
fn arrays(args: &[ColumnarValue]) -> Result<Vec<ArrayRef>> {
    let rows = args
        .iter()
        .find_map(|arg| match arg {
            ColumnarValue::Array(array) => Some(array.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(1);
    args.iter().map(|arg| arg.to_array(rows)).collect()
}

fn strings(array: &ArrayRef) -> Result<StringArray> {
    Ok(cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn timestamps(array: &ArrayRef) -> Result<TimestampMillisecondArray> {
    Ok(cast(array, &timestamp_type())?
        .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>()
        .clone())
}

fn utc(values: TimestampMillisecondArray) -> ArrayRef {
    Arc::new(values.with_timezone("UTC"))
}

fn json_extract_scalar(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let (documents, paths) = (strings(&arrays[0])?, strings(&arrays[1])?);
    let values: StringArray = (0..documents.len())
        .map(|row| {
            if documents.is_null(row) || paths.is_null(row) {
                return None;
            }
            let document: serde_json::Value = serde_json::from_str(documents.value(row)).ok()?;
            match json_path(&document, paths.value(row))? {
                serde_json::Value::String(text) => Some(text.clone()),
                serde_json::Value::Number(number) => Some(number.to_string()),
                serde_json::Value::Bool(flag) => Some(flag.to_string()),
                // Trino answers NULL for objects, arrays and null.
                _ => None,
            }
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(values)))
}

/// `$`, then `.name`, `["name"]` or `[index]` steps.
fn json_path<'a>(document: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut current = document;
    while !rest.is_empty() {
        if let Some(after_dot) = rest.strip_prefix('.') {
            let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
            current = current.get(&after_dot[..end])?;
            rest = &after_dot[end..];
        } else if let Some(after_bracket) = rest.strip_prefix('[') {
            let end = after_bracket.find(']')?;
            let step = after_bracket[..end].trim();
            current = match step.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(name) => current.get(name)?,
                None => current.get(step.parse::<usize>().ok()?)?,
            };
            rest = &after_bracket[end + 1..];
        } else {
            return None;
        }
    }
    Some(current)
}

fn from_iso8601_timestamp(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let texts = strings(&arrays(args)?[0])?;
    let values: TimestampMillisecondArray = texts
        .iter()
        .map(|text| {
            let text = text?;
            let timestamp = text
                .parse::<jiff::Timestamp>()
                .ok()
                .or_else(|| {
                    let datetime = text.parse::<jiff::civil::DateTime>().ok()?;
                    jiff::tz::TimeZone::UTC.to_timestamp(datetime).ok()
                })
                .or_else(|| {
                    let date = text.parse::<jiff::civil::Date>().ok()?;
                    jiff::tz::TimeZone::UTC
                        .to_timestamp(date.at(0, 0, 0, 0))
                        .ok()
                })?;
            Some(timestamp.as_millisecond())
        })
        .collect();
    Ok(ColumnarValue::Array(utc(values)))
}

fn to_iso8601(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let values = timestamps(&arrays(args)?[0])?;
    let texts: StringArray = values
        .iter()
        .map(|ms| {
            let timestamp = jiff::Timestamp::from_millisecond(ms?).ok()?;
            Some(format!("{timestamp:.3}"))
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(texts)))
}

/// Milliseconds in one `unit`; months and years are not fixed and are refused.
fn unit_ms(unit: &str) -> Result<i64> {
    Ok(match unit.to_ascii_lowercase().as_str() {
        "millisecond" => 1,
        "second" => 1_000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        "week" => 7 * 86_400_000,
        other => {
            return Err(DataFusionError::Plan(format!(
                "unit '{other}' is not supported here: use millisecond, second, minute, hour, day or week"
            )));
        }
    })
}

fn date_add(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let units = strings(&arrays[0])?;
    let amounts = cast(&arrays[1], &DataType::Int64)?;
    let amounts: &Int64Array = amounts.as_primitive();
    let times = timestamps(&arrays[2])?;
    let mut values = Vec::with_capacity(times.len());
    for row in 0..times.len() {
        if units.is_null(row) || amounts.is_null(row) || times.is_null(row) {
            values.push(None);
            continue;
        }
        let step = unit_ms(units.value(row))?;
        values.push(Some(times.value(row) + amounts.value(row) * step));
    }
    Ok(ColumnarValue::Array(utc(TimestampMillisecondArray::from(
        values,
    ))))
}

fn date_diff(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = arrays(args)?;
    let units = strings(&arrays[0])?;
    let (from, to) = (timestamps(&arrays[1])?, timestamps(&arrays[2])?);
    let mut values = Vec::with_capacity(from.len());
    for row in 0..from.len() {
        if units.is_null(row) || from.is_null(row) || to.is_null(row) {
            values.push(None);
            continue;
        }
        let step = unit_ms(units.value(row))?;
        // Whole units, truncated toward zero as Trino does.
        values.push(Some((to.value(row) - from.value(row)) / step));
    }
    Ok(ColumnarValue::Array(Arc::new(Int64Array::from(values))))
}

/// Trino's `regexp_extract`; see the module's documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpExtract {
    signature: Signature,
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = arrays(&args.args)?;
        let (texts, patterns) = (strings(&arrays[0])?, strings(&arrays[1])?);
        let groups = match arrays.get(2) {
            Some(groups) => Some(cast(groups, &DataType::Int64)?),
            None => None,
        };
        let groups: Option<&Int64Array> = groups.as_ref().map(|groups| groups.as_primitive());
        // The pattern is almost always one literal: compiled once, not per row.
        let mut compiled: Option<(String, Regex)> = None;
        let mut values = Vec::with_capacity(texts.len());
        for row in 0..texts.len() {
            if texts.is_null(row)
                || patterns.is_null(row)
                || groups.is_some_and(|groups| groups.is_null(row))
            {
                values.push(None);
                continue;
            }
            let regex = compiled_pattern(&mut compiled, patterns.value(row))?;
            let group = groups.map_or(0, |groups| groups.value(row));
            let text = texts.value(row);
            let found = match usize::try_from(group) {
                Ok(0) => regex.find(text),
                Ok(group) if group < regex.captures_len() => regex
                    .captures(text)
                    .and_then(|captures| captures.get(group)),
                _ => {
                    return Err(DataFusionError::Execution(format!(
                        "regexp_extract: the pattern has {} groups, so there is no group {group}",
                        regex.captures_len() - 1
                    )));
                }
            };
            values.push(found.map(|found| found.as_str()));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(values))))
    }
}

/// The compiled `pattern`, from `cache` when it holds the same pattern.
fn compiled_pattern<'a>(
    cache: &'a mut Option<(String, Regex)>,
    pattern: &str,
) -> Result<&'a Regex> {
    if cache.as_ref().is_none_or(|(cached, _)| cached != pattern) {
        let regex = Regex::new(pattern).map_err(|error| {
            DataFusionError::Execution(format!("regexp_extract: invalid pattern: {error}"))
        })?;
        *cache = Some((pattern.to_owned(), regex));
    }
    cache
        .as_ref()
        .map(|(_, regex)| regex)
        .ok_or_else(|| DataFusionError::Internal("regexp_extract: no compiled pattern".into()))
}

/// Trino's `if(condition, value[, otherwise])`. The optimizer rewrites it to `CASE WHEN
/// condition THEN value ELSE otherwise END`, which evaluates only the branch taken
/// (`if(n = 0, NULL, x / n)` does not divide by zero).
#[derive(Debug, PartialEq, Eq, Hash)]
struct If {
    signature: Signature,
}

impl ScalarUDFImpl for If {
    fn name(&self) -> &str {
        "if"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [condition, branches @ ..] = arg_types else {
            return Err(if_arguments_error());
        };
        if !(1..=2).contains(&branches.len()) {
            return Err(if_arguments_error());
        }
        if !matches!(condition, DataType::Boolean | DataType::Null) {
            return Err(DataFusionError::Plan(format!(
                "if: the condition is a {condition}, not a boolean"
            )));
        }
        let common = get_coerce_type_for_case_expression(branches, None).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "if: the values' types {branches:?} have no common type"
            ))
        })?;
        Ok(std::iter::once(DataType::Boolean)
            .chain(std::iter::repeat_n(common, branches.len()))
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        arg_types.get(1).cloned().ok_or_else(if_arguments_error)
    }

    fn short_circuits(&self) -> bool {
        true
    }

    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let mut args = args.into_iter();
        let (Some(condition), Some(value)) = (args.next(), args.next()) else {
            return Err(if_arguments_error());
        };
        let mut case = when(condition, value);
        Ok(ExprSimplifyResult::Simplified(match args.next() {
            Some(otherwise) => case.otherwise(otherwise)?,
            None => case.end()?,
        }))
    }

    /// Only when the call was not rewritten to a `CASE`: both branches are evaluated.
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = arrays(&args.args)?;
        let [conditions, value, rest @ ..] = arrays.as_slice() else {
            return Err(if_arguments_error());
        };
        let otherwise = match rest.first() {
            Some(otherwise) => Arc::clone(otherwise),
            None => datafusion::arrow::array::new_null_array(value.data_type(), value.len()),
        };
        // A NULL condition takes `otherwise`, as in a CASE.
        let chosen = zip(conditions.as_boolean(), value, &otherwise)?;
        Ok(ColumnarValue::Array(chosen))
    }
}

fn if_arguments_error() -> DataFusionError {
    DataFusionError::Plan("if takes a condition and one or two values".into())
}

/// `element_at` as Trino has it: a map's value, or a list's 1-based element.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ElementAt {
    signature: Signature,
}

impl ScalarUDFImpl for ElementAt {
    fn name(&self) -> &str {
        "element_at"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(DataType::Map(entries, _)) => match entries.data_type() {
                DataType::Struct(fields) if fields.len() == 2 => Ok(fields[1].data_type().clone()),
                other => Err(DataFusionError::Plan(format!(
                    "element_at: unexpected map entries {other}"
                ))),
            },
            Some(DataType::List(item) | DataType::LargeList(item)) => Ok(item.data_type().clone()),
            other => Err(DataFusionError::Plan(format!(
                "element_at takes a map or an array, not {other:?}"
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = arrays(&args.args)?;
        let (container, key) = (&arrays[0], &arrays[1]);
        let values: Vec<ScalarValue> = match container.data_type() {
            DataType::Map(..) => {
                let maps = container.as_map();
                let keys = strings(key)?;
                (0..maps.len())
                    .map(|row| {
                        let null = ScalarValue::try_from(
                            self.return_type(&[container.data_type().clone()])?,
                        );
                        if maps.is_null(row) || keys.is_null(row) {
                            return null;
                        }
                        let entries = maps.value(row);
                        let entry_keys = strings(entries.column(0))?;
                        match (0..entry_keys.len())
                            .find(|&index| entry_keys.value(index) == keys.value(row))
                        {
                            Some(index) => ScalarValue::try_from_array(entries.column(1), index),
                            None => null,
                        }
                    })
                    .collect::<Result<_>>()?
            }
            DataType::List(_) => {
                let lists = container.as_list::<i32>();
                let positions = cast(key, &DataType::Int64)?;
                let positions: &Int64Array = positions.as_primitive();
                let item_type = self.return_type(&[container.data_type().clone()])?;
                (0..lists.len())
                    .map(|row| {
                        if lists.is_null(row) || positions.is_null(row) {
                            return ScalarValue::try_from(&item_type);
                        }
                        let items = lists.value(row);
                        let position = positions.value(row);
                        // 1-based; negative counts from the end.
                        let index = if position > 0 {
                            usize::try_from(position - 1).ok()
                        } else {
                            usize::try_from(i64::try_from(items.len()).unwrap_or(0) + position).ok()
                        };
                        match index.filter(|&index| index < items.len()) {
                            Some(index) => ScalarValue::try_from_array(&items, index),
                            None => ScalarValue::try_from(&item_type),
                        }
                    })
                    .collect::<Result<_>>()?
            }
            other => {
                return Err(DataFusionError::Plan(format!(
                    "element_at takes a map or an array, not {other}"
                )));
            }
        };
        let item_type = self.return_type(&[container.data_type().clone()])?;
        if values.is_empty() {
            return Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&item_type),
            ));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_reach_members_and_elements() {
        let document = serde_json::json!({"a": {"b": [{"c": "x"}, 2]}, "d e": true});
        assert_eq!(
            json_path(&document, "$.a.b[0].c"),
            Some(&serde_json::json!("x"))
        );
        assert_eq!(
            json_path(&document, "$.a.b[1]"),
            Some(&serde_json::json!(2))
        );
        assert_eq!(
            json_path(&document, "$[\"d e\"]"),
            Some(&serde_json::json!(true))
        );
        assert_eq!(json_path(&document, "$.missing"), None);
        assert_eq!(json_path(&document, "a.b"), None);
    }
}
