//! Column defaults in INSERT, as PostgreSQL applies them: a column the statement does not name
//! gets its `DEFAULT` expression, and so does the `DEFAULT` keyword in a VALUES row.
//!
//! This is done on the statement's syntax before DataFusion plans it, so a default is just SQL
//! in the statement (`nextval('t_id_seq'::regclass)`, `now()`, `'x'`), planned and evaluated
//! per row like any other expression.

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Insert, ObjectName, ObjectNamePart, Parens, Query, SelectItem, SetExpr, Value,
    Values,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::catalog::{ColumnDef, Identity, TableDef};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::normalize;

/// Rewrites `insert` (into the table `def`) so that it names every column that has a default,
/// with the default's expression where the statement gave none or said `DEFAULT`.
pub fn fill_defaults(insert: &mut Insert, def: &TableDef) -> SqlResult<()> {
    let values_width = match insert.source.as_deref().map(|q| q.body.as_ref()) {
        Some(SetExpr::Values(values)) => Some(values_width(values)?),
        _ => None,
    };
    // `INSERT INTO t SELECT a, b` fills the first columns, as VALUES does.
    let select_width = insert.source.as_deref().and_then(|q| select_width(&q.body));
    if let Some(width) = select_width {
        let targets = match insert.columns.len() {
            0 => def.columns.len(),
            n => n,
        };
        let message = if width > targets {
            "INSERT has more expressions than target columns"
        } else if width < targets && !insert.columns.is_empty() {
            "INSERT has more target columns than expressions"
        } else {
            ""
        };
        if !message.is_empty() {
            return Err(SqlError::new(sqlstate::SYNTAX_ERROR, message));
        }
    }
    // The columns the statement gives values for, by position in the table.
    let named: Vec<usize> = if insert.columns.is_empty() {
        match (insert.source.is_some(), values_width) {
            (false, _) => Vec::new(),
            (true, Some(width)) => (0..width.min(def.columns.len())).collect(),
            // A query whose width is not known here (`SELECT *`) names every column.
            (true, None) => (0..select_width
                .unwrap_or(def.columns.len())
                .min(def.columns.len()))
                .collect(),
        }
    } else {
        listed_positions(insert, def)?
    };
    let missing: Vec<usize> = (0..def.columns.len())
        .filter(|i| !named.contains(i) && def.columns[*i].default.is_some())
        .collect();
    let defaults_in_values = values_width.is_some() && has_default_keyword(insert);
    let all_named = !insert.columns.is_empty() || named.len() == def.columns.len();
    if missing.is_empty() && !defaults_in_values && insert.source.is_some() && all_named {
        return check_given_values(def, &named);
    }

    let mut columns: Vec<usize> = named.clone();
    columns.extend(&missing);
    insert.columns = columns
        .iter()
        .map(|&i| {
            ObjectName(vec![ObjectNamePart::Identifier(quoted(
                &def.columns[i].name,
            ))])
        })
        .collect();
    match insert.source.as_deref_mut() {
        // `DEFAULT VALUES`: one row of defaults, or of NULL in the first column.
        None => {
            if insert.columns.is_empty() {
                if let Some(first) = def.columns.first() {
                    insert.columns = vec![ObjectName(vec![ObjectNamePart::Identifier(quoted(
                        &first.name,
                    ))])];
                }
                insert.source = Some(Box::new(values_query(vec![vec![null()]])));
            } else {
                let row = missing
                    .iter()
                    .map(|&i| default_expr(&def.columns[i]))
                    .collect::<SqlResult<Vec<_>>>()?;
                insert.source = Some(Box::new(values_query(vec![row])));
            }
        }
        Some(query) => match query.body.as_mut() {
            SetExpr::Values(values) => {
                for row in &mut values.rows {
                    for (value, &col) in row.content.iter_mut().zip(&named) {
                        if is_default_keyword(value) {
                            *value = default_expr(&def.columns[col])?;
                        } else {
                            check_given_value(&def.columns[col])?;
                        }
                    }
                    for &col in &missing {
                        row.content.push(default_expr(&def.columns[col])?);
                    }
                }
            }
            _ => {
                check_given_values(def, &named)?;
                if !missing.is_empty() {
                    let defaults = missing
                        .iter()
                        .map(|&i| default_expr(&def.columns[i]))
                        .collect::<SqlResult<Vec<_>>>()?;
                    *query = with_defaults(query, &defaults, select_width);
                }
            }
        },
    }
    Ok(())
}

