//! PostgreSQL's dialect plus `FOR SYSTEM_TIME AS OF` (SQL:2011 time travel), which sqlparser
//! parses only for dialects that declare table versioning. Every method PostgreSQL's dialect
//! defines is delegated to it, and the parser's "is this PostgreSQL" checks see PostgreSQL, so
//! statements parse exactly as with [`PostgreSqlDialect`] plus that one clause. Used only for
//! SQL that mentions `SYSTEM_TIME`: table versioning also makes some other words after a table
//! name special.

use std::any::TypeId;

use datafusion::sql::sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

#[derive(Debug, Default)]
pub struct TimeTravelDialect {
    pg: PostgreSqlDialect,
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret { self.pg.$name($($arg),*) })*
    };
}

impl Dialect for TimeTravelDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<PostgreSqlDialect>()
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    delegate! {
        identifier_quote_style(identifier: &str) -> Option<char>;
        is_delimited_identifier_start(ch: char) -> bool;
        is_identifier_start(ch: char) -> bool;
        is_identifier_part(ch: char) -> bool;
        supports_unicode_string_literal() -> bool;
        is_reserved_for_identifier(kw: Keyword) -> bool;
        is_custom_operator_part(ch: char) -> bool;
        get_next_precedence(parser: &Parser) -> Option<Result<u8, ParserError>>;
        supports_filter_during_aggregation() -> bool;
        supports_group_by_expr() -> bool;
        prec_value(prec: Precedence) -> u8;
        allow_extract_custom() -> bool;
        allow_extract_single_quotes() -> bool;
        supports_create_index_with_clause() -> bool;
        supports_explain_with_utility_options() -> bool;
        supports_listen_notify() -> bool;
        supports_factorial_operator() -> bool;
        supports_bitwise_shift_operators() -> bool;
        supports_comment_on() -> bool;
        supports_load_extension() -> bool;
        supports_named_fn_args_with_colon_operator() -> bool;
        supports_named_fn_args_with_expr_name() -> bool;
        supports_empty_projections() -> bool;
        supports_nested_comments() -> bool;
        supports_string_escape_constant() -> bool;
        supports_numeric_literal_underscores() -> bool;
        supports_array_typedef_with_brackets() -> bool;
        supports_geometric_types() -> bool;
        supports_set_names() -> bool;
        supports_alter_column_type_using() -> bool;
        supports_notnull_operator() -> bool;
        supports_interval_options() -> bool;
        supports_insert_table_alias() -> bool;
        supports_create_table_like_parenthesized() -> bool;
        supports_select_wildcard_with_alias() -> bool;
        supports_comma_separated_trim() -> bool;
        supports_xml_expressions() -> bool;
        supports_comment_optimizer_hint() -> bool;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::{TableFactor, TableVersion};

    #[test]
    fn parses_for_system_time_as_of_and_postgresql_as_before() {
        let sql =
            "SELECT a::int FROM t FOR SYSTEM_TIME AS OF '2026-01-01' AS x JOIN u ON x.a = u.a";
        let stmt = Parser::parse_sql(&TimeTravelDialect::default(), sql).unwrap();
        let text = format!("{}", stmt[0]);
        assert!(
            text.contains("FOR SYSTEM_TIME AS OF '2026-01-01'"),
            "{text}"
        );
        let datafusion::sql::sqlparser::ast::Statement::Query(q) = &stmt[0] else {
            panic!()
        };
        let select = q.body.as_select().unwrap();
        assert!(matches!(
            &select.from[0].relation,
            TableFactor::Table {
                version: Some(TableVersion::ForSystemTimeAsOf(_)),
                ..
            }
        ));
        // PostgreSQL-only syntax still parses the PostgreSQL way.
        for sql in [
            "SELECT 'a' || 'b', x::text, E'\\n' FROM t WHERE j @> '{}'",
            "SELECT $1 ~ 'x'",
        ] {
            let ours = Parser::parse_sql(&TimeTravelDialect::default(), sql).unwrap();
            let pg = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
            assert_eq!(ours, pg, "{sql}");
        }
    }
}
