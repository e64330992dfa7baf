//! Adjustments to a parsed statement before DataFusion plans it, where PostgreSQL accepts
//! something DataFusion does not.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, SelectItem, SetExpr, Statement, TableAlias, TableAliasColumnDef,
    TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace, Word};

use crate::column_names::figure_name;
use crate::names::normalize;

/// Names every SELECT item as PostgreSQL does, for DataFusion.
///
/// DataFusion names an unnamed expression after its text (`count(*)`), PostgreSQL after what it
/// is (`count`, `?column?`): a derived table's `count(*)` is `s.count` in PostgreSQL. And
/// PostgreSQL allows one name twice in a SELECT list (`SELECT a, a`, `SELECT NULL, NULL`) where
/// DataFusion needs unique names. So every unnamed expression gets its PostgreSQL name as an
/// alias, and a repeated name gets a suffix. The names clients see are worked out from the
/// statement as written (see `column_names`), so the suffixes never show.
pub fn alias_duplicate_expressions(stmt: &mut Statement) {
    struct Namer;
    impl VisitorMut for Namer {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            name_set_expr(&mut query.body);
            ControlFlow::Continue(())
        }

        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            number_function_rows(factor);
            json_set_in_from(factor);
            name_function_column(factor);
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Namer);
}

/// `FROM generate_series(1, 3) AS g`: PostgreSQL names the one column of a function returning
/// a scalar after the alias (`g`), or after the function without one, where DataFusion calls it
/// `value`.
fn name_function_column(factor: &mut TableFactor) {
    const ONE_COLUMN_FUNCTIONS: &[&str] = &["generate_series", "range", "unnest"];
    let (function, alias) = match factor {
        TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } => {
            let function = normalize_function_name(name);
            // `unnest(a, b)` has a column per array.
            let one_column = ONE_COLUMN_FUNCTIONS.contains(&function.as_str())
                && (function != "unnest" || args.args.len() == 1);
            if !one_column {
                return;
            }
            (function, alias)
        }
        // sqlparser reads `unnest(…)` in FROM as a factor of its own.
        TableFactor::UNNEST {
            array_exprs, alias, ..
        } if array_exprs.len() == 1 => ("unnest".to_string(), alias),
        _ => return,
    };
    let alias = alias.get_or_insert_with(|| TableAlias {
        explicit: true,
        name: Ident::new(function),
        columns: Vec::new(),
        at: None,
    });
    if alias.columns.is_empty() {
        alias
            .columns
            .push(TableAliasColumnDef::from_name(alias.name.value.clone()));
    }
}

/// `FROM f(…) WITH ORDINALITY [AS t(…)]`: PostgreSQL numbers the function's rows from 1 in a
/// last column, `ordinality` (bigint). DataFusion ignores the clause on a table function and
/// refuses it on `unnest`, so the factor becomes
/// `(SELECT *, CAST(row_number() OVER () AS BIGINT) AS ordinality FROM f(…) AS t) AS t(…)`.
/// The window sits right on the function's single stream of rows, so the numbers follow the
/// function's order; a filter of the enclosing query stays above it.
fn number_function_rows(factor: &mut TableFactor) {
    // The function's name, and how many columns it has when that is known.
    let (with_ordinality, alias, function, own_columns) = match factor {
        TableFactor::Table {
            name,
            args: Some(_),
            with_ordinality,
            alias,
            ..
        } => {
            let function = normalize_function_name(name);
            let own_columns =
                matches!(function.as_str(), "generate_series" | "range" | "unnest").then_some(1);
            (with_ordinality, alias, function, own_columns)
        }
        TableFactor::UNNEST {
            with_ordinality,
            alias,
            array_exprs,
            ..
        } => (
            with_ordinality,
            alias,
            "unnest".to_string(),
            Some(array_exprs.len()),
        ),
        _ => return,
    };
    if !*with_ordinality {
        return;
    }
    let Ok(mut parsed) = parse_sql(
        "SELECT *, CAST(row_number() OVER () AS BIGINT) AS ordinality FROM strata_function",
    ) else {
        return;
    };
    let Some(Statement::Query(mut subquery)) = parsed.pop() else {
        return;
    };
    let SetExpr::Select(select) = subquery.body.as_mut() else {
        return;
    };
    *with_ordinality = false;
    let mut outer = alias.take().unwrap_or_else(|| TableAlias {
        explicit: true,
        name: Ident::new(function),
        columns: Vec::new(),
        at: None,
    });
    // The function's own columns take the alias's names; `ordinality` takes the one after them
    // (when a function's column count is unknown, all names stay with the derived table).
    let inner_columns = match own_columns {
        Some(n) if outer.columns.len() <= n => std::mem::take(&mut outer.columns),
        Some(n) => outer.columns[..n].to_vec(),
        None => Vec::new(),
    };
    *alias = Some(TableAlias {
        explicit: true,
        name: outer.name.clone(),
        columns: inner_columns,
        at: None,
    });
    // The function goes into the subquery's FROM, in place of its placeholder name.
    std::mem::swap(&mut select.from[0].relation, factor);
    *factor = TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(outer),
        sample: None,
    };
}

