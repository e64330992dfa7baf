//! Query forms PostgreSQL runs and DataFusion does not plan, rewritten into forms it does:
//!
//! - `FETCH FIRST n ROWS ONLY` (the SQL standard's LIMIT, which Hibernate and other ORMs send)
//!   becomes `LIMIT n`; `WITH TIES` and `PERCENT` are left for DataFusion to refuse.
//! - `EXISTS (q)` used as a value, as in `SELECT EXISTS (SELECT …)` (SQLAlchemy's `exists()`),
//!   becomes `(SELECT count(*) FROM (SELECT 1 FROM (q) LIMIT 1)) > 0`, a scalar subquery DataFusion can run
//!   (`subquery_apply` runs it per row when it is correlated). DataFusion turns EXISTS into a
//!   semi join only in a WHERE clause, which is left as it is.
//! - `x SIMILAR TO 'pattern'` becomes `x ~ '^(?:regex)$'`, the pattern translated as
//!   PostgreSQL's `similar_to_escape` does (`%` any text, `_` any character, `.` itself, the
//!   match anchored at both ends). DataFusion reads the pattern as a regular expression, so
//!   `'%x.com'` matched nothing. A pattern that is not a literal is left to DataFusion.
//! - `make_interval(days => 3)` becomes a positional call with every argument (see
//!   `make_interval`).
//! - `(a, b) IN (SELECT x, y …)`, a row compared with a subquery's rows, which DataFusion
//!   refuses ("the subquery should only return one column"), becomes EXISTS over the subquery
//!   with a condition per column. In a WHERE or HAVING condition (where NULL and false both
//!   drop the row) `IN` is `EXISTS (… WHERE x = a AND y = b)` and `NOT IN` is `NOT EXISTS` of a
//!   row that could be equal (each column equal or NULL on either side); elsewhere the
//!   three-valued answer is spelled out: true when a row is equal, NULL when one could be,
//!   false otherwise.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Fetch, LimitClause, Query, SelectItem, SetExpr, Statement, Value,
    ValueWithSpan, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrites the forms the module doc lists, in every query of `statement`.
pub fn rewrite(statement: &mut Statement) {
    struct Forms;
    impl VisitorMut for Forms {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            fetch_as_limit(query);
            if let SetExpr::Select(select) = query.body.as_mut() {
                for condition in [&mut select.selection, &mut select.having]
                    .into_iter()
                    .flatten()
                {
                    row_in_conditions(condition);
                }
                for item in select.projection.iter_mut() {
                    let expr = match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                        _ => continue,
                    };
                    row_in_values(expr);
                    exists_as_value(expr);
                }
            }
            ControlFlow::Continue(())
        }

        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            similar_to_as_regex(expr);
            crate::make_interval::positional(expr);
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Forms);
}

fn similar_to_as_regex(expr: &mut Expr) {
    let Expr::SimilarTo {
        negated,
        expr: subject,
        pattern,
        escape_char,
    } = expr
    else {
        return;
    };
    let Expr::Value(ValueWithSpan {
        value: Value::SingleQuotedString(text),
        ..
    }) = pattern.as_ref()
    else {
        return;
    };
    let escape = match escape_char.as_ref().map(|v| &v.value) {
        None => Some('\\'),
        Some(Value::SingleQuotedString(e)) if e.chars().count() <= 1 => e.chars().next(),
        Some(_) => return,
    };
    let regex = Expr::value(Value::SingleQuotedString(similar_to_regex(text, escape)));
    *expr = Expr::BinaryOp {
        left: subject.clone(),
        op: if *negated {
            BinaryOperator::PGRegexNotMatch
        } else {
            BinaryOperator::PGRegexMatch
        },
        right: Box::new(regex),
    };
}

/// A SIMILAR TO pattern as an anchored POSIX regular expression (PostgreSQL's
/// `similar_to_escape`): `%` is `.*`, `_` is `.`, `.`, `^` and `$` are themselves, an escaped
/// character is itself, and the rest (`|`, `*`, `+`, `?`, `{}`, `()`, `[]`) keep their meaning.
fn similar_to_regex(pattern: &str, escape: Option<char>) -> String {
    let mut out = String::from("^(?:");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            c if Some(c) == escape => {
                if let Some(next) = chars.next() {
                    out.push_str(&regex_literal(next));
                }
            }
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            '.' | '^' | '$' => out.push_str(&regex_literal(c)),
            c => out.push(c),
        }
    }
    out.push_str(")$");
    out
}

fn regex_literal(c: char) -> String {
    if c.is_ascii_alphanumeric() || c == ' ' {
        c.to_string()
    } else {
        format!("\\{c}")
    }
}

fn fetch_as_limit(query: &mut Query) {
    let Some(Fetch {
        with_ties: false,
        percent: false,
        quantity,
    }) = &query.fetch
    else {
        return;
    };
    // `FETCH FIRST ROW ONLY` is one row.
    let limit = quantity
        .clone()
        .unwrap_or_else(|| Expr::value(Value::Number("1".into(), false)));
    match &mut query.limit_clause {
        None => {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: Some(limit),
                offset: None,
                limit_by: vec![],
            })
        }
        Some(LimitClause::LimitOffset { limit: slot, .. }) if slot.is_none() => *slot = Some(limit),
        Some(_) => return,
    }
    query.fetch = None;
}

