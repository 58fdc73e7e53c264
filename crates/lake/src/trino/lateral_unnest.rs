//! Trino's lateral `UNNEST`: `FROM events CROSS JOIN UNNEST(resources) AS t(r)` (or
//! `, UNNEST(…)`, or `JOIN UNNEST(…) … ON …`), one row per element of each row's list.
//!
//! DataFusion plans it as a join with a subquery over the left side's columns (outer
//! references) and cannot execute that ("Physical plan does not support logical expression
//! OuterReferenceColumn"). This analyzer rule plans the join as DataFusion plans
//! `SELECT unnest(list)`: the unnest runs over the left side itself, which keeps its
//! columns, and the result has the join's columns under the join's names.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::{EmptyRelation, Expr, Filter, JoinType, LogicalPlan, Projection};
use datafusion::optimizer::AnalyzerRule;

use super::Result;

#[derive(Debug)]
pub(super) struct LateralUnnest;

impl AnalyzerRule for LateralUnnest {
    fn name(&self) -> &str {
        "lateral_unnest"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        // Bottom up, so that a second UNNEST over the first one's elements finds the
        // first one already planned on its left.
        plan.transform_up_with_subqueries(|plan| {
            Ok(match unnest_per_row(&plan)? {
                Some(unnested) => Transformed::yes(unnested),
                None => Transformed::no(plan),
            })
        })
        .map(|transformed| transformed.data)
    }
}

/// `plan` without its lateral join, when it is an inner join of a left side with an
/// `UNNEST` of the left side's columns; `None` for any other plan.
fn unnest_per_row(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::Join(join) = plan else {
        return Ok(None);
    };
    if join.join_type != JoinType::Inner {
        return Ok(None);
    }
    let Some(per_row) = correlated_subquery(&join.right) else {
        return Ok(None);
    };
    let LogicalPlan::Projection(per_row_columns) = per_row else {
        return Ok(None);
    };
    let left = join.left.as_ref();
    let Some(unnested) = over_left(&per_row_columns.input, left)? else {
        return Ok(None);
    };
    // The join's columns: the left side's, then the subquery's under the names the join
    // gives them (`t.r`). Named here rather than in a projection over the subquery's own,
    // where the optimizer would find both `r` and `t.r` ambiguous.
    let mut columns: Vec<Expr> = left
        .schema()
        .iter()
        .map(|(qualifier, field)| Expr::Column(Column::from((qualifier, field))))
        .collect();
    for (expr, (qualifier, field)) in per_row_columns.expr.iter().zip(join.right.schema().iter()) {
        let Some(expr) = read_outer_references(expr.clone(), left.schema())? else {
            return Ok(None);
        };
        columns.push(
            expr.unalias()
                .alias_qualified(qualifier.cloned(), field.name()),
        );
    }
    let joined = LogicalPlan::Projection(Projection::try_new(columns, Arc::new(unnested))?);
    let condition = join
        .on
        .iter()
        .map(|(left_key, right_key)| left_key.clone().eq(right_key.clone()))
        .chain(join.filter.clone())
        .reduce(Expr::and);
    Ok(Some(match condition {
        Some(condition) => LogicalPlan::Filter(Filter::try_new(condition, Arc::new(joined))?),
        None => joined,
    }))
}

/// The plan of a subquery on the right of a join, under its aliases.
fn correlated_subquery(right: &LogicalPlan) -> Option<&LogicalPlan> {
    match right {
        LogicalPlan::SubqueryAlias(alias) => correlated_subquery(&alias.input),
        LogicalPlan::Subquery(subquery) => Some(subquery.subquery.as_ref()),
        _ => None,
    }
}

/// `per_row` (projections and unnests over one empty row, as DataFusion plans `UNNEST`
/// in `FROM`) run over `left` instead, its outer references to `left` read as columns and
/// `left`'s columns kept through it; `None` when `per_row` has another shape or refers to
/// something else.
fn over_left(per_row: &LogicalPlan, left: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    match per_row {
        LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: true,
            ..
        }) => Ok(Some(left.clone())),
        LogicalPlan::Projection(projection) => {
            let Some(input) = over_left(&projection.input, left)? else {
                return Ok(None);
            };
            let mut exprs =
                Vec::with_capacity(projection.expr.len() + left.schema().fields().len());
            for expr in &projection.expr {
                match read_outer_references(expr.clone(), left.schema())? {
                    Some(expr) => exprs.push(expr),
                    None => return Ok(None),
                }
            }
            for (qualifier, field) in left.schema().iter() {
                let column = Column::from((qualifier, field));
                let already_there = exprs.iter().any(|expr| {
                    expr.qualified_name() == (column.relation.clone(), column.name.clone())
                });
                if !already_there {
                    exprs.push(Expr::Column(column));
                }
            }
            Ok(Some(LogicalPlan::Projection(Projection::try_new(
                exprs,
                Arc::new(input),
            )?)))
        }
        LogicalPlan::Unnest(unnest) => {
            let Some(input) = over_left(&unnest.input, left)? else {
                return Ok(None);
            };
            // Rebuilt over the wider input: the columns it unnests, and its options, as
            // they were.
            per_row
                .with_new_exprs(per_row.expressions(), vec![input])
                .map(Some)
        }
        _ => Ok(None),
    }
}

/// `expr` with its outer references read as `left`'s columns; `None` when one refers to
/// something `left` does not have (an enclosing query's column).
fn read_outer_references(expr: Expr, left: &DFSchema) -> Result<Option<Expr>> {
    let mut foreign = false;
    let expr = expr
        .transform_up(|expr| {
            Ok(match expr {
                Expr::OuterReferenceColumn(_, column) => {
                    foreign |= !left.has_column(&column);
                    Transformed::yes(Expr::Column(column))
                }
                other => Transformed::no(other),
            })
        })?
        .data;
    Ok((!foreign).then_some(expr))
}