/// `FROM jsonb_each(x) AS e`: a derived table of the rows (see `json_sets`), LATERAL so that
/// `x` may name the columns of tables before it.
fn json_set_in_from(factor: &mut TableFactor) {
    let TableFactor::Table {
        name,
        args: Some(args),
        alias,
        ..
    } = factor
    else {
        return;
    };
    let function = normalize_function_name(name);
    let Some(exprs) = unnamed_args(&args.args) else {
        return;
    };
    let Some(mut columns) = crate::json_sets::from_clause_columns(&function, &exprs) else {
        return;
    };
    // A function returning a bare value (not an OUT column) names its column after the alias.
    if let (Some(alias), [(column, _)]) = (alias.as_ref(), columns.as_mut_slice()) {
        if function == "jsonb_object_keys" && alias.columns.is_empty() {
            *column = alias.name.value.clone();
        }
    }
    let list: Vec<String> = columns
        .iter()
        .map(|(column, expr)| format!("{expr} AS {}", Ident::with_quote('"', column)))
        .collect();
    let Ok(mut parsed) = parse_sql(&format!("SELECT {}", list.join(", "))) else {
        return;
    };
    let Some(Statement::Query(subquery)) = parsed.pop() else {
        return;
    };
    let alias = alias
        .take()
        .unwrap_or_else(|| datafusion::sql::sqlparser::ast::TableAlias {
            explicit: true,
            name: Ident::new(function.clone()),
            columns: Vec::new(),
            at: None,
        });
    *factor = TableFactor::Derived {
        lateral: true,
        subquery,
        alias: Some(alias),
        sample: None,
    };
}

fn name_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            let mut used = HashSet::new();
            for item in select.projection.iter_mut() {
                let (expr, name, plain_column) = match item {
                    SelectItem::UnnamedExpr(e) => {
                        let plain = matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                        let name = figure_name(e).unwrap_or_else(|| "?column?".to_string());
                        expand_set_returning(e);
                        (e.clone(), name, plain)
                    }
                    SelectItem::ExprWithAlias { alias, expr } => {
                        expand_set_returning(expr);
                        let name = normalize(alias);
                        (expr.clone(), name, false)
                    }
                    _ => continue,
                };
                let unique = if used.contains(&name) {
                    (2..)
                        .map(|i| format!("{name}_{i}"))
                        .find(|n| !used.contains(n))
                        .expect("some suffix is free")
                } else {
                    name.clone()
                };
                used.insert(unique.clone());
                // A plain column keeps its own name unless it repeats.
                if !plain_column || unique != name {
                    *item = SelectItem::ExprWithAlias {
                        expr,
                        alias: Ident::with_quote('"', unique),
                    };
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            name_set_expr(left);
            name_set_expr(right);
        }
        _ => {}
    }
}

/// `SELECT generate_series(1, 3)` returns three rows in PostgreSQL, where DataFusion's scalar
/// `generate_series` returns one array: in a SELECT list (alone or inside operators and casts,
/// not in subqueries, which are SELECT lists of their own) the call becomes
/// `unnest(generate_series(…))`, which DataFusion expands into rows. Several such calls run in
/// lockstep, the shorter padded with NULLs, as in PostgreSQL 10 and later.
fn expand_set_returning(expr: &mut Expr) {
    match expr {
        Expr::Function(f) if normalize_function_name(&f.name) == crate::series::NAME => {
            let call = std::mem::replace(
                expr,
                Expr::value(datafusion::sql::sqlparser::ast::Value::Null),
            );
            *expr = function_call("unnest", vec![call]);
        }
        Expr::Function(f) => {
            let function = normalize_function_name(&f.name);
            let datafusion::sql::sqlparser::ast::FunctionArguments::List(list) = &f.args else {
                return;
            };
            let Some(args) = unnamed_args(&list.args) else {
                return;
            };
            if let Some(rows) = crate::json_sets::select_list_rows(&function, &args) {
                *expr = rows;
            }
        }
        Expr::BinaryOp { left, right, .. } => {
            expand_set_returning(left);
            expand_set_returning(right);
        }
        Expr::UnaryOp { expr, .. } | Expr::Cast { expr, .. } | Expr::Nested(expr) => {
            expand_set_returning(expr)
        }
        _ => {}
    }
}

