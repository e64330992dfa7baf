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
    ArrayElemTypeDef, BinaryOperator, CastKind, DataType, ExactNumberInfo, Expr, Function,
    FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, GroupByExpr, Ident,
    LambdaFunction, LambdaFunctionParameter, LambdaSyntax, ObjectName, ObjectNamePart,
    OneOrManyWithParens, OrderByKind, Query, Select, SelectItem, SetExpr, SetOperator,
    SetQuantifier, Statement, TableAlias, TableFactor, Value, ValueWithSpan, VisitMut, VisitorMut,
};

use super::functions::{REGCLASS_NAME, REGCLASS_OID, REGNAMESPACE_NAME, REGTYPE_NAME, REGTYPE_OID};
use super::quote_ident;

/// Applies the rewrites to every expression of `stmt`.
pub fn rewrite_catalog_syntax(stmt: &mut Statement) {
    print_regclass_names(stmt);
    struct Rewriter;
    impl VisitorMut for Rewriter {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            backslash_escape(expr);
            if let Some(new) = rewrite(expr) {
                *expr = new;
            }
            if let Expr::Subquery(query) = expr {
                if let Some(new) = catalog_lookup(query) {
                    *expr = new;
                }
            }
            if let Expr::Exists { subquery, negated } = expr {
                if let Some(new) = catalog_exists(subquery, *negated) {
                    *expr = new;
                }
            }
            ControlFlow::Continue(())
        }

        fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            no_partition_ancestors(query);
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
            if let Some(empty) = no_partition_ancestors_table(factor) {
                *factor = empty;
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Rewriter);
}

/// A scalar subquery that looks one value up in the system catalogs
/// (`(SELECT c.collname FROM pg_catalog.pg_collation c WHERE c.oid = a.attcollation)`), rewritten
/// into a form DataFusion decorrelates. Subqueries over user tables are left alone, so that they
/// keep PostgreSQL's error for more than one row.
///
/// - The value becomes `max(value)`: DataFusion plans a correlated scalar subquery only when it
///   is aggregated, and such lookups find at most one row.
/// - DataFusion decorrelates only equalities between inner and outer columns. A condition on
///   outer columns alone (`AND a.atthasdef`) moves out of the subquery into
///   `CASE WHEN cond THEN (subquery) END`, which keeps the NULL the filtered subquery gave. So
///   does a comparison of an outer and an inner value (`a.attcollation <> t.typcollation`), once
///   its inner side is itself looked up with the remaining conditions.
fn catalog_lookup(query: &Query) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if select.projection.len() != 1
        || select.from.is_empty()
        || !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
    {
        return None;
    }
    let inner_names = catalog_relations(select)?;
    let value = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    if is_aggregate(value) {
        return None;
    }
    let mut kept = Vec::new();
    let mut hoisted = Vec::new();
    let mut mixed = Vec::new();
    for conjunct in select.selection.iter().flat_map(conjuncts) {
        match (side_of(conjunct, &inner_names), conjunct) {
            (Side::Outer, _) => hoisted.push(conjunct.to_string()),
            (
                Side::Both,
                Expr::BinaryOp {
                    left,
                    op:
                        op @ (BinaryOperator::NotEq
                        | BinaryOperator::Lt
                        | BinaryOperator::LtEq
                        | BinaryOperator::Gt
                        | BinaryOperator::GtEq),
                    right,
                },
            ) if matches!(
                (side_of(left, &inner_names), side_of(right, &inner_names)),
                (Side::Outer, Side::Inner) | (Side::Inner, Side::Outer)
            ) =>
            {
                mixed.push((left, op, right))
            }
            _ => kept.push(conjunct.to_string()),
        }
    }
    let mut from = from_list(select);
    if !kept.is_empty() {
        from = format!("{from} WHERE {}", kept.join(" AND "));
    }
    let lookup = |e: &Expr| format!("(SELECT max({e}) FROM {from})");
    for (left, op, right) in mixed {
        let side = |e: &Expr| match side_of(e, &inner_names) {
            Side::Inner => lookup(e),
            _ => e.to_string(),
        };
        hoisted.push(format!("{} {op} {}", side(left), side(right)));
    }
    let value = match side_of(value, &inner_names) {
        Side::Inner | Side::Neither => lookup(value),
        // The value names outer columns too (`json_build_object('always', a.attidentity = 'a',
        // 'start', s.seqstart, …)`), which DataFusion cannot decorrelate inside the subquery:
        // it is computed outside, each inner column looked up on its own, and only where a row
        // matches (without one, PostgreSQL's subquery is NULL, not a value of NULL columns).
        Side::Outer | Side::Both => {
            if has_subquery(value) {
                return None;
            }
            hoisted.push(format!("(SELECT count(*) FROM {from}) > 0"));
            let mut value = value.clone();
            replace_inner_columns(&mut value, &inner_names, |column| {
                parse_expr(&lookup(column))
            })?;
            value.to_string()
        }
    };
    if hoisted.is_empty() {
        parse_expr(&value)
    } else {
        parse_expr(&format!(
            "CASE WHEN {} THEN {} END",
            hoisted.join(" AND "),
            value
        ))
    }
}

