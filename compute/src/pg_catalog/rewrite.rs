//! Catalog-query syntax PostgreSQL clients send, turned into what DataFusion plans.
//!
//! - `pg_catalog.f(…)` → `f(…)` (functions live in one namespace here);
//! - `x::regclass`, `x::regtype`, `x::regnamespace`: a name becomes an oid, an oid prints as a
//!   name (through the `strata_reg*` functions); `::oid`, `::name`, `::"char"`,
//!   `::pg_catalog.text` become their plain SQL types;
//! - `a OPERATOR(pg_catalog.~) b` → `a ~ b`; `COLLATE …` is dropped (Strata compares in C);
//! - `current_schema`, `current_user`, `session_user`, `user` without parentheses are calls;
//! - `ARRAY(SELECT …)` → `(SELECT array_agg(x) FROM (SELECT …) AS _array(x))`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, Function, FunctionArgumentList, FunctionArguments,
    GroupByExpr, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Statement,
    TableFactor, Value, VisitMut, VisitorMut,
};

use super::functions::{REGCLASS_NAME, REGCLASS_OID, REGNAMESPACE_NAME, REGTYPE_NAME, REGTYPE_OID};

/// Applies the rewrites to every expression of `stmt`.
pub fn rewrite_catalog_syntax(stmt: &mut Statement) {
    struct Rewriter;
    impl VisitorMut for Rewriter {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Some(new) = rewrite(expr) {
                *expr = new;
            }
            if let Expr::Subquery(query) = expr {
                aggregate_catalog_lookup(query);
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            // `FROM pg_catalog.unnest(…)`, `pg_catalog.generate_series(…)`
            if let TableFactor::Table {
                name,
                args: Some(_),
                ..
            } = factor
            {
                let parts = name_parts(name);
                if let [schema, function] = parts.as_slice() {
                    if schema.eq_ignore_ascii_case("pg_catalog") {
                        *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(function))]);
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Rewriter);
}

/// A scalar subquery that looks one value up in the system catalogs
/// (`(SELECT c.collname FROM pg_catalog.pg_collation c WHERE c.oid = a.attcollation)`) selects
/// `max(value)` instead: DataFusion plans a correlated scalar subquery only when it is
/// aggregated, and such lookups find at most one row. Subqueries over user tables are left
/// alone, so that they keep PostgreSQL's error for more than one row.
fn aggregate_catalog_lookup(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    if select.projection.len() != 1
        || select.from.is_empty()
        || !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
    {
        return;
    }
    let only_catalog = select.from.iter().all(|t| {
        std::iter::once(&t.relation)
            .chain(t.joins.iter().map(|j| &j.relation))
            .all(|f| match f {
                TableFactor::Table {
                    name, args: None, ..
                } => {
                    let parts = name_parts(name);
                    let table = parts.last().map(|p| p.to_lowercase()).unwrap_or_default();
                    super::is_pg_catalog_table(&table)
                        && (parts.len() == 1 || parts[0].eq_ignore_ascii_case("pg_catalog"))
                }
                _ => false,
            })
    });
    if !only_catalog {
        return;
    }
    let item = &mut select.projection[0];
    let expr = match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return,
    };
    if let Some(aggregated) = parse_expr(&format!("max({expr})")) {
        *expr = aggregated;
    }
}

/// Functions PostgreSQL lets SQL name without parentheses.
const BARE_FUNCTIONS: &[&str] = &[
    "current_schema",
    "current_user",
    "session_user",
    "current_role",
    "current_catalog",
    "user",
];

fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    let sql = format!(
        "{name}({})",
        args.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    parse_expr(&sql).expect("a function call parses")
}

fn parse_expr(sql: &str) -> Option<Expr> {
    parser(sql)?.parse_expr().ok()
}

fn parse_type(sql: &str) -> Option<DataType> {
    parser(sql)?.parse_data_type().ok()
}

fn parser(sql: &str) -> Option<datafusion::sql::sqlparser::parser::Parser<'static>> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).ok()
}

fn is_literal(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_) | Value::Number(..))
    )
}

fn rewrite(expr: &Expr) -> Option<Expr> {
    match expr {
        Expr::Function(f) => rewrite_function(f),
        Expr::Identifier(ident) if ident.quote_style.is_none() => {
            let name = ident.value.to_lowercase();
            BARE_FUNCTIONS.contains(&name.as_str()).then(|| {
                call(
                    if name == "user" {
                        "current_user"
                    } else {
                        &name
                    },
                    vec![],
                )
            })
        }
        Expr::Collate { expr, .. } => Some((**expr).clone()),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::PGCustomBinaryOperator(parts),
            right,
        } => {
            let op = match parts.last()?.as_str() {
                "~" => BinaryOperator::PGRegexMatch,
                "~*" => BinaryOperator::PGRegexIMatch,
                "!~" => BinaryOperator::PGRegexNotMatch,
                "!~*" => BinaryOperator::PGRegexNotIMatch,
                "=" => BinaryOperator::Eq,
                "<>" | "!=" => BinaryOperator::NotEq,
                "<" => BinaryOperator::Lt,
                "<=" => BinaryOperator::LtEq,
                ">" => BinaryOperator::Gt,
                ">=" => BinaryOperator::GtEq,
                "~~" => BinaryOperator::PGLikeMatch,
                "||" => BinaryOperator::StringConcat,
                _ => return None,
            };
            Some(Expr::BinaryOp {
                left: left.clone(),
                op,
                right: right.clone(),
            })
        }
        Expr::Cast {
            kind: CastKind::DoubleColon | CastKind::Cast,
            expr: inner,
            data_type,
            ..
        } => rewrite_cast(expr, inner, data_type),
        _ => None,
    }
}