/// A call's arguments as expressions, when every one is a plain positional expression.
fn unnamed_args(args: &[datafusion::sql::sqlparser::ast::FunctionArg]) -> Option<Vec<Expr>> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr};
    args.iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// The expression `name(args…)`: a plain call, built as the parser would build it.
pub fn function_call(name: &str, args: Vec<Expr>) -> Expr {
    use datafusion::sql::sqlparser::ast::{
        Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, ObjectName,
    };
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// A function's name without a `pg_catalog.` qualifier, as PostgreSQL compares it.
fn normalize_function_name(name: &datafusion::sql::sqlparser::ast::ObjectName) -> String {
    match name.0.as_slice() {
        [f] => f.as_ident().map(normalize).unwrap_or_default(),
        [schema, f]
            if schema
                .as_ident()
                .is_some_and(|s| normalize(s) == "pg_catalog") =>
        {
            f.as_ident().map(normalize).unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// Parses SQL as PostgreSQL would accept it, smoothing over syntax the parser does not know.
///
/// Done on tokens, never on text, so that string literals and identifiers are left alone:
/// - boolean option values written `ON`/`OFF`/`1`/`0` (`COPY … WITH (FREEZE ON)`, `HEADER 1`)
///   become `TRUE`/`FALSE`;
/// - `VACUUM` keeps only its keyword: it does nothing in Strata (storage is immutable layers),
///   and PostgreSQL's options and table lists (`VACUUM ANALYZE t`, `VACUUM (VERBOSE) t`) need
///   not parse.
pub fn parse_sql(sql: &str) -> Result<Vec<Statement>, String> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};

    let dialect = PostgreSqlDialect {};
    let mut tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| e.to_string())?;
    let is_word = |t: &Token, kw: Keyword| matches!(t, Token::Word(w) if w.keyword == kw && w.quote_style.is_none());
    let boolean_options = [Keyword::FREEZE, Keyword::HEADER];
    let mut previous: Option<usize> = None;
    let mut in_vacuum = false;
    for i in 0..tokens.len() {
        if matches!(tokens[i].token, Token::Whitespace(_)) {
            continue;
        }
        let statement_start = previous.is_none_or(|p| tokens[p].token == Token::SemiColon);
        if tokens[i].token == Token::SemiColon {
            in_vacuum = false;
        } else if in_vacuum {
            tokens[i].token =
                Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space);
            continue;
        } else if statement_start && is_word(&tokens[i].token, Keyword::VACUUM) {
            in_vacuum = true;
        }
        let after_boolean_option = previous.is_some_and(|p| {
            boolean_options
                .iter()
                .any(|kw| is_word(&tokens[p].token, *kw))
        });
        if after_boolean_option {
            let value = match &tokens[i].token {
                Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("on") => {
                    Some(true)
                }
                Token::Word(w)
                    if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("off") =>
                {
                    Some(false)
                }
                Token::Number(n, _) if n == "1" => Some(true),
                Token::Number(n, _) if n == "0" => Some(false),
                _ => None,
            };
            if let Some(v) = value {
                let (text, keyword) = if v {
                    ("TRUE", Keyword::TRUE)
                } else {
                    ("FALSE", Keyword::FALSE)
                };
                tokens[i].token = Token::Word(Word {
                    value: text.into(),
                    quote_style: None,
                    keyword,
                });
            }
        }
        previous = Some(i);
    }
    row_lock_strengths(&mut tokens);
    database_options(&mut tokens);
    let time_travel = tokens
        .iter()
        .any(|t| matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("system_time")));
    let versioned = crate::dialect::TimeTravelDialect::default();
    let parser = if time_travel {
        Parser::new(&versioned)
    } else {
        Parser::new(&dialect)
    };
    parser
        .with_tokens_with_locations(insert_select_on_conflict(create_table_as_clauses(
            set_constraints(order_sequence_options(table_statements(
                drop_index_concurrently(tokens),
            ))),
        )))
        .parse_statements()
        .map_err(|e| e.to_string())
}

