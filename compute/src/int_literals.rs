//! Integer literals typed as PostgreSQL types them: `integer` when the value fits, `bigint`
//! otherwise.
//!
//! DataFusion's SQL planner makes every integer literal an Int64. A client then sees `SELECT 1`
//! as a `bigint` column (node-postgres hands it back as a string), and `int4_column + 1` is
//! computed in 64 bits, where PostgreSQL computes it in 32 and reports an overflow. Statements
//! planned from SQL text have their literals narrowed to Int32 before DataFusion's type
//! coercion runs, so coercion then types each operator as PostgreSQL's operator resolution does.
//!
//! This runs once, on the plan made from the text, not as an analyzer rule: a parameter bound
//! later is a literal of its parameter's type and must keep it. Literals the planner typed on
//! purpose keep their type too: LIMIT and OFFSET (which DataFusion reads as Int64), and VALUES
//! rows (whose schema the planner fixed, and which an INSERT has already cast to its columns).
//! A statement with a recursive CTE keeps every literal as planned: the recursive term was
//! planned against the types of the anchor's columns, which narrowing would change under it.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result as DFResult, ScalarValue};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan};

/// `plan` with its integer literals narrowed (see the module doc).
pub fn narrow_integer_literals(plan: LogicalPlan) -> DFResult<LogicalPlan> {
    let mut recursive = false;
    plan.apply_with_subqueries(|node| {
        recursive |= matches!(node, LogicalPlan::RecursiveQuery(_));
        Ok(if recursive {
            datafusion::common::tree_node::TreeNodeRecursion::Stop
        } else {
            datafusion::common::tree_node::TreeNodeRecursion::Continue
        })
    })?;
    if recursive {
        return Ok(plan);
    }
    let narrowed = plan.transform_up_with_subqueries(|node| {
        if !matches!(
            node,
            LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Window(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Join(_)
        ) {
            return Ok(Transformed::no(node));
        }
        // Nodes above find an expression by its name, which names its literals' types.
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let saved = names.save(&e);
            let narrowed = e.transform_up(|e| Ok(narrow(e)))?;
            Ok(if narrowed.transformed {
                narrowed.update_data(|e| saved.restore(e))
            } else {
                narrowed
            })
        })
    })?;
    if !narrowed.transformed {
        return Ok(narrowed.data);
    }
    // The types of the nodes above a narrowed literal change with it.
    narrowed
        .data
        .transform_up_with_subqueries(|node| node.recompute_schema().map(Transformed::yes))
        .map(|t| t.data)
}

fn narrow(e: Expr) -> Transformed<Expr> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), metadata) => match i32::try_from(v) {
            Ok(v) => Transformed::yes(Expr::Literal(ScalarValue::Int32(Some(v)), metadata)),
            Err(_) => Transformed::no(Expr::Literal(ScalarValue::Int64(Some(v)), metadata)),
        },
        other => Transformed::no(other),
    }
}
