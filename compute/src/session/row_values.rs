//! A whole row as a value: `row_to_json(t)`, `to_json(t)`, `to_jsonb(t)`, `json_agg(t)` and
//! `jsonb_agg(t)`, where `t` names a table or subquery of the FROM clause (PostgreSQL's
//! row value), as applications build JSON responses (`SELECT json_agg(t) FROM (…) t`).
//!
//! DataFusion has no row values, so before planning each such `t` becomes
//! `strata_row_to_json('col', t.col, …)` (in row_to_json's compact form) over the columns that
//! `t.*` stands for, which the FROM clause planned alone tells; the jsonb forms normalize it.
//! A name that is also a column of the FROM clause stays a column, as PostgreSQL resolves it.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, ObjectName,
    ObjectNamePart, Query, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement,
    TableFactor, Value, VisitMut, VisitorMut, WildcardAdditionalOptions,
};

use super::Session;
use crate::names::normalize;
use crate::sql_rewrite::function_call;

/// The functions that take a row, and whether their result is jsonb.
const ROW_FUNCTIONS: &[(&str, bool)] = &[
    ("row_to_json", false),
    ("to_json", false),
    ("to_jsonb", true),
    ("json_agg", false),
    ("jsonb_agg", true),
];

/// The FROM-clause names (aliases, or table names without one) of a SELECT.
fn from_names(query: &Query) -> Vec<String> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for table in &select.from {
        for factor in
            std::iter::once(&table.relation).chain(table.joins.iter().map(|j| &j.relation))
        {
            match factor {
                TableFactor::Table { alias: Some(a), .. }
                | TableFactor::Derived { alias: Some(a), .. } => names.push(normalize(&a.name)),
                TableFactor::Table {
                    name, alias: None, ..
                } => {
                    if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                        names.push(normalize(last));
                    }
                }
                _ => {}
            }
        }
    }
    names
}

/// The row functions of a SELECT list called on a bare name of the FROM clause: the names.
fn row_arguments(query: &Query, from: &[String]) -> Vec<String> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for item in &select.projection {
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => continue,
        };
        let _ = datafusion::sql::sqlparser::ast::visit_expressions(expr, |e| {
            if let Some(name) = row_argument(e) {
                if from.contains(&name) && !found.contains(&name) {
                    found.push(name);
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    found
}

/// `f(name)` for a row function `f`: the name.
fn row_argument(expr: &Expr) -> Option<String> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let function = f.name.0.last()?.as_ident().map(normalize)?;
    ROW_FUNCTIONS.iter().find(|(n, _)| *n == function)?;
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(id)))] => Some(normalize(id)),
        _ => None,
    }
}

impl Session {
    /// The statement with each row value of its top-level SELECT list written out (see the
    /// module documentation); `None` when it has none.
    pub(super) async fn expand_row_values(&self, statement: &Statement) -> Option<Statement> {
        let Statement::Query(query) = statement else {
            return None;
        };
        let from = from_names(query);
        let names = row_arguments(query, &from);
        if names.is_empty() {
            return None;
        }
        let mut rows: HashMap<String, Expr> = HashMap::new();
        for name in names {
            // A column of that name wins, as in PostgreSQL.
            if self.is_column(query, &name).await {
                continue;
            }
            let wildcard = SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(ObjectName(vec![
                    ObjectNamePart::Identifier(Ident::with_quote('"', name.clone())),
                ])),
                WildcardAdditionalOptions::default(),
            );
            // The FROM clause alone: grouping would refuse `t.*`.
            let mut ungrouped = query.as_ref().clone();
            if let SetExpr::Select(select) = ungrouped.body.as_mut() {
                select.group_by = GroupByExpr::Expressions(Vec::new(), Vec::new());
                select.having = None;
            }
            let columns = self.wildcard_columns(&ungrouped, &wildcard).await?;
            let mut args = Vec::with_capacity(columns.len() * 2);
            for column in columns {
                let column_name = match &column {
                    Expr::Identifier(id) => id.value.clone(),
                    Expr::CompoundIdentifier(parts) => parts.last()?.value.clone(),
                    _ => return None,
                };
                args.push(Expr::value(Value::SingleQuotedString(column_name)));
                args.push(column);
            }
            rows.insert(name, function_call(crate::json_build::ROW_TO_JSON, args));
        }
        if rows.is_empty() {
            return None;
        }
        struct Rows<'a>(&'a HashMap<String, Expr>);
        impl VisitorMut for Rows<'_> {
            type Break = ();
            fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                let Some(name) = row_argument(expr) else {
                    return ControlFlow::Continue(());
                };
                let (Some(row), Expr::Function(f)) = (self.0.get(&name), &mut *expr) else {
                    return ControlFlow::Continue(());
                };
                let function = f.name.0.last().and_then(|p| p.as_ident()).map(normalize);
                let jsonb = ROW_FUNCTIONS
                    .iter()
                    .any(|(n, jsonb)| Some(*n) == function.as_deref() && *jsonb);
                let value = if jsonb {
                    function_call(crate::json::JSONB_CAST, vec![row.clone()])
                } else {
                    row.clone()
                };
                match function.as_deref() {
                    // The row itself, converted.
                    Some("row_to_json" | "to_json" | "to_jsonb") => *expr = value,
                    // The aggregate keeps its clauses (ORDER BY, FILTER, OVER).
                    _ => {
                        if let FunctionArguments::List(list) = &mut f.args {
                            list.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(value))];
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut expanded = query.clone();
        if let SetExpr::Select(select) = expanded.body.as_mut() {
            for item in &mut select.projection {
                // The column keeps the name the call gives it (`row_to_json`).
                let name = match &*item {
                    SelectItem::UnnamedExpr(e) => crate::column_names::figure_name(e),
                    _ => None,
                };
                let before = item.clone();
                let _ = item.visit(&mut Rows(&rows));
                if let (Some(name), SelectItem::UnnamedExpr(e)) = (name, &*item) {
                    if *item != before {
                        *item = SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: Ident::with_quote('"', name),
                        };
                    }
                }
            }
        }
        Some(Statement::Query(expanded))
    }

    /// Whether `name` is a column of the query's FROM clause.
    async fn is_column(&self, query: &Query, name: &str) -> bool {
        let mut probe = query.clone();
        probe.order_by = None;
        probe.limit_clause = None;
        probe.fetch = None;
        if let SetExpr::Select(select) = probe.body.as_mut() {
            select.projection = vec![SelectItem::UnnamedExpr(Expr::Identifier(
                Ident::with_quote('"', name),
            ))];
            select.group_by = GroupByExpr::Expressions(Vec::new(), Vec::new());
            select.having = None;
        }
        self.logical_plan(&Statement::Query(Box::new(probe)))
            .await
            .is_ok()
    }
}