/// `FOR NO KEY UPDATE` and `FOR KEY SHARE`, which the parser does not know, become `FOR UPDATE`
/// and `FOR SHARE`: Strata's row locks have the two strengths, and the weaker PostgreSQL ones
/// only let more through than these.
fn row_lock_strengths(tokens: &mut [TokenWithSpan]) {
    let words: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let is = |t: &TokenWithSpan, kw: Keyword| keyword_of(t) == Some(kw);
    for w in words.windows(4) {
        if is(&tokens[w[0]], Keyword::FOR)
            && is(&tokens[w[1]], Keyword::NO)
            && is(&tokens[w[2]], Keyword::KEY)
            && is(&tokens[w[3]], Keyword::UPDATE)
        {
            tokens[w[1]] = space();
            tokens[w[2]] = space();
        }
    }
    for w in words.windows(3) {
        if is(&tokens[w[0]], Keyword::FOR)
            && is(&tokens[w[1]], Keyword::KEY)
            && is(&tokens[w[2]], Keyword::SHARE)
        {
            tokens[w[1]] = space();
        }
    }
}

/// The options of `CREATE DATABASE name [WITH] OWNER … ENCODING … TEMPLATE …` and of
/// `DROP DATABASE name [WITH] (FORCE)`, which the parser does not know, are dropped: every Strata
/// database is UTF8 with the C collation, owned by the one role, and made from nothing; a
/// database with sessions is not dropped, FORCE or not.
fn database_options(tokens: &mut [TokenWithSpan]) {
    let mut start = 0;
    while start < tokens.len() {
        let end = tokens[start..]
            .iter()
            .position(|t| t.token == Token::SemiColon)
            .map_or(tokens.len(), |p| start + p);
        let words: Vec<usize> = (start..end)
            .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
            .collect();
        let is = |n: usize, kw: Keyword| {
            words
                .get(n)
                .is_some_and(|&i| keyword_of(&tokens[i]) == Some(kw))
        };
        let name_at = match (is(0, Keyword::CREATE), is(0, Keyword::DROP)) {
            _ if !is(1, Keyword::DATABASE) => None,
            (true, _) if is(2, Keyword::IF) => Some(5),
            (_, true) if is(2, Keyword::IF) => Some(4),
            (true, _) | (_, true) => Some(2),
            _ => None,
        };
        if let Some(&name) = name_at.and_then(|n| words.get(n)) {
            for token in &mut tokens[name + 1..end] {
                *token = space();
            }
        }
        start = end + 1;
    }
}

/// PostgreSQL takes sequence options in any order (pg_dump writes `START WITH` before
/// `INCREMENT BY`); sqlparser only in one. This puts the option clauses of each `CREATE
/// SEQUENCE` and of each `GENERATED … AS IDENTITY (…)` in that order.
fn order_sequence_options(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len());
    for statement in tokens.split_inclusive(|t| t.token == Token::SemiColon) {
        let words: Vec<&TokenWithSpan> = statement
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .collect();
        match create_sequence_options_start(&words) {
            Some(n) => {
                out.extend(words[..n].iter().flat_map(|t| [(*t).clone(), space()]));
                let end = words.len()
                    - usize::from(words.last().is_some_and(|t| t.token == Token::SemiColon));
                out.extend(sorted_sequence_clauses(&words[n..end]));
                out.extend(words[end..].iter().map(|t| (*t).clone()));
            }
            None => out.extend(order_identity_options(statement)),
        }
    }
    out
}

/// The type a column of `CREATE TABLE name (a, b) AS …` is given, for the parser to accept the
/// list: such a column's type comes from the query.
pub const NAME_ONLY_COLUMN: &str = "strata_name_only";

