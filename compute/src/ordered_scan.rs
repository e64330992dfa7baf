//! `ORDER BY … LIMIT n` served in order by the primary key or an index.
//!
//! DataFusion sorts a query's matching rows to keep the first `n` (a top-k sort), which reads
//! every match. When the ordering columns lead the primary key or a secondary index, the scan can
//! produce rows in that order itself: this physical optimizer rule then replaces the sort by a
//! plain limit, so execution stops after `n` rows. It looks through filters, projections and
//! cooperative-yield wrappers (which keep order) and drops round-robin repartitioning (which does not, and
//! only spreads a filter over cores).

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::Result as DFResult;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use crate::scan::StrataScanExec;

#[derive(Debug, Default)]
pub struct OrderedScan;

impl PhysicalOptimizerRule for OrderedScan {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            // A top-k sort, alone or under the merge of its partitions.
            let sort = match node.downcast_ref::<SortPreservingMergeExec>() {
                Some(merge) => merge.input().downcast_ref::<SortExec>(),
                None => node.downcast_ref::<SortExec>(),
            };
            let Some(sort) = sort else {
                return Ok(Transformed::no(node));
            };
            let Some(fetch) = sort.fetch() else {
                return Ok(Transformed::no(node));
            };
            let Some(columns) = ascending_columns(sort.expr()) else {
                return Ok(Transformed::no(node));
            };
            match in_order(sort.input(), &columns)? {
                Some(input) => Ok(Transformed::yes(Arc::new(GlobalLimitExec::new(
                    input,
                    0,
                    Some(fetch),
                )))),
                None => Ok(Transformed::no(node)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "strata_ordered_scan"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Output column positions a sort orders by, each with whether NULLs must come first.
type SortColumns = Vec<(usize, bool)>;

/// The output columns a sort orders by, if every key is a plain column sorted ascending with
/// NULLs last (the order of Strata's keys), with whether NULLs first was asked for.
fn ascending_columns(order: &LexOrdering) -> Option<SortColumns> {
    order
        .iter()
        .map(|key| {
            let column = key.expr.downcast_ref::<Column>()?;
            (!key.options.descending).then_some((column.index(), key.options.nulls_first))
        })
        .collect()
}

/// `plan` rebuilt to produce its rows ordered by its output columns `columns` (with whether
/// NULLs must come first), if the scan below it can read in that order.
fn in_order(
    plan: &Arc<dyn ExecutionPlan>,
    columns: &[(usize, bool)],
) -> DFResult<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(scan) = plan.downcast_ref::<StrataScanExec>() {
        let outputs = scan.output_columns();
        let table = scan.table();
        let mut positions = Vec::with_capacity(columns.len());
        for &(column, nulls_first) in columns {
            let Some(Some(position)) = outputs.get(column).copied() else {
                return Ok(None);
            };
            // Keys put NULLs last; NULLS FIRST is only the same order on a NOT NULL column.
            if nulls_first && table.columns[position].nullable {
                return Ok(None);
            }
            positions.push(position);
        }
        return Ok(scan
            .in_order(&positions)
            .map(|s| Arc::new(s) as Arc<dyn ExecutionPlan>));
    }
    if let Some(repartition) = plan.downcast_ref::<RepartitionExec>() {
        if repartition.preserve_order()
            || repartition.input().output_partitioning().partition_count() == 1
        {
            return in_order(repartition.input(), columns);
        }
        return Ok(None);
    }
    let (input, mapped): (&Arc<dyn ExecutionPlan>, Option<SortColumns>) =
        if let Some(coop) = plan.downcast_ref::<CooperativeExec>() {
            (coop.input(), Some(columns.to_vec()))
        } else if let Some(filter) = plan.downcast_ref::<FilterExec>() {
            let mapped = match filter.projection() {
                None => Some(columns.to_vec()),
                Some(projection) => columns
                    .iter()
                    .map(|&(c, n)| projection.get(c).map(|&i| (i, n)))
                    .collect(),
            };
            (filter.input(), mapped)
        } else if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
            let exprs = projection.expr();
            let mapped = columns
                .iter()
                .map(|&(c, n)| {
                    let expr: &Arc<dyn PhysicalExpr> = &exprs.get(c)?.expr;
                    expr.downcast_ref::<Column>().map(|col| (col.index(), n))
                })
                .collect();
            (projection.input(), mapped)
        } else {
            return Ok(None);
        };
    let Some(mapped) = mapped else {
        return Ok(None);
    };
    match in_order(input, &mapped)? {
        Some(new_input) => Ok(Some(replace_children_if_necessary(
            plan.clone(),
            vec![new_input],
        )?)),
        None => Ok(None),
    }
}