/// Replaces each EXISTS in `expr` that is not inside a nested query (whose own SELECT list is
/// rewritten when the visitor reaches it).
/// The row and subquery of `(a, b) IN (SELECT x, y …)`, when the subquery's SELECT list has
/// as many columns as the row (a `*` cannot be counted here, and is left to DataFusion).
fn row_in(expr: &Expr) -> Option<(&[Expr], &Query, bool)> {
    let Expr::InSubquery {
        expr: row,
        subquery,
        negated,
    } = expr
    else {
        return None;
    };
    let Expr::Tuple(items) = row.as_ref() else {
        return None;
    };
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return None;
    };
    let countable = select.projection.iter().all(|item| {
        matches!(
            item,
            SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
        )
    });
    (countable && select.projection.len() == items.len()).then_some((
        items.as_slice(),
        subquery.as_ref(),
        *negated,
    ))
}

/// `EXISTS` of a row of `subquery` equal to `items` (`possibly`: not provably different, each
/// column equal or NULL on either side).
fn row_match(items: &[Expr], subquery: &Query, possibly: bool) -> String {
    let columns: Vec<String> = (1..=items.len())
        .map(|i| format!("strata_in_{i}"))
        .collect();
    let conditions: Vec<String> = items
        .iter()
        .zip(&columns)
        .map(|(item, column)| {
            let column = format!("strata_in.{column}");
            if possibly {
                format!("({column} = ({item}) OR {column} IS NULL OR ({item}) IS NULL)")
            } else {
                format!("{column} = ({item})")
            }
        })
        .collect();
    format!(
        "EXISTS (SELECT 1 FROM ({subquery}) AS strata_in({}) WHERE {})",
        columns.join(", "),
        conditions.join(" AND ")
    )
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// Row `IN` subqueries among the AND-ed terms of a condition, where NULL counts as false.
fn row_in_conditions(condition: &mut Expr) {
    match condition {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            row_in_conditions(left);
            row_in_conditions(right);
        }
        Expr::Nested(inner) => row_in_conditions(inner),
        other => {
            let Some((items, subquery, negated)) = row_in(other) else {
                return;
            };
            let sql = if negated {
                format!("NOT {}", row_match(items, subquery, true))
            } else {
                row_match(items, subquery, false)
            };
            if let Some(replaced) = parse_expr(&sql) {
                *other = replaced;
            }
        }
    }
}

/// Row `IN` subqueries in a value (a SELECT list item), with all three answers.
fn row_in_values(expr: &mut Expr) {
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(expr, |e| {
        if let Some((items, subquery, negated)) = row_in(e) {
            let (equal, unknown) = if negated {
                ("false", "true")
            } else {
                ("true", "false")
            };
            let sql = format!(
                "CASE WHEN {} THEN {equal} WHEN {} THEN NULL ELSE {unknown} END",
                row_match(items, subquery, false),
                row_match(items, subquery, true),
            );
            if let Some(replaced) = parse_expr(&sql) {
                *e = replaced;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

fn exists_as_value(expr: &mut Expr) {
    struct Exists {
        depth: usize,
    }
    impl VisitorMut for Exists {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if self.depth > 0 {
                return ControlFlow::Continue(());
            }
            if let Expr::Exists { subquery, negated } = expr {
                // A count, not `(SELECT 1 … LIMIT 1) IS NOT NULL`: DataFusion takes a scalar
                // subquery of a constant for never NULL and folds the test to true.
                let test = if *negated { "= 0" } else { "> 0" };
                let sql = format!(
                    "((SELECT count(*) FROM (SELECT 1 FROM ({subquery}) AS strata_exists LIMIT 1) \
                     AS strata_exists) {test})"
                );
                if let Ok(replaced) = Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(&sql)
                    .and_then(|mut p| p.parse_expr())
                {
                    *expr = replaced;
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = expr.visit(&mut Exists { depth: 0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        rewrite(&mut statements[0]);
        statements[0].to_string()
    }

    #[test]
    fn similar_to_is_an_anchored_regex() {
        assert_eq!(similar_to_regex("%x.com", Some('\\')), r"^(?:.*x\.com)$");
        assert_eq!(similar_to_regex("(a|b)_\\%", Some('\\')), r"^(?:(a|b).\%)$");
        assert_eq!(
            rewritten("SELECT e NOT SIMILAR TO 'a%' FROM t"),
            "SELECT e !~ '^(?:a.*)$' FROM t"
        );
    }

    #[test]
    fn fetch_first_is_a_limit() {
        assert_eq!(
            rewritten("SELECT a FROM t ORDER BY a OFFSET 2 ROWS FETCH FIRST 5 ROWS ONLY"),
            "SELECT a FROM t ORDER BY a LIMIT 5 OFFSET 2 ROWS"
        );
        assert_eq!(
            rewritten("SELECT a FROM t FETCH NEXT ROW ONLY"),
            "SELECT a FROM t LIMIT 1"
        );
    }

    #[test]
    fn exists_in_a_select_list_is_a_scalar_subquery() {
        assert_eq!(
            rewritten("SELECT EXISTS (SELECT 1 FROM t WHERE t.a = u.a) AS e FROM u WHERE EXISTS (SELECT 1 FROM v)"),
            "SELECT ((SELECT count(*) FROM (SELECT 1 FROM (SELECT 1 FROM t WHERE t.a = u.a) AS strata_exists LIMIT 1) AS strata_exists) > 0) AS e FROM u WHERE EXISTS (SELECT 1 FROM v)"
        );
        assert_eq!(
            rewritten("SELECT NOT EXISTS (SELECT 1 FROM t)"),
            "SELECT ((SELECT count(*) FROM (SELECT 1 FROM (SELECT 1 FROM t) AS strata_exists LIMIT 1) AS strata_exists) = 0)"
        );
    }
}