/// `CREATE TABLE name (a, b) AS query [WITH [NO] DATA]`, which the parser does not know: each
/// name of the column list gets the type [`NAME_ONLY_COLUMN`]; `WITH DATA` goes, and `WITH NO
/// DATA` makes the query `SELECT * FROM (query) AS strata_no_data LIMIT 0`, which has the query's
/// columns and no rows.
fn create_table_as_clauses(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len());
    for statement in tokens.split_inclusive(|t| t.token == Token::SemiColon) {
        let words: Vec<usize> = (0..statement.len())
            .filter(|&i| !matches!(statement[i].token, Token::Whitespace(_)))
            .collect();
        let kw = |n: usize| words.get(n).and_then(|&i| keyword_of(&statement[i]));
        let word = |n: usize, name: &str| {
            words.get(n).is_some_and(|&i| matches!(&statement[i].token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(name)))
        };
        let token = |n: usize| words.get(n).map(|&i| &statement[i].token);
        // CREATE [TEMP | TEMPORARY | UNLOGGED] TABLE [IF NOT EXISTS] name
        let mut n = 1;
        if matches!(
            kw(n),
            Some(Keyword::TEMP | Keyword::TEMPORARY | Keyword::UNLOGGED)
        ) {
            n += 1;
        }
        if kw(0) != Some(Keyword::CREATE) || kw(n) != Some(Keyword::TABLE) {
            out.extend(statement.iter().cloned());
            continue;
        }
        n += 1;
        if kw(n) == Some(Keyword::IF) && kw(n + 1) == Some(Keyword::NOT) {
            n += 3;
        }
        n += 1;
        while token(n) == Some(&Token::Period) {
            n += 2;
        }
        // A list of bare names, then AS.
        let mut names = Vec::new();
        let mut as_at = None;
        if token(n) == Some(&Token::LParen) {
            let mut m = n + 1;
            while matches!(token(m), Some(Token::Word(_))) {
                names.push(words[m]);
                match token(m + 1) {
                    Some(Token::Comma) => m += 2,
                    Some(Token::RParen) if kw(m + 2) == Some(Keyword::AS) => {
                        as_at = Some(m + 2);
                        break;
                    }
                    _ => break,
                }
            }
            if as_at.is_none() {
                names.clear();
            }
        } else if kw(n) == Some(Keyword::AS) {
            as_at = Some(n);
        }
        let Some(as_at) = as_at else {
            out.extend(statement.iter().cloned());
            continue;
        };
        let end = words.len() - usize::from(token(words.len() - 1) == Some(&Token::SemiColon));
        let no_data = end >= 3
            && kw(end - 3) == Some(Keyword::WITH)
            && kw(end - 2) == Some(Keyword::NO)
            && word(end - 1, "data");
        let with_data = end >= 2 && kw(end - 2) == Some(Keyword::WITH) && word(end - 1, "data");
        let dropped: Vec<usize> = match (no_data, with_data) {
            (true, _) => words[end - 3..end].to_vec(),
            (false, true) => words[end - 2..end].to_vec(),
            _ => Vec::new(),
        };
        let plain = |text: &str| {
            TokenWithSpan::wrap(Token::Word(Word {
                value: text.into(),
                quote_style: None,
                keyword: Keyword::NoKeyword,
            }))
        };
        let query_end = dropped.first().copied();
        for (i, t) in statement.iter().enumerate() {
            if Some(i) == query_end && no_data {
                for text in [")", "AS", "strata_no_data", "LIMIT", "0"] {
                    out.push(space());
                    out.push(match text {
                        ")" => TokenWithSpan::wrap(Token::RParen),
                        "AS" => TokenWithSpan::wrap(Token::make_keyword("AS")),
                        "LIMIT" => TokenWithSpan::wrap(Token::make_keyword("LIMIT")),
                        "0" => TokenWithSpan::wrap(Token::Number("0".into(), false)),
                        other => plain(other),
                    });
                }
            }
            if dropped.contains(&i) {
                continue;
            }
            out.push(t.clone());
            if names.contains(&i) {
                out.push(space());
                out.push(plain(NAME_ONLY_COLUMN));
            }
            if i == words[as_at] && no_data {
                for text in ["SELECT", "*", "FROM", "("] {
                    out.push(space());
                    out.push(match text {
                        "*" => TokenWithSpan::wrap(Token::Mul),
                        "(" => TokenWithSpan::wrap(Token::LParen),
                        kw => TokenWithSpan::wrap(Token::make_keyword(kw)),
                    });
                }
            }
        }
    }
    out
}

/// The setting name `SET CONSTRAINTS` becomes, for the session to recognise.
pub const SET_CONSTRAINTS: &str = "constraints";

/// `SET CONSTRAINTS { ALL | name [, …] } { DEFERRED | IMMEDIATE }`, which the parser does not
/// know, becomes `SET CONSTRAINTS TO names…, mode`: a setting no PostgreSQL server has, whose
/// values the session reads back (`ALL` and the mode as unquoted identifiers).
/// `DROP INDEX CONCURRENTLY …`, which the parser would read as an index named
/// `concurrently`, loses the word: Strata drops an index in one transaction, which blocks no
/// reader (as CREATE INDEX CONCURRENTLY, which the parser reads, builds it in one).
fn drop_index_concurrently(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let unquoted = |t: &Token, name: &str| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(name));
    // Every statement is parsed here: most have no CONCURRENTLY and cost one scan.
    if !tokens.iter().any(|t| unquoted(&t.token, "concurrently")) {
        return tokens;
    }
    let words: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let dropped: HashSet<usize> = words
        .windows(3)
        .filter(|w| {
            unquoted(&tokens[w[0]].token, "drop")
                && unquoted(&tokens[w[1]].token, "index")
                && unquoted(&tokens[w[2]].token, "concurrently")
        })
        .map(|w| w[2])
        .collect();
    tokens
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, t)| t)
        .collect()
}

