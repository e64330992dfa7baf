//! Result column names as PostgreSQL chooses them.
//!
//! DataFusion names an unaliased expression after its full text (`count(*)`), PostgreSQL after
//! the function or column it is (`count`), or `?column?`. Drivers that read columns by name see
//! the PostgreSQL names, so they are worked out from the SELECT list here (PostgreSQL's
//! `FigureColname`).

use datafusion::sql::sqlparser::ast::{
    CastKind, DataType as SqlDataType, Expr, Query, SelectItem, SetExpr, Statement, TimezoneInfo,
};

use crate::names::normalize;

/// Names of the result columns of a query, or `None` when they cannot be told from the SQL alone
/// (a `*` in the SELECT list expands to the table's own column names, which DataFusion keeps).
pub fn query_column_names(stmt: &Statement) -> Option<Vec<String>> {
    match stmt {
        Statement::Query(q) => names_of_query(q),
        _ => None,
    }
}

fn names_of_query(q: &Query) -> Option<Vec<String>> {
    names_of_set_expr(&q.body)
}

fn names_of_set_expr(body: &SetExpr) -> Option<Vec<String>> {
    match body {
        SetExpr::Select(select) => select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::UnnamedExpr(e) => {
                    Some(figure_name(e).unwrap_or_else(|| "?column?".to_string()))
                }
                SelectItem::ExprWithAlias { alias, .. } => Some(normalize(alias)),
                _ => None,
            })
            .collect(),
        SetExpr::Query(q) => names_of_query(q),
        SetExpr::SetOperation { left, .. } => names_of_set_expr(left),
        SetExpr::Values(v) => Some(
            (1..=v.rows.first().map_or(0, |r| r.len()))
                .map(|i| format!("column{i}"))
                .collect(),
        ),
        _ => None,
    }
}

/// The name PostgreSQL gives an unaliased expression, if it has one (else `?column?`).
pub fn figure_name(e: &Expr) -> Option<String> {
    figure(e).map(|(name, _)| name)
}

/// How firmly a name was chosen: a name from a type (of a cast) gives way to an outer cast's
/// type, a name from a column or function does not (PostgreSQL's `FigureColnameInternal`
/// strengths 1 and 2), so `'1'::int::text` is `text` and `c::text` is `c`.
const FROM_TYPE: u8 = 1;
const FROM_NAME: u8 = 2;

fn figure(e: &Expr) -> Option<(String, u8)> {
    let named = |name: &str| Some((name.to_string(), FROM_NAME));
    match e {
        Expr::Identifier(id) => Some((normalize(id), FROM_NAME)),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| (normalize(p), FROM_NAME)),
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|p| (normalize(p), FROM_NAME)),
        Expr::Nested(inner) => figure(inner),
        Expr::Cast {
            expr,
            data_type,
            kind,
            ..
        } => match figure(expr) {
            Some(inner) if inner.1 == FROM_NAME => Some(inner),
            inner => match kind {
                CastKind::Cast | CastKind::DoubleColon | CastKind::TryCast | CastKind::SafeCast => {
                    type_column_name(data_type)
                        .map(|name| (name, FROM_TYPE))
                        .or(inner)
                }
            },
        },
        // `DATE '2024-01-02'`, `TIMESTAMP '…'`: named after the type, as a cast is.
        Expr::TypedString(typed) => {
            type_column_name(&typed.data_type).map(|name| (name, FROM_TYPE))
        }
        Expr::Case { .. } => named("case"),
        Expr::Exists { .. } => named("exists"),
        Expr::Subquery(q) => names_of_query(q)
            .and_then(|n| n.into_iter().next())
            .map(|name| (name, FROM_NAME)),
        Expr::Array(_) => named("array"),
        // `INTERVAL '1 day'` is a cast of a literal to PostgreSQL.
        Expr::Interval(_) => Some(("interval".into(), FROM_TYPE)),
        // `c[1]` is named after the array.
        Expr::CompoundFieldAccess { root, .. } => figure(root),
        Expr::Extract { .. } => named("extract"),
        // `substr(…)` is the same expression, written with the function's other name.
        Expr::Substring {
            shorthand: true, ..
        } => named("substr"),
        Expr::Substring { .. } => named("substring"),
        Expr::Trim { .. } => named("btrim"),
        Expr::Position { .. } => named("position"),
        Expr::Ceil { .. } => named("ceil"),
        Expr::Floor { .. } => named("floor"),
        _ => None,
    }
}

/// The internal type name PostgreSQL uses to name a cast of a literal (`'1'::int` is `int4`).
fn type_column_name(t: &SqlDataType) -> Option<String> {
    use SqlDataType as D;
    Some(
        match t {
            D::Int(_) | D::Integer(_) | D::Int4(_) => "int4",
            D::SmallInt(_) | D::Int2(_) => "int2",
            D::BigInt(_) | D::Int8(_) => "int8",
            D::Real | D::Float4 => "float4",
            D::DoublePrecision | D::Float8 | D::Double(_) => "float8",
            D::Numeric(_) | D::Decimal(_) | D::Dec(_) => "numeric",
            D::Text => "text",
            D::Varchar(_) | D::CharacterVarying(_) | D::CharVarying(_) => "varchar",
            D::Bool | D::Boolean => "bool",
            D::Date => "date",
            D::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => "timestamptz",
            D::Timestamp(..) => "timestamp",
            D::Bytea => "bytea",
            D::Interval { .. } => "interval",
            D::Time(..) => "time",
            D::Uuid => "uuid",
            D::JSON => "json",
            D::JSONB => "jsonb",
            D::Regclass => "regclass",
            D::Custom(name, _) if name.to_string().eq_ignore_ascii_case("regtype") => "regtype",
            // A type of the catalog (an enum type) names the column after itself.
            D::Custom(name, args) if args.is_empty() => {
                return name.0.last().and_then(|p| p.as_ident()).map(normalize)
            }
            D::Array(datafusion::sql::sqlparser::ast::ArrayElemTypeDef::SquareBracket(e, _)) => {
                return type_column_name(e)
            }
            _ => return None,
        }
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn names(sql: &str) -> Option<Vec<String>> {
        query_column_names(&Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap()[0])
    }

    #[test]
    fn names_follow_postgres() {
        assert_eq!(
            names("SELECT count(*), a, t.B, 1, '1'::int, a::text, x AS \"Y\", sum(a) total FROM t")
                .unwrap(),
            ["count", "a", "b", "?column?", "int4", "a", "Y", "total"]
        );
        assert_eq!(names("SELECT * FROM t"), None);
        assert_eq!(names("SELECT 1 UNION SELECT 2").unwrap(), ["?column?"]);
    }
}