fn rewrite_function(f: &Function) -> Option<Expr> {
    let parts = name_parts(&f.name);
    let unqualified = match parts.as_slice() {
        [schema, name] if schema.eq_ignore_ascii_case("pg_catalog") => Some(name.clone()),
        _ => None,
    };
    let name = unqualified.clone().unwrap_or_else(|| parts.join("."));
    let lower = name.to_lowercase();
    // ARRAY(SELECT …)
    if lower == "array" {
        if let FunctionArguments::Subquery(query) = &f.args {
            return parse_expr(&format!(
                "(SELECT array_agg(_array.x) FROM ({query}) AS _array(x))"
            ));
        }
    }
    let bare =
        matches!(f.args, FunctionArguments::None) && BARE_FUNCTIONS.contains(&lower.as_str());
    if unqualified.is_none() && !bare {
        return None;
    }
    let mut new = f.clone();
    new.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]);
    if bare {
        new.args = FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![],
            clauses: vec![],
        });
        if lower == "user" {
            new.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new("current_user"))]);
        }
    }
    Some(Expr::Function(new))
}

fn rewrite_cast(whole: &Expr, inner: &Expr, data_type: &DataType) -> Option<Expr> {
    let type_name = match data_type {
        DataType::Regclass => "regclass".to_string(),
        DataType::Text | DataType::Varchar(_) | DataType::String(_) => "text".to_string(),
        DataType::Custom(name, modifiers) if modifiers.is_empty() => {
            let parts = name_parts(name);
            match parts.as_slice() {
                [schema, t] if schema.eq_ignore_ascii_case("pg_catalog") => t.to_lowercase(),
                [t] => t.to_lowercase(),
                _ => return None,
            }
        }
        _ => return None,
    };
    let inner = inner.clone();
    let with_type = |sql_type: &str| -> Option<Expr> {
        let Expr::Cast {
            kind,
            format,
            array,
            ..
        } = whole
        else {
            return None;
        };
        let data_type = parse_type(sql_type)?;
        Some(Expr::Cast {
            kind: kind.clone(),
            expr: Box::new(inner.clone()),
            data_type,
            array: *array,
            format: format.clone(),
        })
    };
    match type_name.as_str() {
        "regclass" if is_literal(&inner) => Some(call(REGCLASS_OID, vec![inner])),
        "regclass" => Some(call(REGCLASS_NAME, vec![inner])),
        "regtype" if is_literal(&inner) => Some(call(REGTYPE_OID, vec![inner])),
        "regtype" => Some(call(REGTYPE_NAME, vec![inner])),
        "regnamespace" => Some(call(REGNAMESPACE_NAME, vec![inner])),
        "regproc" | "regprocedure" => with_type("text"),
        "oid" | "xid" | "cid" | "tid" => with_type("bigint"),
        // `'t'::regclass::text` prints the name back.
        "name" | "char" | "text" | "varchar" | "bpchar" => match &inner {
            Expr::Function(f) if name_parts(&f.name) == [REGCLASS_OID] => {
                Some(call(REGCLASS_NAME, vec![inner.clone()]))
            }
            Expr::Function(f) if name_parts(&f.name) == [REGTYPE_OID] => {
                Some(call(REGTYPE_NAME, vec![inner.clone()]))
            }
            _ => with_type("text"),
        },
        "int2" | "int4" | "int8" | "float4" | "float8" | "bool" | "numeric" | "date"
        | "timestamp" | "timestamptz" | "bytea" => with_type(&type_name),
        "int2[]" | "_int2" | "int2vector" => with_type("smallint[]"),
        "oidvector" => with_type("bigint[]"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut stmt = crate::sql_rewrite::parse_sql(sql).unwrap().remove(0);
        rewrite_catalog_syntax(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn rewrites_catalog_syntax() {
        assert_eq!(rewritten("SELECT pg_catalog.version()"), "SELECT version()");
        assert_eq!(
            rewritten("SELECT c.oid::pg_catalog.regclass FROM c WHERE c.oid = 't'::regclass"),
            "SELECT strata_regclass_name(c.oid) FROM c WHERE c.oid = strata_regclass_oid('t')"
        );
        assert_eq!(
            rewritten(
                "SELECT 1 WHERE 'a' OPERATOR(pg_catalog.~) '^(a)$' COLLATE pg_catalog.default"
            ),
            "SELECT 1 WHERE 'a' ~ '^(a)$'"
        );
        assert_eq!(
            rewritten("SELECT current_schema, user"),
            "SELECT current_schema(), current_user()"
        );
        assert_eq!(rewritten("SELECT x::pg_catalog.text"), "SELECT x::TEXT");
        assert_eq!(
            rewritten("SELECT array(select 1)"),
            "SELECT (SELECT array_agg(_array.x) FROM (SELECT 1) AS _array (x))"
        );
    }
}
