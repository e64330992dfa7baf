//! Turns predicates on the primary key into point reads or one key range.
//!
//! DataFusion hands a table scan its WHERE conjuncts. Those that constrain the primary key (`=`,
//! `IN`, `<`, `<=`, `>`, `>=`, `BETWEEN` against literals) narrow the keys the scan reads: every
//! key column pinned to a set of values gives point reads; a pinned prefix plus bounds on the next
//! key column gives one range. The filters stay in the plan above the scan too (they are
//! reported as inexact), so a predicate this module cannot use only costs speed, never
//! correctness.

use std::fmt;

use bytes::Bytes;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::utils::{split_binary, split_conjunction};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use strata_core::key::{index_prefix, prefix_end, row_prefix, KeyEncoder, NOT_NULL_TAG};

use crate::catalog::TableDef;
use crate::types::SqlType;

/// Most point reads one scan turns into before it falls back to a range.
const MAX_POINTS: usize = 10_000;

/// Which keys of a table a scan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Exactly these keys, sorted and without duplicates.
    Points(Vec<Bytes>),
    /// Keys in `[start, end)`; `full` when that is the whole table.
    Range {
        start: Bytes,
        end: Bytes,
        full: bool,
    },
    /// The rows that a secondary index's entries in these key ranges (sorted, disjoint) point
    /// to, in index order.
    Index {
        name: String,
        ranges: Vec<(Bytes, Bytes)>,
        /// How many leading index columns each range pins to one value.
        pinned: usize,
    },
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Points(keys) => write!(
                f,
                "primary key lookup ({} key{})",
                keys.len(),
                if keys.len() == 1 { "" } else { "s" }
            ),
            Access::Range { full: true, .. } => write!(f, "full scan"),
            Access::Range { .. } => write!(f, "primary key range scan"),
            Access::Index { name, ranges, .. } => write!(
                f,
                "index scan using {name} ({} range{})",
                ranges.len(),
                if ranges.len() == 1 { "" } else { "s" }
            ),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Bound {
    encoded: Vec<u8>,
    inclusive: bool,
}

/// What the conjuncts say about one key column.
#[derive(Debug, Default, Clone)]
struct ColumnConstraint {
    /// The column must equal one of these values (already key-encoded).
    equals: Option<Vec<Vec<u8>>>,
    lower: Option<Bound>,
    upper: Option<Bound>,
}

/// Picks the narrowest access for a table scan with these filters: the primary key if they
/// narrow it, else the secondary index whose leading columns they pin or bound best, else the
/// whole table.
pub fn plan_access(def: &TableDef, filters: &[Expr]) -> Access {
    let by_key = primary_key_access(def, filters);
    match by_key {
        Access::Range { full: true, .. } => index_access(def, filters).unwrap_or(by_key),
        narrowed => narrowed,
    }
}

/// Every key prefix the leading pinned columns allow: `base`, then for each column pinned to a
/// value set (as long as the combinations stay under [`MAX_POINTS`]) one of its values after
/// `tag`. Returns the prefixes and how many columns they pin.
fn pinned_prefixes(
    base: Vec<u8>,
    constraints: &[ColumnConstraint],
    tag: &[u8],
) -> (Vec<Vec<u8>>, usize) {
    let mut prefixes = vec![base];
    let mut pinned = 0;
    for c in constraints {
        let Some(values) = &c.equals else { break };
        if prefixes.len() * values.len() > MAX_POINTS {
            break;
        }
        prefixes = prefixes
            .iter()
            .flat_map(|p| values.iter().map(move |v| [p.as_slice(), tag, v].concat()))
            .collect();
        pinned += 1;
    }
    (prefixes, pinned)
}

/// What the filters say about each of the columns at `positions`.
fn constraints(def: &TableDef, positions: &[usize], filters: &[Expr]) -> Vec<ColumnConstraint> {
    let mut constraints = vec![ColumnConstraint::default(); positions.len()];
    for filter in filters {
        for conjunct in split_conjunction(filter) {
            collect(def, positions, conjunct, &mut constraints);
        }
    }
    constraints
}