/// Whether `expr` holds a subquery.
fn has_subquery(expr: &Expr) -> bool {
    use datafusion::sql::sqlparser::ast::Visit;
    struct Finder;
    impl datafusion::sql::sqlparser::ast::Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    expr.visit(&mut Finder).is_break()
}

/// Replaces each column of `expr` that belongs to one of `inner_names` (or names no relation)
/// with what `replacement` makes of it; `None` when a replacement fails.
fn replace_inner_columns(
    expr: &mut Expr,
    inner_names: &[String],
    replacement: impl Fn(&Expr) -> Option<Expr>,
) -> Option<()> {
    struct Replacer<'a, F> {
        inner_names: &'a [String],
        replacement: F,
    }
    impl<F: Fn(&Expr) -> Option<Expr>> VisitorMut for Replacer<'_, F> {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                && side_of(expr, self.inner_names) == Side::Inner
            {
                match (self.replacement)(expr) {
                    Some(new) => *expr = new,
                    None => return ControlFlow::Break(()),
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut replacer = Replacer {
        inner_names,
        replacement,
    };
    expr.visit(&mut replacer).is_continue().then_some(())
}

/// The names (aliases, or else table names) of the relations a SELECT reads, when they are all
/// `pg_catalog` tables.
fn catalog_relations(select: &Select) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for factor in select
        .from
        .iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
    {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        else {
            return None;
        };
        let parts = name_parts(name);
        let table = parts.last().map(|p| p.to_lowercase()).unwrap_or_default();
        let in_catalog = super::is_pg_catalog_table(&table)
            && (parts.len() == 1 || parts[0].eq_ignore_ascii_case("pg_catalog"));
        if !in_catalog {
            return None;
        }
        names.push(match alias {
            Some(a) => a.name.value.to_lowercase(),
            None => table,
        });
    }
    (!names.is_empty()).then_some(names)
}

/// `EXISTS (SELECT … FROM <catalog tables> WHERE …)` as `(SELECT count(*) …) > 0`: DataFusion
/// runs EXISTS only as a filter, psql's `\d index` selects it as a column.
fn catalog_exists(subquery: &Query, negated: bool) -> Option<Expr> {
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return None;
    };
    if subquery.limit_clause.is_some()
        || select.having.is_some()
        || !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
    {
        return None;
    }
    catalog_relations(select)?;
    let (from, filter) = (from_list(select), where_clause(select));
    let test = if negated { "= 0" } else { "> 0" };
    parse_expr(&format!("((SELECT count(*) FROM {from}{filter}) {test})"))
}

/// `SELECT pg_partition_ancestors(r)`: Strata has no partitions, so no relation has ancestors and
/// the set is empty. psql's `\d` unions it with `r` itself (`… UNION ALL VALUES (r)`); that union
/// becomes its other side (DataFusion mislabels a union with a side it found empty).
fn no_partition_ancestors(query: &mut Query) {
    let body = query.body.as_mut();
    if let SetExpr::SetOperation {
        op: SetOperator::Union,
        set_quantifier: SetQuantifier::All,
        left,
        right,
    } = body
    {
        let rest = if partition_ancestors_of(left).is_some() {
            (**right).clone()
        } else if partition_ancestors_of(right).is_some() {
            (**left).clone()
        } else {
            return;
        };
        *body = match &rest {
            // `IN (VALUES (r))` does not plan; `IN (SELECT r)` does.
            SetExpr::Values(values) if values.rows.len() == 1 && values.rows[0].len() == 1 => {
                match parser(&format!("SELECT {}", values.rows[0][0]))
                    .and_then(|mut p| p.parse_query().ok())
                {
                    Some(select) => *select.body,
                    None => rest,
                }
            }
            _ => rest,
        };
        return;
    }
    if let (Some(relation), SetExpr::Select(select)) = (partition_ancestors_of(body), &mut *body) {
        let relation = if is_literal(&relation) {
            call(REGCLASS_OID, vec![relation])
        } else {
            relation
        };
        select.projection[0] = SelectItem::ExprWithAlias {
            expr: relation,
            alias: Ident::new("pg_partition_ancestors"),
        };
        select.selection = parse_expr("false");
    }
}

