//! Trino's `count_if`, `max_by` and `min_by` as DataFusion aggregates (usable with
//! `GROUP BY`, `FILTER (WHERE …)` and `OVER (…)` alike).

use std::cmp::Ordering;
use std::mem::size_of_val;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use datafusion::arrow::compute::{SortOptions, sort_to_indices, sum};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::Result;

/// `count_if(condition)`: the rows where `condition` is true (not false, not NULL).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct CountIf {
    signature: Signature,
}

impl CountIf {
    pub(super) fn new() -> CountIf {
        CountIf {
            signature: Signature::exact(vec![DataType::Boolean], Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for CountIf {
    fn name(&self) -> &str {
        "count_if"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "count"),
            DataType::Int64,
            false,
        ))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CountIfAccumulator { count: 0 }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(CountIfGroups { counts: Vec::new() }))
    }
}

#[derive(Debug)]
struct CountIfAccumulator {
    count: i64,
}

impl Accumulator for CountIfAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.count += i64::try_from(values[0].as_boolean().true_count()).unwrap_or(i64::MAX);
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.count += sum(states[0].as_primitive::<Int64Type>()).unwrap_or(0);
        Ok(())
    }

    /// Rows leaving a sliding window frame (`ROWS BETWEEN 2 PRECEDING AND CURRENT ROW`).
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.count -= i64::try_from(values[0].as_boolean().true_count()).unwrap_or(i64::MAX);
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(Some(self.count))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.count)))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// `count_if` over many groups at once, as DataFusion's own `count` is, rather than one
/// accumulator per group.
struct CountIfGroups {
    counts: Vec<i64>,
}

/// Whether `row` is counted: its condition is true and the aggregate's filter passes it.
fn counts_row(conditions: &BooleanArray, filter: Option<&BooleanArray>, row: usize) -> bool {
    let is_true = |array: &BooleanArray| array.is_valid(row) && array.value(row);
    is_true(conditions) && filter.is_none_or(is_true)
}

impl GroupsAccumulator for CountIfGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.counts.resize(total_num_groups, 0);
        let conditions = values[0].as_boolean();
        for (row, &group) in group_indices.iter().enumerate() {
            if counts_row(conditions, opt_filter, row) {
                self.counts[group] += 1;
            }
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.counts.resize(total_num_groups, 0);
        let partial_counts = values[0].as_primitive::<Int64Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            if partial_counts.is_valid(row) {
                self.counts[group] += partial_counts.value(row);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from(
            emit_to.take_needed(&mut self.counts),
        )))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let conditions = values[0].as_boolean();
        let counts: Int64Array = (0..conditions.len())
            .map(|row| Some(i64::from(counts_row(conditions, opt_filter, row))))
            .collect();
        Ok(vec![Arc::new(counts)])
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.counts.capacity() * size_of::<i64>()
    }
}

/// Which end of the ordering of `y` `max_by(x, y)` and `min_by(x, y)` take `x` at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Extreme {
    Max,
    Min,
}

/// `max_by(x, y)` / `min_by(x, y)`: `x` of the row with the largest / smallest `y`. Rows
/// whose `y` is NULL are skipped, as Trino does; NULL when no row is left. Which row wins
/// a tie is unspecified, as in Trino.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct ValueBy {
    extreme: Extreme,
    signature: Signature,
}

impl ValueBy {
    pub(super) fn new(extreme: Extreme) -> ValueBy {
        ValueBy {
            extreme,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for ValueBy {
    fn name(&self) -> &str {
        match self.extreme {
            Extreme::Max => "max_by",
            Extreme::Min => "min_by",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        arg_types.first().cloned().ok_or_else(|| {
            DataFusionError::Plan(format!("{} takes a value and a key", self.name()))
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let [value, key] = args.input_fields else {
            return Err(DataFusionError::Plan(format!(
                "{} takes a value and a key",
                self.name()
            )));
        };
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "value"),
                value.data_type().clone(),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "key"),
                key.data_type().clone(),
                true,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let [value, key] = args.expr_fields else {
            return Err(DataFusionError::Plan(format!(
                "{} takes a value and a key",
                self.name()
            )));
        };
        Ok(Box::new(ValueByAccumulator {
            extreme: self.extreme,
            value: ScalarValue::try_from(value.data_type())?,
            key: ScalarValue::try_from(key.data_type())?,
        }))
    }
}

#[derive(Debug)]
struct ValueByAccumulator {
    extreme: Extreme,
    /// `x` at the best `key` so far (NULL before any row).
    value: ScalarValue,
    key: ScalarValue,
}

impl ValueByAccumulator {
    /// Takes the row of `keys` at the wanted end, when it beats the one kept.
    fn take_best(&mut self, values: &ArrayRef, keys: &ArrayRef) -> Result<()> {
        if keys.null_count() == keys.len() {
            return Ok(());
        }
        // The batch's best row in one pass (a top-1 sort), NULL keys last.
        let options = SortOptions {
            descending: self.extreme == Extreme::Max,
            nulls_first: false,
        };
        let best = sort_to_indices(keys.as_ref(), Some(options), Some(1))?;
        let Some(row) = best.iter().flatten().next().map(|row| row as usize) else {
            return Ok(());
        };
        if keys.is_null(row) {
            return Ok(());
        }
        let key = ScalarValue::try_from_array(keys, row)?;
        let wanted = match self.extreme {
            Extreme::Max => Ordering::Greater,
            Extreme::Min => Ordering::Less,
        };
        if self.key.is_null() || key.partial_cmp(&self.key) == Some(wanted) {
            self.value = ScalarValue::try_from_array(values, row)?;
            self.key = key;
        }
        Ok(())
    }
}

impl Accumulator for ValueByAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.take_best(&values[0], &values[1])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.take_best(&states[0], &states[1])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.value.clone(), self.key.clone()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.value.size() + self.key.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(values: &[Option<bool>]) -> ArrayRef {
        Arc::new(BooleanArray::from(values.to_vec()))
    }

    fn counts(array: &ArrayRef) -> Vec<i64> {
        array.as_primitive::<Int64Type>().values().to_vec()
    }

    /// The paths small queries do not reach: merging partial counts, emitting the first
    /// groups only, and the state of rows passed on unaggregated.
    #[test]
    fn count_if_groups_count_true_rows_that_pass_the_filter() {
        let mut groups = CountIfGroups { counts: Vec::new() };
        let batch = conditions(&[Some(true), Some(false), None, Some(true), Some(true)]);
        let filter = BooleanArray::from(vec![Some(true), Some(true), Some(true), None, Some(true)]);
        groups
            .update_batch(&[Arc::clone(&batch)], &[0, 0, 1, 1, 2], Some(&filter), 4)
            .expect("update");
        let partial: ArrayRef = Arc::new(Int64Array::from(vec![5, 7]));
        groups.merge_batch(&[partial], &[3, 0], 4).expect("merge");
        assert_eq!(
            counts(&groups.evaluate(EmitTo::First(2)).expect("first")),
            [8, 0]
        );
        assert_eq!(counts(&groups.evaluate(EmitTo::All).expect("rest")), [1, 5]);

        let state = groups
            .convert_to_state(&[batch], Some(&filter))
            .expect("state");
        assert_eq!(counts(&state[0]), [1, 0, 0, 0, 1]);
    }
}