/// Index ranges for the best usable index: the most leading columns pinned, then a bound on the
/// next one. Every indexed value is tagged not-NULL in the entry key, so each encoded value is
/// prefixed with that tag, and an open upper end stops before the NULL entries.
fn index_access(def: &TableDef, filters: &[Expr]) -> Option<Access> {
    let (index, constraints, pinned) = def
        .indexes
        .iter()
        .filter(|index| index.is_plain())
        .filter_map(|index| {
            let c = constraints(def, &index.column_positions(def), filters);
            let pinned = c.iter().take_while(|c| c.equals.is_some()).count();
            let bounded = c
                .get(pinned)
                .is_some_and(|c| c.lower.is_some() || c.upper.is_some());
            (pinned > 0 || bounded).then_some((index, c, pinned, bounded))
        })
        .max_by_key(|(index, _, pinned, bounded)| {
            (
                *pinned,
                *bounded,
                index.unique && *pinned == index.columns.len(),
            )
        })
        .map(|(index, c, pinned, _)| (index, c, pinned))?;
    let tagged = |v: &[u8]| [&[NOT_NULL_TAG][..], v].concat();
    let (prefixes, used) = pinned_prefixes(
        index_prefix(def.id, index.id),
        &constraints[..pinned],
        &[NOT_NULL_TAG],
    );
    let next = constraints.get(used);
    let mut ranges: Vec<(Bytes, Bytes)> = prefixes
        .into_iter()
        .filter_map(|prefix| {
            let (mut start, mut end) = (
                prefix.clone(),
                prefix_end(&prefix).expect("prefix is not all 0xff"),
            );
            if let Some(next) = next.filter(|n| n.lower.is_some() || n.upper.is_some()) {
                let bound = |b: &Bound| [prefix.as_slice(), &tagged(&b.encoded)].concat();
                start = match &next.lower {
                    Some(b) if b.inclusive => bound(b),
                    Some(b) => prefix_end(&bound(b)).expect("not all 0xff"),
                    None => prefix.clone(),
                };
                end = match &next.upper {
                    Some(b) if b.inclusive => prefix_end(&bound(b)).expect("not all 0xff"),
                    Some(b) => bound(b),
                    // Up to the NULLs, which sort after every value.
                    None => [prefix.as_slice(), &[NOT_NULL_TAG + 1]].concat(),
                };
            }
            (start < end).then(|| (Bytes::from(start), Bytes::from(end)))
        })
        .collect();
    ranges.sort();
    Some(if ranges.is_empty() {
        Access::Points(Vec::new())
    } else {
        Access::Index {
            name: index.name.clone(),
            ranges,
            pinned: used,
        }
    })
}

/// Point reads or one range of the table's rows, from the filters on its primary key.
fn primary_key_access(def: &TableDef, filters: &[Expr]) -> Access {
    let prefix = row_prefix(def.id);
    let full = || Access::Range {
        start: Bytes::from(prefix.clone()),
        end: Bytes::from(prefix_end(&prefix).expect("row prefix is not all 0xff")),
        full: true,
    };
    let pk = def.primary_key_indexes();
    if pk.is_empty() {
        return full();
    }
    let constraints = constraints(def, &pk, filters);

    // Leading key columns pinned to value sets.
    let (prefixes, pinned) = pinned_prefixes(prefix.clone(), &constraints, &[]);
    if pinned == pk.len() {
        let mut keys: Vec<Bytes> = prefixes.into_iter().map(Bytes::from).collect();
        keys.sort();
        keys.dedup();
        return Access::Points(keys);
    }
    // A range needs a single prefix; with several, read from the smallest to the largest.
    let (Some(first), Some(last)) = (prefixes.iter().min(), prefixes.iter().max()) else {
        return Access::Points(Vec::new());
    };
    let (mut start, mut end) = (
        first.clone(),
        prefix_end(last).expect("prefix is not all 0xff"),
    );
    if prefixes.len() == 1 {
        let base = first;
        let next = &constraints[pinned];
        if let Some(lower) = &next.lower {
            let key = [base.as_slice(), &lower.encoded].concat();
            start = if lower.inclusive {
                key
            } else {
                prefix_end(&key).expect("not all 0xff")
            };
        }
        if let Some(upper) = &next.upper {
            let key = [base.as_slice(), &upper.encoded].concat();
            end = if upper.inclusive {
                prefix_end(&key).expect("not all 0xff")
            } else {
                key
            };
        }
    }
    if pinned == 0 && constraints[0].lower.is_none() && constraints[0].upper.is_none() {
        return full();
    }
    if start >= end {
        return Access::Points(Vec::new());
    }
    Access::Range {
        start: Bytes::from(start),
        end: Bytes::from(end),
        full: false,
    }
}

