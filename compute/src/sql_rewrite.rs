//! Adjustments to a parsed statement before DataFusion plans it, where PostgreSQL accepts
//! something DataFusion does not.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Ident, Query, SelectItem, SetExpr, Statement, VisitMut, VisitorMut,
};

/// PostgreSQL allows the same unnamed expression twice in a SELECT list (`SELECT NULL, NULL`);
/// DataFusion needs unique names, so repeats get an alias. The names clients see are worked out
/// from the statement as written (see `column_names`), so the aliases never show.
pub fn alias_duplicate_expressions(stmt: &mut Statement) {
    struct Dedupe;
    impl VisitorMut for Dedupe {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            dedupe_set_expr(&mut query.body);
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Dedupe);
}

fn dedupe_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            let mut seen = HashSet::new();
            for (i, item) in select.projection.iter_mut().enumerate() {
                if let SelectItem::UnnamedExpr(expr) = item {
                    if !seen.insert(expr.to_string()) {
                        *item = SelectItem::ExprWithAlias {
                            expr: expr.clone(),
                            alias: Ident::with_quote('"', format!("?column?{i}")),
                        };
                    }
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            dedupe_set_expr(left);
            dedupe_set_expr(right);
        }
        _ => {}
    }
}
