//! What Strata's analyzer rules share: a rewrite of every expression of every plan node, bottom
//! up and inside subqueries, after DataFusion's type coercion, keeping each top-level
//! expression's output name (a client sees the column names of the query as written).

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DFResult};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Expr, LogicalPlan};

/// Rewrites `plan`'s expressions with `each`, which sees every sub-expression and the schema of
/// its node's inputs. `sort_key` first sees each whole sort key of a Sort node, and may replace
/// it (without `each` running on it then).
pub fn rewrite_expressions(
    plan: LogicalPlan,
    sort_key: impl Fn(&Expr, &DFSchema) -> Option<Expr>,
    each: impl Fn(Expr, &DFSchema) -> DFResult<Transformed<Expr>>,
) -> DFResult<LogicalPlan> {
    let changed = std::cell::Cell::new(false);
    plan.transform_up_with_subqueries(|node| {
        let schema = merge_schema(&node.inputs());
        let sorting = matches!(node, LogicalPlan::Sort(_));
        let names = NamePreserver::new(&node);
        let rewritten = node.map_expressions(|expr| {
            let saved = names.save(&expr);
            if let Some(replaced) = sorting.then(|| sort_key(&expr, &schema)).flatten() {
                return Ok(Transformed::yes(replaced));
            }
            let rewritten = expr.transform_up(|e| each(e, &schema))?;
            Ok(if rewritten.transformed {
                rewritten.update_data(|e| saved.restore(e))
            } else {
                rewritten
            })
        })?;
        // A node's schema follows its new expressions (a field's PostgreSQL type may change),
        // and so do the schemas of the nodes above it, which are visited later.
        changed.set(changed.get() || rewritten.transformed);
        if changed.get() {
            rewritten.map_data(|node| node.recompute_schema())
        } else {
            Ok(rewritten)
        }
    })
    .map(|t| t.data)
}