fn collect(def: &TableDef, pk: &[usize], expr: &Expr, out: &mut [ColumnConstraint]) {
    match expr {
        // `k = 1 OR k = 2` (DataFusion's form of a short IN list) pins k to a value set.
        Expr::BinaryExpr(BinaryExpr {
            op: Operator::Or, ..
        }) => {
            let mut column = None;
            let mut values = Vec::new();
            for disjunct in split_binary(expr, Operator::Or) {
                let Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Eq,
                    right,
                }) = disjunct
                else {
                    return;
                };
                let (col, lit) = match (column_of(def, pk, left), literal(right)) {
                    (Some(c), Some(v)) => (c, v),
                    _ => match (column_of(def, pk, right), literal(left)) {
                        (Some(c), Some(v)) => (c, v),
                        _ => return,
                    },
                };
                if column.is_some_and(|c| c != col.0) {
                    return;
                }
                column = Some(col.0);
                match encode(col.1, lit) {
                    Some(v) => values.push(v),
                    None => return,
                }
            }
            if let Some(pos) = column {
                intersect(&mut out[pos], values);
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (col, lit, op) = match (
                column_of(def, pk, left),
                literal(right),
                column_of(def, pk, right),
                literal(left),
            ) {
                (Some(c), Some(v), _, _) => (c, v, *op),
                (_, _, Some(c), Some(v)) => match op.swap() {
                    Some(op) => (c, v, op),
                    None => return,
                },
                _ => return,
            };
            let (pos, ty) = col;
            let Some(encoded) = encode(ty, lit) else {
                return;
            };
            let c = &mut out[pos];
            match op {
                Operator::Eq => intersect(c, vec![encoded]),
                Operator::Gt => tighten_lower(c, encoded, false),
                Operator::GtEq => tighten_lower(c, encoded, true),
                Operator::Lt => tighten_upper(c, encoded, false),
                Operator::LtEq => tighten_upper(c, encoded, true),
                _ => {}
            }
        }
        Expr::InList(list) if !list.negated => {
            let Some((pos, ty)) = column_of(def, pk, &list.expr) else {
                return;
            };
            let mut values = Vec::with_capacity(list.list.len());
            for item in &list.list {
                match literal(item).and_then(|v| encode(ty, v)) {
                    Some(v) => values.push(v),
                    None => return,
                }
            }
            intersect(&mut out[pos], values);
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let Some((pos, ty)) = column_of(def, pk, expr) else {
                return;
            };
            if let (Some(lo), Some(hi)) = (
                literal(low).and_then(|v| encode(ty, v)),
                literal(high).and_then(|v| encode(ty, v)),
            ) {
                tighten_lower(&mut out[pos], lo, true);
                tighten_upper(&mut out[pos], hi, true);
            }
        }
        _ => {}
    }
}

fn intersect(c: &mut ColumnConstraint, mut values: Vec<Vec<u8>>) {
    values.sort();
    values.dedup();
    c.equals = Some(match c.equals.take() {
        None => values,
        Some(existing) => existing
            .into_iter()
            .filter(|v| values.binary_search(v).is_ok())
            .collect(),
    });
}

fn tighten_lower(c: &mut ColumnConstraint, encoded: Vec<u8>, inclusive: bool) {
    let replace = match &c.lower {
        None => true,
        Some(b) => encoded > b.encoded || (encoded == b.encoded && !inclusive),
    };
    if replace {
        c.lower = Some(Bound { encoded, inclusive });
    }
}

fn tighten_upper(c: &mut ColumnConstraint, encoded: Vec<u8>, inclusive: bool) {
    let replace = match &c.upper {
        None => true,
        Some(b) => encoded < b.encoded || (encoded == b.encoded && !inclusive),
    };
    if replace {
        c.upper = Some(Bound { encoded, inclusive });
    }
}

/// If `expr` is a primary-key column: its position in the key and its type.
fn column_of(def: &TableDef, pk: &[usize], expr: &Expr) -> Option<(usize, SqlType)> {
    let Expr::Column(col) = expr else { return None };
    pk.iter()
        .position(|&i| def.columns[i].name == col.name)
        .map(|pos| (pos, def.columns[pk[pos]].ty))
}