/// `TABLE name`, the SQL standard's `SELECT * FROM name` (as a statement, a subquery or an arm of
/// UNION / INTERSECT / EXCEPT), becomes that SELECT: the parser reads it as a query form of its
/// own that neither views nor the search path would see.
fn table_statements(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len());
    // Whether the last token that is not whitespace is one a query may follow.
    let mut query_may_start = true;
    for t in tokens {
        let is_table = matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::TABLE);
        let starts_query = query_may_start;
        if !matches!(t.token, Token::Whitespace(_)) {
            query_may_start = matches!(t.token, Token::SemiColon | Token::LParen)
                || matches!(&t.token, Token::Word(w) if w.quote_style.is_none()
                    && matches!(w.keyword, Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::ALL | Keyword::DISTINCT));
        }
        if starts_query && is_table {
            out.extend([
                TokenWithSpan::wrap(Token::make_keyword("SELECT")),
                space(),
                TokenWithSpan::wrap(Token::Mul),
                space(),
                TokenWithSpan::wrap(Token::make_keyword("FROM")),
            ]);
        } else {
            out.push(t);
        }
    }
    out
}

fn set_constraints(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len() + 2);
    for statement in tokens.split_inclusive(|t| t.token == Token::SemiColon) {
        let words: Vec<&TokenWithSpan> = statement
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .collect();
        let is_unquoted = |t: &TokenWithSpan, name: &str| matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(name));
        let end =
            words.len() - usize::from(words.last().is_some_and(|t| t.token == Token::SemiColon));
        let applies = end >= 3
            && keyword_of(words[0]) == Some(Keyword::SET)
            && is_unquoted(words[1], SET_CONSTRAINTS)
            && (is_unquoted(words[end - 1], "deferred")
                || is_unquoted(words[end - 1], "immediate"));
        if !applies {
            out.extend(statement.iter().cloned());
            continue;
        }
        let plain = |t: &TokenWithSpan| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => TokenWithSpan::wrap(Token::Word(Word {
                value: w.value.to_uppercase(),
                quote_style: None,
                keyword: Keyword::NoKeyword,
            })),
            _ => t.clone(),
        };
        out.extend([words[0].clone(), space(), words[1].clone(), space()]);
        out.push(TokenWithSpan::wrap(Token::make_keyword("TO")));
        out.push(space());
        for (i, t) in words[2..end - 1].iter().enumerate() {
            let is_all = i == 0 && end == 4 && is_unquoted(t, "all");
            out.push(if is_all { plain(t) } else { (*t).clone() });
        }
        out.extend([
            TokenWithSpan::wrap(Token::Comma),
            space(),
            plain(words[end - 1]),
        ]);
        out.extend(words[end..].iter().map(|t| (*t).clone()));
    }
    out
}

/// `INSERT INTO t SELECT 1, 'a' ON CONFLICT …`: the parser reads `ON` as part of a SELECT
/// without FROM and then fails, so the SELECT is put in parentheses, which it reads.
fn insert_select_on_conflict(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len() + 2);
    for statement in tokens.split_inclusive(|t| t.token == Token::SemiColon) {
        let words: Vec<usize> = (0..statement.len())
            .filter(|&i| !matches!(statement[i].token, Token::Whitespace(_)))
            .collect();
        let kw = |n: usize| words.get(n).and_then(|&i| keyword_of(&statement[i]));
        let mut select_at = None;
        let mut on_at = None;
        if kw(0) == Some(Keyword::INSERT) {
            let mut depth = 0i32;
            for (n, &i) in words.iter().enumerate() {
                match statement[i].token {
                    Token::LParen => depth += 1,
                    Token::RParen => depth -= 1,
                    _ if depth != 0 => {}
                    _ if kw(n) == Some(Keyword::SELECT) && select_at.is_none() => {
                        select_at = Some(i)
                    }
                    _ if kw(n) == Some(Keyword::ON)
                        && kw(n + 1) == Some(Keyword::CONFLICT)
                        && select_at.is_some() =>
                    {
                        on_at = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
        }
        match (select_at, on_at) {
            (Some(select), Some(on)) => {
                out.extend(statement[..select].iter().cloned());
                out.push(TokenWithSpan::wrap(Token::LParen));
                out.extend(statement[select..on].iter().cloned());
                out.push(TokenWithSpan::wrap(Token::RParen));
                out.push(space());
                out.extend(statement[on..].iter().cloned());
            }
            _ => out.extend(statement.iter().cloned()),
        }
    }
    out
}

fn space() -> TokenWithSpan {
    TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space))
}