/// Text literals in VALUES for columns whose type Arrow does not read from text as PostgreSQL
/// does (`'{1,2}'` for an `int[]`, `'1 day 02:00'` for an `interval`) become
/// `strata_input('…', 'type')`, which reads them with the type's input function.
pub fn typed_text_literals(insert: &mut Insert, def: &TableDef) -> SqlResult<()> {
    let positions: Vec<usize> = if insert.columns.is_empty() {
        (0..def.columns.len()).collect()
    } else {
        listed_positions(insert, def)?
    };
    let Some(SetExpr::Values(values)) = insert.source.as_deref_mut().map(|q| q.body.as_mut())
    else {
        return Ok(());
    };
    for row in &mut values.rows {
        for (value, &col) in row.content.iter_mut().zip(&positions) {
            let ty = def.columns[col].ty;
            let is_text =
                matches!(value, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)));
            if is_text && crate::text_input::needs_parser(&ty.arrow_type()) {
                *value = crate::text_input::input_call(value.clone(), ty);
            }
        }
    }
    Ok(())
}

/// The table positions of the columns an INSERT lists.
fn listed_positions(insert: &Insert, def: &TableDef) -> SqlResult<Vec<usize>> {
    insert
        .columns
        .iter()
        .map(|c| column_position(def, c))
        .collect()
}

fn values_width(values: &Values) -> SqlResult<usize> {
    let width = values.rows.first().map_or(0, |r| r.content.len());
    if values.rows.iter().any(|r| r.content.len() != width) {
        return Err(SqlError::syntax("VALUES lists must all be the same length"));
    }
    Ok(width)
}

fn column_position(def: &TableDef, name: &ObjectName) -> SqlResult<usize> {
    let ident = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .ok_or_else(|| SqlError::syntax(format!("invalid column name {name}")))?;
    let col = normalize(ident);
    def.columns
        .iter()
        .position(|c| c.name == col)
        .ok_or_else(|| {
            SqlError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!(
                    "column \"{col}\" of relation \"{}\" does not exist",
                    def.name
                ),
            )
        })
}

fn has_default_keyword(insert: &Insert) -> bool {
    match insert.source.as_deref().map(|q| q.body.as_ref()) {
        Some(SetExpr::Values(values)) => values
            .rows
            .iter()
            .flat_map(|r| &r.content)
            .any(is_default_keyword),
        _ => false,
    }
}

/// The `DEFAULT` keyword in a VALUES row (sqlparser reads it as an unquoted identifier).
pub fn is_default_keyword(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(Ident { value, quote_style: None, .. })
        if value.eq_ignore_ascii_case("default"))
}

/// Fails for a column the statement gives a value that it may only compute itself.
fn check_given_values(def: &TableDef, named: &[usize]) -> SqlResult<()> {
    named
        .iter()
        .try_for_each(|&i| check_given_value(&def.columns[i]))
}

/// 428C9 for a value given to an identity column defined as GENERATED ALWAYS or to a generated
/// column.
fn check_given_value(col: &ColumnDef) -> SqlResult<()> {
    if col.identity == Some(Identity::Always) {
        return Err(generated_always(col));
    }
    if col.generated.is_some() {
        return Err(crate::generated::not_default(col, false));
    }
    Ok(())
}

fn generated_always(col: &ColumnDef) -> SqlError {
    SqlError::new(
        sqlstate::GENERATED_ALWAYS,
        format!(
            "cannot insert a non-DEFAULT value into column \"{}\"",
            col.name
        ),
    )
    .with_detail(format!(
        "Column \"{}\" is an identity column defined as GENERATED ALWAYS.",
        col.name
    ))
    .with_hint("Use OVERRIDING SYSTEM VALUE to override.")
}

/// A column's default as an expression: NULL when it has none.
fn default_expr(col: &ColumnDef) -> SqlResult<Expr> {
    match &col.default {
        None => Ok(null()),
        Some(sql) => Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| {
                SqlError::new(
                    sqlstate::DATA_CORRUPTED,
                    format!("invalid default of column \"{}\": {e}", col.name),
                )
            }),
    }
}

fn null() -> Expr {
    Expr::value(Value::Null)
}