fn literal(expr: &Expr) -> Option<&ScalarValue> {
    match expr {
        Expr::Literal(v, _) if !v.is_null() => Some(v),
        _ => None,
    }
}

/// Key-encodes a literal compared with a column of type `ty`, when it is exactly representable in
/// that type (otherwise the comparison is left to the filter above the scan).
pub(crate) fn encode(ty: SqlType, v: &ScalarValue) -> Option<Vec<u8>> {
    let mut e = KeyEncoder::new();
    match ty {
        SqlType::Int2 => e.i16(i16::try_from(integer(v)?).ok()?),
        SqlType::Int4 => e.i32(i32::try_from(integer(v)?).ok()?),
        SqlType::Int8 => e.i64(i64::try_from(integer(v)?).ok()?),
        SqlType::Float4 => match v {
            ScalarValue::Float32(Some(f)) => e.f32(*f),
            _ => return None,
        },
        SqlType::Float8 => match v {
            ScalarValue::Float64(Some(f)) => e.f64(*f),
            ScalarValue::Float32(Some(f)) => e.f64(f64::from(*f)),
            _ => return None,
        },
        SqlType::Numeric { scale, .. } => e.i128(decimal(v, scale)?),
        SqlType::Text | SqlType::Varchar { .. } | SqlType::Char { .. } | SqlType::Enum { .. } => {
            match v {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)) => e.str(s),
                _ => return None,
            }
        }
        SqlType::Jsonb => match v {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => {
                e.str(&crate::json::stored_text(s, SqlType::Jsonb).ok()?)
            }
            _ => return None,
        },
        // json values that differ in spacing are different keys: never a key range.
        SqlType::Json => return None,
        // A key holds the canonical form; a literal in another form names the same key.
        SqlType::Uuid => match v {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => e.str(&crate::types::canonical_uuid(s).ok()?),
            _ => return None,
        },
        SqlType::Bytea => match v {
            ScalarValue::Binary(Some(b))
            | ScalarValue::LargeBinary(Some(b))
            | ScalarValue::BinaryView(Some(b)) => e.bytes(b),
            _ => return None,
        },
        SqlType::Bool => match v {
            ScalarValue::Boolean(Some(b)) => e.bool(*b),
            _ => return None,
        },
        SqlType::Date => match v {
            ScalarValue::Date32(Some(d)) => e.i32(*d),
            _ => return None,
        },
        SqlType::Timestamp | SqlType::Timestamptz => e.i64(micros(v, ty == SqlType::Timestamptz)?),
        SqlType::Time => match v {
            ScalarValue::Time64Microsecond(Some(t)) => e.i64(*t),
            _ => return None,
        },
        SqlType::Interval => match v {
            ScalarValue::IntervalMonthDayNano(Some(i)) => {
                e.i128(crate::interval::PgInterval::from_arrow(*i).span_micros())
            }
            _ => return None,
        },
        // Arrays are never key columns.
        SqlType::Array { .. } => return None,
    };
    Some(e.finish())
}

fn integer(v: &ScalarValue) -> Option<i128> {
    Some(match v {
        ScalarValue::Int8(Some(x)) => i128::from(*x),
        ScalarValue::Int16(Some(x)) => i128::from(*x),
        ScalarValue::Int32(Some(x)) => i128::from(*x),
        ScalarValue::Int64(Some(x)) => i128::from(*x),
        ScalarValue::UInt8(Some(x)) => i128::from(*x),
        ScalarValue::UInt16(Some(x)) => i128::from(*x),
        ScalarValue::UInt32(Some(x)) => i128::from(*x),
        ScalarValue::UInt64(Some(x)) => i128::from(*x),
        _ => return None,
    })
}

/// The literal as a decimal with exactly `scale` fractional digits, if that is exact.
fn decimal(v: &ScalarValue, scale: i8) -> Option<i128> {
    let (value, from_scale) = match v {
        ScalarValue::Decimal128(Some(x), _, s) => (*x, *s),
        other => (integer(other)?, 0),
    };
    let diff = i32::from(scale) - i32::from(from_scale);
    if diff >= 0 {
        value.checked_mul(10i128.checked_pow(diff as u32)?)
    } else {
        let div = 10i128.checked_pow((-diff) as u32)?;
        (value % div == 0).then_some(value / div)
    }
}