fn keyword_of(t: &TokenWithSpan) -> Option<Keyword> {
    match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    }
}

/// In `CREATE [TEMP] SEQUENCE [IF NOT EXISTS] name options…` (without whitespace tokens),
/// where the options start.
fn create_sequence_options_start(words: &[&TokenWithSpan]) -> Option<usize> {
    let kw = |n: usize| words.get(n).and_then(|t| keyword_of(t));
    if kw(0) != Some(Keyword::CREATE) {
        return None;
    }
    let mut n = 1;
    if matches!(kw(n), Some(Keyword::TEMP | Keyword::TEMPORARY)) {
        n += 1;
    }
    if kw(n) != Some(Keyword::SEQUENCE) {
        return None;
    }
    n += 1;
    if kw(n) == Some(Keyword::IF) {
        n += 3;
    }
    // The (possibly qualified) name: words joined by periods.
    n += 1;
    while words.get(n).is_some_and(|t| t.token == Token::Period) {
        n += 2;
    }
    (n <= words.len()).then_some(n)
}

/// `IDENTITY ( options )` with the options in sqlparser's order.
fn order_identity_options(statement: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(statement.len());
    let mut i = 0;
    while i < statement.len() {
        out.push(statement[i].clone());
        if keyword_of(&statement[i]) == Some(Keyword::IDENTITY) {
            let open = (i + 1..statement.len())
                .find(|&j| !matches!(statement[j].token, Token::Whitespace(_)))
                .filter(|&j| statement[j].token == Token::LParen);
            let close = open.and_then(|o| {
                (o + 1..statement.len()).find(|&j| statement[j].token == Token::RParen)
            });
            if let (Some(open), Some(close)) = (open, close) {
                out.extend_from_slice(&statement[i + 1..=open]);
                let inner: Vec<&TokenWithSpan> = statement[open + 1..close]
                    .iter()
                    .filter(|t| !matches!(t.token, Token::Whitespace(_)))
                    .collect();
                out.extend(sorted_sequence_clauses(&inner));
                out.push(statement[close].clone());
                i = close + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Sequence option clauses (`START WITH 5`, `NO MINVALUE`, `OWNED BY t.c`, …) sorted into
/// sqlparser's order, separated by spaces.
fn sorted_sequence_clauses(words: &[&TokenWithSpan]) -> Vec<TokenWithSpan> {
    // `NO x` sorts as `x`.
    let rank = |k: Keyword| match k {
        Keyword::AS => Some(0),
        Keyword::INCREMENT => Some(1),
        Keyword::MINVALUE => Some(2),
        Keyword::MAXVALUE => Some(3),
        Keyword::START => Some(4),
        Keyword::CACHE => Some(5),
        Keyword::CYCLE => Some(6),
        Keyword::OWNED => Some(7),
        _ => None,
    };
    let mut clauses: Vec<(u8, Vec<TokenWithSpan>)> = Vec::new();
    for (j, t) in words.iter().enumerate() {
        let after_no = j > 0 && keyword_of(words[j - 1]) == Some(Keyword::NO);
        let starts = match keyword_of(t) {
            Some(Keyword::NO) => words
                .get(j + 1)
                .and_then(|next| keyword_of(next))
                .and_then(rank),
            Some(k) if !after_no => rank(k),
            _ => None,
        };
        match (starts, clauses.last_mut()) {
            (Some(r), _) => clauses.push((r, vec![(*t).clone()])),
            (None, Some((_, clause))) => clause.push((*t).clone()),
            (None, None) => clauses.push((8, vec![(*t).clone()])),
        }
    }
    clauses.sort_by_key(|(r, _)| *r);
    clauses
        .into_iter()
        .flat_map(|(_, c)| c)
        .flat_map(|t| [t, space()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_boolean_option_values_parse() {
        let s = parse_sql("copy pgbench_accounts from stdin with (freeze on)").unwrap();
        assert!(s[0].to_string().contains("FREEZE"));
        let s = parse_sql("COPY t TO STDOUT WITH (FORMAT csv, HEADER 1)").unwrap();
        assert!(s[0].to_string().contains("HEADER"));
        // Strings are never touched.
        let s = parse_sql("SELECT 'freeze on'").unwrap();
        assert!(s[0].to_string().contains("'freeze on'"));
        let s = parse_sql("vacuum analyze pgbench_branches; VACUUM (VERBOSE) t; SELECT 1").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].to_string(), "VACUUM");
    }

    #[test]
    fn sequence_options_parse_in_any_order() {
        let s = parse_sql(
            "CREATE SEQUENCE public.s AS integer START WITH 5 INCREMENT BY -1 NO MINVALUE \
             MAXVALUE 9 CACHE 1; CREATE SEQUENCE t START 1 NO CYCLE INCREMENT 2 OWNED BY NONE",
        )
        .unwrap();
        assert_eq!(
            s[0].to_string(),
            "CREATE SEQUENCE public.s AS INTEGER INCREMENT BY -1 NO MINVALUE MAXVALUE 9 START WITH 5 CACHE 1"
        );
        assert_eq!(
            s[1].to_string(),
            "CREATE SEQUENCE t INCREMENT 2 START 1 NO CYCLE OWNED BY NONE"
        );
        let s = parse_sql(
            "CREATE TABLE t (id int GENERATED BY DEFAULT AS IDENTITY (START WITH 100 INCREMENT BY 10), v text)",
        )
        .unwrap();
        assert!(s[0]
            .to_string()
            .contains("IDENTITY ( INCREMENT BY 10 START WITH 100 )"));
    }
}

/// A query with its literals taken out: the normalized text (literals replaced by `$1`, `$2`,
/// …) and the literal values. Query strings that differ only in literals (what a client using
/// the simple protocol sends for one statement shape) normalize to the same text, so their plan
/// can be reused. `None` if the query already has parameters or cannot be tokenized.
///
/// Typed literals (`DATE '2024-01-01'`, `INTERVAL '1 day'`) are kept: a parameter cannot stand
/// where a type name prefixes a literal.
pub fn normalize_literals(sql: &str) -> Option<(String, Vec<datafusion::common::ScalarValue>)> {
    use datafusion::common::ScalarValue;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut out = String::with_capacity(sql.len());
    let mut values = Vec::new();
    let mut previous_word = false;
    for token in &tokens {
        match token {
            Token::Placeholder(_) => return None,
            Token::Number(n, false) => {
                values.push(crate::fast_path::number_literal(n)?);
                out.push_str(&format!("${}", values.len()));
            }
            Token::SingleQuotedString(s) if !previous_word => {
                values.push(ScalarValue::Utf8(Some(s.clone())));
                out.push_str(&format!("${}", values.len()));
            }
            other => out.push_str(&other.to_string()),
        }
        if !matches!(token, Token::Whitespace(_)) {
            previous_word = matches!(token, Token::Word(_));
        }
    }
    Some((out, values))
}

#[cfg(test)]
mod normalize_tests {
    use super::*;
    use datafusion::common::ScalarValue;

    #[test]
    fn literals_become_parameters() {
        let (a, va) =
            normalize_literals("SELECT abalance FROM pgbench_accounts WHERE aid = 42;").unwrap();
        let (b, _) =
            normalize_literals("SELECT abalance FROM pgbench_accounts WHERE aid = 7;").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, "SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
        assert_eq!(va, vec![ScalarValue::Int64(Some(42))]);
        let (c, vc) =
            normalize_literals("UPDATE t SET v = v + -5, s = 'x''y' WHERE k = 1.50").unwrap();
        assert_eq!(c, "UPDATE t SET v = v + -$1, s = $2 WHERE k = $3");
        assert_eq!(vc[1], ScalarValue::Utf8(Some("x'y".into())));
        assert_eq!(vc[2], ScalarValue::Decimal128(Some(150), 38, 2));
        let (d, _) = normalize_literals("SELECT DATE '2024-01-01'").unwrap();
        assert_eq!(d, "SELECT DATE '2024-01-01'");
        assert!(normalize_literals("SELECT $1").is_none());
    }
}

/// `RETURNING schema.table.column` names the column by its table alone (`table.column`), as the
/// DML code reads RETURNING against the target table under its own name.
pub fn unqualify_returning(statement: &mut Statement) {
    use datafusion::sql::sqlparser::ast::visit_expressions_mut;
    let returning = match statement {
        Statement::Insert(insert) => insert.returning.as_mut(),
        Statement::Update(update) => update.returning.as_mut(),
        Statement::Delete(delete) => delete.returning.as_mut(),
        _ => None,
    };
    let Some(items) = returning else {
        return;
    };
    let _ = visit_expressions_mut(items, |e| {
        if let Expr::CompoundIdentifier(parts) = e {
            if parts.len() == 4 {
                parts.remove(0);
            }
            if parts.len() == 3 {
                parts.remove(0);
            }
        }
        ControlFlow::<()>::Continue(())
    });
}