/// `FROM pg_partition_ancestors(r) [WITH ORDINALITY] AS a(relid, depth)`, which psql's `\d` reads
/// for triggers: an empty derived table with the alias's columns.
fn no_partition_ancestors_table(factor: &TableFactor) -> Option<TableFactor> {
    let TableFactor::Table {
        name,
        args: Some(_),
        alias,
        with_ordinality,
        ..
    } = factor
    else {
        return None;
    };
    if !name_parts(name)
        .last()
        .is_some_and(|n| n.eq_ignore_ascii_case("pg_partition_ancestors"))
    {
        return None;
    }
    let mut columns = vec!["pg_partition_ancestors".to_string()];
    if *with_ordinality {
        columns.push("ordinality".into());
    }
    if let Some(alias) = alias {
        for (column, named) in columns.iter_mut().zip(&alias.columns) {
            *column = named.name.value.clone();
        }
    }
    let items = columns
        .iter()
        .map(|c| format!("CAST(0 AS BIGINT) AS {}", quote_ident(c)))
        .collect::<Vec<_>>();
    let query = parser(&format!("SELECT {} WHERE false", items.join(", ")))?
        .parse_query()
        .ok()?;
    let mut alias = alias.clone().unwrap_or_else(|| TableAlias {
        explicit: true,
        name: Ident::new("pg_partition_ancestors"),
        columns: vec![],
        at: None,
    });
    alias.columns.clear();
    Some(TableFactor::Derived {
        lateral: false,
        subquery: query,
        alias: Some(alias),
        sample: None,
    })
}

/// `r`, when `body` is `SELECT pg_partition_ancestors(r)`.
fn partition_ancestors_of(body: &SetExpr) -> Option<Expr> {
    let SetExpr::Select(select) = body else {
        return None;
    };
    if !select.from.is_empty() || select.projection.len() != 1 {
        return None;
    }
    let (SelectItem::UnnamedExpr(Expr::Function(f))
    | SelectItem::ExprWithAlias {
        expr: Expr::Function(f),
        ..
    }) = &select.projection[0]
    else {
        return None;
    };
    if !name_parts(&f.name)
        .last()
        .is_some_and(|n| n.eq_ignore_ascii_case("pg_partition_ancestors"))
    {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(relation))] => Some(relation.clone()),
        _ => None,
    }
}

/// Whether `expr` is already an aggregate call, which a lookup must not wrap again.
fn is_aggregate(expr: &Expr) -> bool {
    const AGGREGATES: &[&str] = &[
        "array_agg",
        "string_agg",
        "count",
        "max",
        "min",
        "sum",
        "avg",
        "bool_and",
        "bool_or",
    ];
    matches!(expr, Expr::Function(f)
        if AGGREGATES.contains(&name_parts(&f.name).join(".").to_lowercase().as_str()))
}

/// A SELECT's `FROM` list as SQL text.
fn from_list(select: &Select) -> String {
    select
        .from
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A SELECT's ` WHERE …`, or nothing.
fn where_clause(select: &Select) -> String {
    select
        .selection
        .as_ref()
        .map(|s| format!(" WHERE {s}"))
        .unwrap_or_default()
}

/// The conjuncts of an `AND` tree.
fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        Expr::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}

/// Which query's columns an expression of a catalog lookup refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Only constants.
    Neither,
    /// Only the subquery's own tables (or unqualified names, which may be either).
    Inner,
    /// Only columns of an enclosing query.
    Outer,
    Both,
}