fn quoted(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

fn values_query(rows: Vec<Vec<Expr>>) -> Query {
    query(SetExpr::Values(Values {
        explicit_row: false,
        value_keyword: false,
        rows: rows.into_iter().map(Parens::with_empty_span).collect(),
    }))
}

fn query(body: SetExpr) -> Query {
    let mut q = parse_query("SELECT 1");
    *q.body = body;
    q
}

/// `SELECT *, <defaults> FROM (<source>) AS source`.
/// How many columns a query without wildcards returns (its first SELECT's list).
fn select_width(body: &SetExpr) -> Option<usize> {
    match body {
        SetExpr::Select(select) => {
            let wildcard = select.projection.iter().any(|item| {
                matches!(
                    item,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            });
            (!wildcard).then_some(select.projection.len())
        }
        SetExpr::Query(query) => select_width(&query.body),
        SetExpr::SetOperation { left, .. } => select_width(left),
        _ => None,
    }
}

/// `source` with the `defaults` as further columns. Every column gets a name of its own, so that
/// unnamed ones (`SELECT 1`, a default `7`) are not ambiguous.
fn with_defaults(source: &Query, defaults: &[Expr], width: Option<usize>) -> Query {
    let list: Vec<String> = defaults
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{d} AS \"strata default {i}\""))
        .collect();
    let columns = match width {
        Some(n) => format!(
            "({})",
            (0..n)
                .map(|i| format!("\"strata source {i}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    };
    parse_query(&format!(
        "SELECT *, {} FROM ({source}) AS source{columns}",
        list.join(", ")
    ))
}

/// A query Strata writes itself (from parsed SQL, so it parses again).
fn parse_query(sql: &str) -> Query {
    *Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_query())
        .expect("a query built from parsed SQL parses")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SqlType;
    use datafusion::sql::sqlparser::ast::Statement;

    fn table() -> TableDef {
        let col = |id: u32, name: &str, default: Option<&str>, identity| ColumnDef {
            id,
            name: name.into(),
            ty: SqlType::Int4,
            nullable: true,
            default: default.map(str::to_string),
            identity,
            enum_type: None,
            generated: None,
        };
        TableDef {
            id: 1,
            database: "postgres".into(),
            schema: "public".into(),
            name: "t".into(),
            columns: vec![
                col(1, "id", Some("nextval('t_id_seq'::regclass)"), None),
                col(2, "a", None, None),
                col(3, "b", Some("42"), None),
            ],
            primary_key: vec![1],
            next_column_id: 4,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
        }
    }

    fn rewritten(sql: &str) -> SqlResult<String> {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let Statement::Insert(insert) = &mut stmt else {
            panic!("not an insert")
        };
        fill_defaults(insert, &table())?;
        Ok(stmt.to_string())
    }

    #[test]
    fn missing_columns_and_the_default_keyword_get_defaults() {
        assert_eq!(
            rewritten("INSERT INTO t (a) VALUES (1), (2)").unwrap(),
            "INSERT INTO t (\"a\", \"id\", \"b\") VALUES (1, nextval('t_id_seq'::REGCLASS), 42), (2, nextval('t_id_seq'::REGCLASS), 42)"
        );
        assert_eq!(
            rewritten("INSERT INTO t VALUES (DEFAULT, 1, default)").unwrap(),
            "INSERT INTO t (\"id\", \"a\", \"b\") VALUES (nextval('t_id_seq'::REGCLASS), 1, 42)"
        );
        assert_eq!(
            rewritten("INSERT INTO t DEFAULT VALUES").unwrap(),
            "INSERT INTO t (\"id\", \"b\") VALUES (nextval('t_id_seq'::REGCLASS), 42)"
        );
        assert_eq!(
            rewritten("INSERT INTO t (a) SELECT x FROM s").unwrap(),
            "INSERT INTO t (\"a\", \"id\", \"b\") SELECT *, nextval('t_id_seq'::REGCLASS) AS \"strata default 0\", 42 AS \"strata default 1\" FROM (SELECT x FROM s) AS source (\"strata source 0\")"
        );
        assert!(rewritten("INSERT INTO t (a) VALUES (1), (2, 3)").is_err());
        assert_eq!(
            rewritten("INSERT INTO t VALUES (1, 2, 3)").unwrap(),
            "INSERT INTO t VALUES (1, 2, 3)",
            "nothing to fill"
        );
    }
}
