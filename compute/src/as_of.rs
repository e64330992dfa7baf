//! Names of tables read in the past. `t FOR SYSTEM_TIME AS OF …` is resolved to an LSN before
//! planning and becomes a reference to an internal table name carrying that LSN, which the
//! schema provider turns into the table as the catalog had it then, read at that LSN. SQL
//! text cannot spell the name (it holds a NUL).

use strata_core::Lsn;

const MARK: &str = "\u{0}as_of\u{0}";

/// The internal name of `table` as of `lsn`.
pub fn as_of_name(table: &str, lsn: Lsn) -> String {
    format!("{table}{MARK}{}", lsn.0)
}

/// The table and LSN an internal as-of name stands for.
pub fn parse_as_of_name(name: &str) -> Option<(&str, Lsn)> {
    let (table, lsn) = name.split_once(MARK)?;
    Some((table, Lsn(lsn.parse().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let name = as_of_name("orders", Lsn(42));
        assert_eq!(parse_as_of_name(&name), Some(("orders", Lsn(42))));
        assert_eq!(parse_as_of_name("orders"), None);
    }
}