fn side_of(expr: &Expr, inner_names: &[String]) -> Side {
    use datafusion::sql::sqlparser::ast::Visit;
    struct Refs<'a> {
        inner_names: &'a [String],
        inner: bool,
        outer: bool,
    }
    impl datafusion::sql::sqlparser::ast::Visitor for Refs<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Identifier(_) => self.inner = true,
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    let qualifier = parts[parts.len() - 2].value.to_lowercase();
                    if self.inner_names.contains(&qualifier) {
                        self.inner = true;
                    } else {
                        self.outer = true;
                    }
                }
                // Anything nested may name columns this walk cannot place.
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                    self.inner = true;
                    self.outer = true;
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut refs = Refs {
        inner_names,
        inner: false,
        outer: false,
    };
    let _ = expr.visit(&mut refs);
    match (refs.inner, refs.outer) {
        (false, false) => Side::Neither,
        (true, false) => Side::Inner,
        (false, true) => Side::Outer,
        (true, true) => Side::Both,
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

/// `x LIKE 'pg^_%' ESCAPE '^'` becomes the same pattern with backslash escapes, the only escape
/// DataFusion takes (see `like_escape`): a literal pattern is converted here, another one by a call.
fn backslash_escape(expr: &mut Expr) {
    let (Expr::Like {
        pattern,
        escape_char,
        ..
    }
    | Expr::ILike {
        pattern,
        escape_char,
        ..
    }) = expr
    else {
        return;
    };
    let escape = match escape_char.as_ref().map(|v| &v.value) {
        Some(Value::SingleQuotedString(e)) if e.chars().count() == 1 && e != "\\" => {
            e.chars().next().expect("one character")
        }
        _ => return,
    };
    let converted = match pattern.as_ref() {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(text),
            ..
        }) => Expr::value(Value::SingleQuotedString(
            crate::like_escape::to_backslash_escapes(text, escape),
        )),
        other => call(
            crate::like_escape::NAME,
            vec![
                other.clone(),
                Expr::value(Value::SingleQuotedString(escape.to_string())),
            ],
        ),
    };
    **pattern = converted;
    *escape_char = None;
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
            op: BinaryOperator::Arrow,
            right,
        } => Some(call(
            crate::json::GET,
            vec![(**left).clone(), (**right).clone()],
        )),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::LongArrow,
            right,
        } => Some(call(
            crate::json::GET_TEXT,
            vec![(**left).clone(), (**right).clone()],
        )),
        Expr::BinaryOp { left, op, right } if json_path_function(op).is_some() => Some(call(
            json_path_function(op).expect("checked by the guard"),
            vec![(**left).clone(), (**right).clone()],
        )),
        // `<@` is `@>` reversed.
        Expr::BinaryOp {
            left,
            op: BinaryOperator::ArrowAt,
            right,
        } if is_json_operand(left) || is_json_operand(right) => Some(call(
            crate::json::CONTAINS,
            vec![(**right).clone(), (**left).clone()],
        )),
        // `@>` is also array containment: it is jsonb containment when one side is a text
        // literal or a json value.
        Expr::BinaryOp {
            left,
            op: BinaryOperator::AtArrow,
            right,
        } if is_json_operand(left) || is_json_operand(right) => Some(call(
            crate::json::CONTAINS,
            vec![(**left).clone(), (**right).clone()],
        )),
        Expr::BinaryOp {
            left,
            op: op @ (BinaryOperator::Eq | BinaryOperator::NotEq),
            right,
        } => {
            let (left, right) = match (array_literal(left, right), array_literal(right, left)) {
                (None, None) => return None,
                (l, r) => (
                    l.unwrap_or_else(|| (**left).clone()),
                    r.unwrap_or_else(|| (**right).clone()),
                ),
            };
            Some(Expr::BinaryOp {
                left: Box::new(left),
                op: op.clone(),
                right: Box::new(right),
            })
        }
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
        // `TIME '08:00'`: microseconds, as `time` columns hold (DataFusion makes nanoseconds).
        Expr::TypedString(typed) if is_time(&typed.data_type) => {
            Some(input_call(&Expr::Value(typed.value.clone()), "time"))
        }
        // `INTERVAL '1 day 02:00'`: read by PostgreSQL's rules, not Arrow's.
        Expr::Interval(interval)
            if interval.leading_field.is_none()
                && interval.leading_precision.is_none()
                && interval.last_field.is_none()
                && interval.fractional_seconds_precision.is_none() =>
        {
            Some(input_call(&interval.value, "interval"))
        }
        _ => None,
    }
}

/// `time` / `time without time zone`.
fn is_time(data_type: &DataType) -> bool {
    use datafusion::sql::sqlparser::ast::TimezoneInfo;
    matches!(
        data_type,
        DataType::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone)
    )
}

/// `strata_input(value, 'type')` (see `text_input`).
fn input_call(value: &Expr, type_name: &str) -> Expr {
    call(
        crate::text_input::INPUT_FUNCTION,
        vec![
            value.clone(),
            Expr::value(Value::SingleQuotedString(type_name.to_string())),
        ],
    )
}