fn micros(v: &ScalarValue, with_tz: bool) -> Option<i64> {
    let (value, per_micro_num, per_micro_den, tz) = match v {
        ScalarValue::TimestampSecond(Some(x), tz) => (*x, 1_000_000, 1, tz),
        ScalarValue::TimestampMillisecond(Some(x), tz) => (*x, 1_000, 1, tz),
        ScalarValue::TimestampMicrosecond(Some(x), tz) => (*x, 1, 1, tz),
        ScalarValue::TimestampNanosecond(Some(x), tz) => (*x, 1, 1_000, tz),
        _ => return None,
    };
    // Comparing a timestamp with a timestamptz involves a time zone conversion that DataFusion
    // inserts as a cast on the column; a literal of the other kind is left to the filter.
    if tz.is_some() != with_tz {
        return None;
    }
    if value % per_micro_den != 0 {
        return None;
    }
    (value / per_micro_den).checked_mul(per_micro_num)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnDef, DEFAULT_DATABASE, DEFAULT_SCHEMA};
    use datafusion::logical_expr::{col, lit};

    fn table(pk: Vec<u32>) -> TableDef {
        TableDef {
            id: 20000,
            database: DEFAULT_DATABASE.into(),
            schema: DEFAULT_SCHEMA.into(),
            name: "t".into(),
            columns: vec![
                ColumnDef::new(1, "a", SqlType::Int4, false),
                ColumnDef::new(2, "b", SqlType::Text, false),
                ColumnDef::new(3, "c", SqlType::Int8, true),
            ],
            primary_key: pk,
            next_column_id: 4,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
        }
    }

    fn key(a: i32, b: Option<&str>) -> Bytes {
        let mut e = KeyEncoder::with_prefix(row_prefix(20000));
        e.i32(a);
        if let Some(b) = b {
            e.str(b);
        }
        Bytes::from(e.finish())
    }

    #[test]
    fn equality_on_the_whole_key_is_a_point_read() {
        let t = table(vec![1]);
        assert_eq!(
            plan_access(&t, &[col("a").eq(lit(5i32))]),
            Access::Points(vec![key(5, None)])
        );
        assert_eq!(
            plan_access(
                &t,
                &[col("a").in_list(vec![lit(7i32), lit(5i32), lit(7i32)], false)]
            ),
            Access::Points(vec![key(5, None), key(7, None)])
        );
        // DataFusion's form of a short IN list.
        assert_eq!(
            plan_access(&t, &[col("a").eq(lit(7i32)).or(col("a").eq(lit(5i32)))]),
            Access::Points(vec![key(5, None), key(7, None)])
        );
        assert!(matches!(
            plan_access(&t, &[col("a").eq(lit(7i32)).or(col("c").eq(lit(5i64)))]),
            Access::Range { full: true, .. }
        ));
        // Contradictions read nothing.
        assert_eq!(
            plan_access(&t, &[col("a").eq(lit(5i32)).and(col("a").eq(lit(6i32)))]),
            Access::Points(vec![])
        );
        // Literals of a wider type that fit are used; those that do not are left to the filter.
        assert_eq!(
            plan_access(&t, &[col("a").eq(lit(5i64))]),
            Access::Points(vec![key(5, None)])
        );
        assert!(matches!(
            plan_access(&t, &[col("a").eq(lit(5_000_000_000i64))]),
            Access::Range { full: true, .. }
        ));
        // Non-key columns do not narrow the scan.
        assert!(matches!(
            plan_access(&t, &[col("c").eq(lit(1i64))]),
            Access::Range { full: true, .. }
        ));
    }

    #[test]
    fn bounds_become_ranges() {
        let t = table(vec![1]);
        let Access::Range {
            start,
            end,
            full: false,
        } = plan_access(&t, &[col("a").gt(lit(10i32)), col("a").lt_eq(lit(20i32))])
        else {
            panic!("expected a range");
        };
        assert!(start > key(10, None) && start <= key(11, None));
        assert!(end > key(20, None) && end <= key(21, None));
        let Access::Range { start, end, .. } =
            plan_access(&t, &[col("a").between(lit(3i32), lit(4i32))])
        else {
            panic!("expected a range");
        };
        assert_eq!(start, key(3, None));
        assert!(end > key(4, None) && end <= key(5, None));
        assert_eq!(
            plan_access(&t, &[col("a").gt(lit(5i32)), col("a").lt(lit(5i32))]),
            Access::Points(vec![])
        );
    }

    fn index_key(b: &str, c: Option<i64>) -> Vec<u8> {
        let mut e = KeyEncoder::with_prefix(index_prefix(20000, 30000));
        e.not_null().str(b);
        if let Some(c) = c {
            e.not_null().i64(c);
        }
        e.finish()
    }

    #[test]
    fn partial_and_expression_indexes_are_not_read() {
        let mut t = table(vec![1]);
        t.indexes.push(crate::indexes::IndexDef {
            id: 30000,
            name: "t_b_idx".into(),
            columns: vec![2],
            expressions: Vec::new(),
            include: Vec::new(),
            predicate: Some("c IS NULL".into()),
            unique: true,
            nulls_not_distinct: false,
            constraint: false,
        });
        // Rows the predicate leaves out have no entry, so the index cannot answer `b = 'x'`.
        assert!(!matches!(
            plan_access(&t, &[col("b").eq(lit("x"))]),
            Access::Index { .. }
        ));
    }

    #[test]
    fn secondary_indexes_serve_what_the_primary_key_cannot() {
        let mut t = table(vec![1]);
        t.indexes.push(crate::indexes::IndexDef {
            id: 30000,
            name: "t_b_c_idx".into(),
            columns: vec![2, 3],
            expressions: Vec::new(),
            include: Vec::new(),
            predicate: None,
            unique: false,
            nulls_not_distinct: false,
            constraint: false,
        });
        // The primary key still wins when it narrows the scan.
        assert!(matches!(
            plan_access(&t, &[col("a").eq(lit(1i32)), col("b").eq(lit("x"))]),
            Access::Points(_)
        ));
        let Access::Index { name, ranges, .. } =
            plan_access(&t, &[col("b").in_list(vec![lit("y"), lit("x")], false)])
        else {
            panic!("expected an index scan");
        };
        assert_eq!(name, "t_b_c_idx");
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].0.as_ref(), index_key("x", None).as_slice());
        assert!(ranges[0].1.as_ref() > index_key("x", Some(i64::MAX)).as_slice());
        assert!(ranges[0].1 <= ranges[1].0);
        // Bounds on the next column; an open upper end stops before NULLs.
        let Access::Index { ranges, .. } =
            plan_access(&t, &[col("b").eq(lit("x")), col("c").gt(lit(5i64))])
        else {
            panic!("expected an index scan");
        };
        let (start, end) = &ranges[0];
        assert!(start.as_ref() > index_key("x", Some(5)).as_slice());
        assert!(start.as_ref() <= index_key("x", Some(6)).as_slice());
        assert!(end.as_ref() > index_key("x", Some(i64::MAX)).as_slice());
        let mut null = KeyEncoder::with_prefix(index_prefix(20000, 30000));
        null.not_null().str("x").null();
        assert!(end.as_ref() <= null.as_slice());
        // A later index column alone cannot be used.
        assert!(matches!(
            plan_access(&t, &[col("c").eq(lit(1i64))]),
            Access::Range { full: true, .. }
        ));
    }

    #[test]
    fn composite_keys_use_the_pinned_prefix() {
        let t = table(vec![1, 2]);
        assert_eq!(
            plan_access(&t, &[col("a").eq(lit(1i32)), col("b").eq(lit("x"))]),
            Access::Points(vec![key(1, Some("x"))])
        );
        let Access::Range {
            start,
            end,
            full: false,
        } = plan_access(&t, &[col("a").eq(lit(1i32))])
        else {
            panic!("expected a range");
        };
        assert!(start <= key(1, Some("")) && key(1, Some("zzz")) < end && end <= key(2, Some("")));
        let Access::Range { start, end, .. } =
            plan_access(&t, &[col("a").eq(lit(1i32)), col("b").gt_eq(lit("m"))])
        else {
            panic!("expected a range");
        };
        assert!(start == key(1, Some("m")) && key(1, Some("zz")) < end && end <= key(2, Some("")));
        // Bounds on a later key column alone cannot narrow anything.
        assert!(matches!(
            plan_access(&t, &[col("b").eq(lit("x"))]),
            Access::Range { full: true, .. }
        ));
    }
}