/// `'{0}'` compared with a catalog array column (`pol.polroles = '{0}'`) becomes
/// `make_array(0)`: PostgreSQL types the literal from the column, DataFusion cannot cast text to
/// a list.
fn array_literal(literal: &Expr, column: &Expr) -> Option<Expr> {
    let column = match column {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => &parts.last()?.value,
        _ => return None,
    };
    if !super::tables::is_array_column(&column.to_lowercase()) {
        return None;
    }
    let Expr::Value(v) = literal else {
        return None;
    };
    let Value::SingleQuotedString(text) = &v.value else {
        return None;
    };
    let items = text.strip_prefix('{')?.strip_suffix('}')?;
    if items.is_empty() {
        return None;
    }
    let items = items
        .split(',')
        .map(|item| match item.trim().parse::<i64>() {
            Ok(n) => n.to_string(),
            Err(_) => format!("'{}'", item.trim().trim_matches('"').replace('\'', "''")),
        })
        .collect::<Vec<_>>();
    parse_expr(&format!("make_array({})", items.join(", ")))
}

/// `ARRAY(SELECT e(x) FROM unnest(a) x [WHERE w(x)])` as
/// `array_transform(array_filter(a, x -> w(x)), x -> e(x))`: a map over an array, which stays a
/// plain expression when `a` is a column of the enclosing query (psql's `\d+` prefixes toast
/// options this way).
fn mapped_array(query: &Query) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || select.projection.len() != 1
        || select.distinct.is_some()
        || select.having.is_some()
        || select.from.len() != 1
        || !select.from[0].joins.is_empty()
        || !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
    {
        return None;
    }
    let TableFactor::Table {
        name,
        args: Some(args),
        alias: Some(alias),
        ..
    } = &select.from[0].relation
    else {
        return None;
    };
    if !name_parts(name)
        .last()
        .is_some_and(|n| n.eq_ignore_ascii_case("unnest"))
    {
        return None;
    }
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(array))] = args.args.as_slice() else {
        return None;
    };
    let variable = match alias.columns.as_slice() {
        [] => alias.name.clone(),
        [column] => column.name.clone(),
        _ => return None,
    };
    let value = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    let lambda = |body: &Expr| {
        Expr::Lambda(LambdaFunction {
            params: OneOrManyWithParens::One(LambdaFunctionParameter {
                name: variable.clone(),
                data_type: None,
            }),
            body: Box::new(body.clone()),
            syntax: LambdaSyntax::Arrow,
        })
    };
    let higher_order = |function: &str, array: Expr, body: &Expr| {
        let mut call = call(function, vec![]);
        if let Expr::Function(f) = &mut call {
            f.args = FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: None,
                args: vec![
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(array)),
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(lambda(body))),
                ],
                clauses: vec![],
            });
        }
        call
    };
    let mut array = array.clone();
    if let Some(filter) = &select.selection {
        array = higher_order("array_filter", array, filter);
    }
    Some(higher_order("array_transform", array, value))
}

/// `ARRAY(SELECT v FROM … WHERE … ORDER BY …)` of one plain SELECT as
/// `(SELECT array_agg(v ORDER BY …) FROM … WHERE …)`: one aggregate, which DataFusion can
/// decorrelate, where a derived table would hide the outer columns.
fn aggregated_rows(query: &Query) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if query.with.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
        || select.projection.len() != 1
        || select.distinct.is_some()
        || select.having.is_some()
        || select.from.is_empty()
        || !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
    {
        return None;
    }
    let value = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    let order = match &query.order_by {
        None => String::new(),
        Some(order_by) => {
            let OrderByKind::Expressions(items) = &order_by.kind else {
                return None;
            };
            let items = items
                .iter()
                .map(|item| {
                    let by_position = matches!(&item.expr,
                        Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n == "1"));
                    let expr = if by_position { value } else { &item.expr };
                    format!("{expr}{}", item.options)
                })
                .collect::<Vec<_>>();
            format!(" ORDER BY {}", items.join(", "))
        }
    };
    let (from, filter) = (from_list(select), where_clause(select));
    parse_expr(&format!(
        "(SELECT array_agg({value}{order}) FROM {from}{filter})"
    ))
}

/// The json function behind `#>`, `#>>`, `?`, `?|` and `?&`.
fn json_path_function(op: &BinaryOperator) -> Option<&'static str> {
    Some(match op {
        BinaryOperator::HashArrow => crate::json::GET_PATH,
        BinaryOperator::HashLongArrow => crate::json::GET_PATH_TEXT,
        BinaryOperator::Question => crate::json::EXISTS,
        BinaryOperator::QuestionPipe => crate::json::EXISTS_ANY,
        BinaryOperator::QuestionAnd => crate::json::EXISTS_ALL,
        _ => return None,
    })
}

/// A text literal, a parameter (Strata stores no arrays, so `col @> $1` is jsonb), or a value a
/// json function made (`'…'::jsonb`, `doc -> 'k'`).
fn is_json_operand(expr: &Expr) -> bool {
    let json_functions = [
        crate::json::JSON_CAST,
        crate::json::JSONB_CAST,
        crate::json::GET,
        crate::json::GET_PATH,
        crate::json::SET,
    ];
    match expr {
        Expr::Value(v) => matches!(
            v.value,
            Value::SingleQuotedString(_) | Value::Placeholder(_)
        ),
        Expr::Function(f) => json_functions.contains(&name_parts(&f.name).join(".").as_str()),
        Expr::Nested(inner) => is_json_operand(inner),
        _ => false,
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
            return mapped_array(query)
                .or_else(|| aggregated_rows(query))
                .or_else(|| {
                    parse_expr(&format!(
                        "(SELECT array_agg(_array.x) FROM ({query}) AS _array(x))"
                    ))
                });
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

/// The lower-case name a cast's target type goes by here (`pg_catalog.int2[]` is `int2[]`).
/// A `regclass` or `regtype` value in the statement's result prints as the name it stands for,
/// as PostgreSQL's output function prints it. Inside the statement such a value is an oid, to
/// compare with catalog columns, so only the outermost select list turns it into its name.
fn print_regclass_names(stmt: &mut Statement) {
    let Statement::Query(query) = stmt else {
        return;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    for item in select.projection.iter_mut() {
        let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = item else {
            continue;
        };
        // A cast of a column already prints the name (see `rewrite`); a literal's is an oid.
        let Expr::Cast {
            data_type, expr, ..
        } = e
        else {
            continue;
        };
        if is_literal(expr)
            && matches!(
                cast_type_name(data_type).as_deref(),
                Some("regclass" | "regtype")
            )
        {
            *e = Expr::Cast {
                kind: CastKind::DoubleColon,
                expr: Box::new(e.clone()),
                data_type: DataType::Text,
                array: false,
                format: None,
            };
        }
    }
}

fn cast_type_name(data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Regclass => "regclass".to_string(),
        DataType::Uuid => "uuid".to_string(),
        DataType::JSON => "json".to_string(),
        DataType::JSONB => "jsonb".to_string(),
        DataType::Text | DataType::Varchar(_) | DataType::String(_) => "text".to_string(),
        DataType::Custom(name, modifiers) if modifiers.is_empty() => {
            let parts = name_parts(name);
            match parts.as_slice() {
                [schema, t] if schema.eq_ignore_ascii_case("pg_catalog") => t.to_lowercase(),
                [t] => t.to_lowercase(),
                _ => return None,
            }
        }
        DataType::Array(ArrayElemTypeDef::SquareBracket(element, _)) => {
            format!("{}[]", cast_type_name(element)?)
        }
        _ => return None,
    })
}

/// Whether `expr` computes text (a relation's name), not an oid, judged by its form:
/// `pg_get_serial_sequence(…)::regclass` names a relation as `'s'::regclass` does.
fn is_text_valued(expr: &Expr) -> bool {
    const TEXT_FUNCTIONS: &[&str] = &[
        "pg_get_serial_sequence",
        "format",
        "concat",
        "concat_ws",
        "quote_ident",
        "lower",
        "upper",
        "btrim",
        "trim",
        super::functions::TEXT_NAME,
    ];
    match expr {
        Expr::Nested(inner) => is_text_valued(inner),
        Expr::Function(f) => name_parts(&f.name)
            .last()
            .is_some_and(|n| TEXT_FUNCTIONS.contains(&n.to_lowercase().as_str())),
        Expr::BinaryOp {
            op: BinaryOperator::StringConcat,
            ..
        } => true,
        Expr::Cast { data_type, .. } => matches!(
            data_type,
            DataType::Text | DataType::Varchar(_) | DataType::String(_)
        ),
        _ => false,
    }
}

/// Whether a text literal is `'infinity'` or `'-infinity'`.
fn is_infinity_literal(expr: &Expr) -> bool {
    use crate::text_input::SpecialInput;
    matches!(expr, Expr::Value(v) if matches!(&v.value, Value::SingleQuotedString(s)
        if matches!(SpecialInput::parse(s), Some(SpecialInput::Infinity | SpecialInput::NegInfinity))))
}

fn rewrite_cast(whole: &Expr, inner: &Expr, data_type: &DataType) -> Option<Expr> {
    // Text into an array, an interval or a time: Arrow's cast reads none of them as PostgreSQL
    // does. (A parameter keeps its cast, which gives it its type.)
    // `('{a,b}')::varchar[]` (as Django writes it) is text too.
    let mut bare = inner;
    while let Expr::Nested(nested) = bare {
        bare = nested;
    }
    let text = matches!(bare, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)));
    let parameter = matches!(inner, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)));
    match data_type {
        DataType::Interval { .. } if !parameter => return Some(input_call(inner, "interval")),
        // A bare numeric keeps the value's scale (a parameter keeps its cast, for its type).
        DataType::Numeric(ExactNumberInfo::None)
        | DataType::Decimal(ExactNumberInfo::None)
        | DataType::Dec(ExactNumberInfo::None)
            if !parameter =>
        {
            return Some(call(crate::numeric_scale::NAME, vec![inner.clone()]))
        }
        t if is_time(t) && !parameter => return Some(input_call(inner, "time")),
        // `'Jan 5 2024'::date`: Arrow's cast reads ISO dates only.
        DataType::Date if text => return Some(input_call(bare, "date")),
        // `'infinity'::timestamp`: the type's largest value in the columns' unit, microseconds,
        // through `strata_input`. Other timestamp casts are not sent there as dates are:
        // DataFusion plans them as nanoseconds, and changing the unit of every timestamp
        // literal is beyond this. (`'now'`, `'today'`, `'epoch'`, … are read where DataFusion
        // casts the text, in `pg_casts`.)
        DataType::Timestamp(_, tz) if is_infinity_literal(bare) => {
            use datafusion::sql::sqlparser::ast::TimezoneInfo;
            let zoned = matches!(tz, TimezoneInfo::Tz | TimezoneInfo::WithTimeZone);
            return Some(input_call(
                bare,
                if zoned { "timestamptz" } else { "timestamp" },
            ));
        }
        DataType::Array(_) if text => {
            let name = data_type.to_string().to_lowercase();
            if crate::text_input::type_by_name(&name).is_some() {
                return Some(input_call(bare, &name));
            }
        }
        _ => {}
    }
    let type_name = cast_type_name(data_type)?;
    if parameter && matches!(type_name.as_str(), "oid" | "oid[]" | "_oid") {
        // Planned as int8 carrying the oid type (`cast_parameters::OidTypePlanner`), so that
        // the parameter is announced as an oid.
        return None;
    }
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
        "regclass" if is_literal(&inner) || is_text_valued(&inner) => {
            Some(call(REGCLASS_OID, vec![inner]))
        }
        "regclass" => Some(call(REGCLASS_NAME, vec![inner])),
        "regtype" if is_literal(&inner) => Some(call(REGTYPE_OID, vec![inner])),
        "regtype" => Some(call(REGTYPE_NAME, vec![inner])),
        "regnamespace" => Some(call(REGNAMESPACE_NAME, vec![inner])),
        "uuid" => Some(call(crate::uuid_functions::CAST_NAME, vec![inner])),
        "json" => Some(call(crate::json::JSON_CAST, vec![inner])),
        "jsonb" => Some(call(crate::json::JSONB_CAST, vec![inner])),
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
            // A plain text value: a cast alone would keep a json or uuid column's type.
            _ if !is_literal(&inner) && type_name == "text" => {
                Some(call(super::functions::TEXT_NAME, vec![inner.clone()]))
            }
            _ => with_type("text"),
        },
        "int2" | "int4" | "int8" | "float4" | "float8" | "bool" | "numeric" | "date"
        | "timestamp" | "timestamptz" | "bytea" => with_type(&type_name),
        "int2[]" | "_int2" | "int2vector" => with_type("smallint[]"),
        "int4[]" | "_int4" => with_type("int[]"),
        "int8[]" | "_int8" | "oid[]" | "_oid" => with_type("bigint[]"),
        "text[]" | "_text" | "name[]" | "_name" => with_type("text[]"),
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
    fn like_escapes_become_backslashes() {
        assert_eq!(
            rewritten(r"SELECT 1 WHERE n NOT LIKE 'pg^_%' ESCAPE '^'"),
            r"SELECT 1 WHERE n NOT LIKE 'pg\_%'"
        );
        assert_eq!(
            rewritten(r"SELECT 1 WHERE n ILIKE 'a\b#%' ESCAPE '#'"),
            r"SELECT 1 WHERE n ILIKE 'a\\b\%'"
        );
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
        assert_eq!(
            rewritten("SELECT x::pg_catalog.text"),
            "SELECT strata_text(x)"
        );
        assert_eq!(rewritten("SELECT 'a'::pg_catalog.text"), "SELECT 'a'::TEXT");
        // A computed name is looked up as a name.
        assert_eq!(
            rewritten("SELECT pg_catalog.pg_get_serial_sequence('t', 'id')::regclass::oid"),
            "SELECT strata_regclass_oid(pg_get_serial_sequence('t', 'id'))::BIGINT"
        );
        assert_eq!(
            rewritten("SELECT 1 FROM pg_policy p WHERE p.polroles = '{0}' AND name = '{0}'"),
            "SELECT 1 FROM pg_policy p WHERE p.polroles = make_array(0) AND name = '{0}'"
        );
        assert_eq!(
            rewritten("SELECT array(select 1)"),
            "SELECT (SELECT array_agg(_array.x) FROM (SELECT 1) AS _array (x))"
        );
        assert_eq!(
            rewritten("SELECT array(select rolname from pg_roles where oid = 1 order by 1 desc)"),
            "SELECT (SELECT array_agg(rolname ORDER BY rolname DESC) FROM pg_roles WHERE oid = 1)"
        );
        assert_eq!(
            rewritten("SELECT array(select 'toast.' || x from pg_catalog.unnest(tc.o) x)"),
            "SELECT array_transform(tc.o, x -> 'toast.' || x)"
        );
        assert_eq!(
            rewritten("SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = i.indrelid)"),
            "SELECT ((SELECT count(*) FROM pg_constraint WHERE conrelid = i.indrelid) > 0)"
        );
        assert_eq!(
            rewritten(
                "SELECT 1 WHERE x IN (SELECT pg_catalog.pg_partition_ancestors('1') \
                 UNION ALL VALUES ('1'::pg_catalog.regclass))"
            ),
            "SELECT 1 WHERE x IN (SELECT strata_regclass_oid('1'))"
        );
        assert_eq!(
            rewritten("SELECT pg_catalog.pg_partition_ancestors('16384')"),
            "SELECT strata_regclass_oid('16384') AS pg_partition_ancestors WHERE false"
        );
    }

    #[test]
    fn moves_outer_conditions_out_of_catalog_lookups() {
        assert_eq!(
            rewritten(
                "SELECT (SELECT d.adbin FROM pg_catalog.pg_attrdef d \
                 WHERE d.adrelid = a.attrelid AND a.atthasdef) FROM pg_attribute a"
            ),
            "SELECT CASE WHEN a.atthasdef THEN (SELECT max(d.adbin) FROM pg_catalog.pg_attrdef d \
             WHERE d.adrelid = a.attrelid) END FROM pg_attribute a"
        );
        assert_eq!(
            rewritten(
                "SELECT (SELECT c.collname FROM pg_collation c, pg_type t \
                 WHERE c.oid = a.attcollation AND a.attcollation <> t.typcollation) \
                 FROM pg_attribute a"
            ),
            "SELECT CASE WHEN a.attcollation <> (SELECT max(t.typcollation) FROM pg_collation c, \
             pg_type t WHERE c.oid = a.attcollation) THEN (SELECT max(c.collname) FROM \
             pg_collation c, pg_type t WHERE c.oid = a.attcollation) END FROM pg_attribute a"
        );
        // A value naming outer columns is computed outside, from its inner columns looked up
        // one by one, where a row matches.
        assert_eq!(
            rewritten(
                "SELECT (SELECT json_build_object('always', a.attidentity = 'a', 'start', \
                 s.seqstart) FROM pg_sequence s WHERE a.attidentity != '' AND \
                 s.seqrelid = a.attrelid) FROM pg_attribute a"
            ),
            "SELECT CASE WHEN a.attidentity <> '' AND (SELECT count(*) FROM pg_sequence s \
             WHERE s.seqrelid = a.attrelid) > 0 THEN json_build_object('always', \
             a.attidentity = 'a', 'start', (SELECT max(s.seqstart) FROM pg_sequence s \
             WHERE s.seqrelid = a.attrelid)) END FROM pg_attribute a"
        );
        // A lookup in a user table keeps PostgreSQL's semantics.
        assert_eq!(
            rewritten("SELECT (SELECT x FROM t WHERE t.a = o.a AND o.b) FROM o"),
            "SELECT (SELECT x FROM t WHERE t.a = o.a AND o.b) FROM o"
        );
    }
}
