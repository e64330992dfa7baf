//! `age(a, b)` and `age(a)`: the symbolic difference of two timestamps in years, months, days
//! and time, as PostgreSQL's `timestamp_age` computes it (field by field, borrowing the length
//! of a month from the earlier timestamp), not a count of days. `age(a)` is `age(current_date,
//! a)`. Times are taken in UTC, the session time zone Strata has.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

pub fn all() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(Age {
        signature: Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Volatility::Stable,
        ),
    })]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Age {
    signature: Signature,
}

impl ScalarUDFImpl for Age {
    fn name(&self) -> &str {
        "age"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let timestamps = |a: &ArrayRef| -> DFResult<ArrayRef> {
            // A timestamptz's instant, read as a UTC wall-clock time.
            let naive = match a.data_type() {
                DataType::Timestamp(unit, Some(_)) => cast(a, &DataType::Timestamp(*unit, None))?,
                _ => a.clone(),
            };
            Ok(cast(
                &naive,
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )?)
        };
        let later = timestamps(&arrays[0])?;
        let earlier = arrays.get(1).map(timestamps).transpose()?;
        let later = later.as_primitive::<TimestampMicrosecondType>();
        let earlier = earlier
            .as_ref()
            .map(|e| e.as_primitive::<TimestampMicrosecondType>());
        let today = chrono::Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists");
        let out: IntervalMonthDayNanoArray = (0..rows)
            .map(|row| {
                let (a, b) = match earlier {
                    Some(earlier) => (
                        (!later.is_null(row)).then(|| later.value(row)),
                        (!earlier.is_null(row)).then(|| earlier.value(row)),
                    ),
                    None => (
                        Some(today.and_utc().timestamp_micros()),
                        (!later.is_null(row)).then(|| later.value(row)),
                    ),
                };
                let (a, b) = (a.and_then(naive)?, b.and_then(naive)?);
                let (months, days, micros) = age(a, b);
                Some(IntervalMonthDayNano::new(months, days, micros * 1000))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

fn naive(micros: i64) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc())
}

/// PostgreSQL's `timestamp_age`: months, days and microseconds from `b` to `a`.
fn age(a: NaiveDateTime, b: NaiveDateTime) -> (i32, i32, i64) {
    let fields = |t: NaiveDateTime| {
        [
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
            i64::from(t.minute()),
            i64::from(t.second()),
            i64::from(t.nanosecond() / 1000),
        ]
    };
    let (fa, fb) = (fields(a), fields(b));
    let sign = if a < b { -1 } else { 1 };
    let mut d: Vec<i64> = fa.iter().zip(fb).map(|(x, y)| (x - y) * sign).collect();
    let [year, month, day, hour, minute, second, micro] = [0, 1, 2, 3, 4, 5, 6];
    while d[micro] < 0 {
        d[micro] += 1_000_000;
        d[second] -= 1;
    }
    while d[second] < 0 {
        d[second] += 60;
        d[minute] -= 1;
    }
    while d[minute] < 0 {
        d[minute] += 60;
        d[hour] -= 1;
    }
    while d[hour] < 0 {
        d[hour] += 24;
        d[day] -= 1;
    }
    // A month borrowed is as long as the earlier timestamp's month.
    let earlier = if a < b { a } else { b };
    while d[day] < 0 {
        d[day] += days_in_month(earlier.year(), earlier.month());
        d[month] -= 1;
    }
    while d[month] < 0 {
        d[month] += 12;
        d[year] -= 1;
    }
    let d: Vec<i64> = d.into_iter().map(|v| v * sign).collect();
    let months = d[year] * 12 + d[month];
    let micros = ((d[hour] * 60 + d[minute]) * 60 + d[second]) * 1_000_000 + d[micro];
    (months as i32, d[day] as i32, micros)
}

fn days_in_month(year: i32, month: u32) -> i64 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let first = NaiveDate::from_ymd_opt(year, month, 1).expect("a real month");
    let next = NaiveDate::from_ymd_opt(next_year, next_month, 1).expect("a real month");
    (next - first).num_days()
}

#[cfg(test)]
mod tests {
    use super::age;
    use chrono::NaiveDateTime;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn borrows_as_postgresql_does() {
        // SELECT age('2024-03-04', '2023-01-01') = 1 year 2 mons 3 days
        assert_eq!(
            age(at("2024-03-04 00:00:00"), at("2023-01-01 00:00:00")),
            (14, 3, 0)
        );
        // The day borrow takes February 2024's 29 days.
        assert_eq!(
            age(at("2024-03-01 00:00:00"), at("2024-02-28 12:00:00")),
            (0, 1, 43_200_000_000)
        );
        assert_eq!(
            age(at("2023-01-01 00:00:00"), at("2024-03-04 00:00:00")),
            (-14, -3, 0)
        );
        assert_eq!(
            age(at("2024-01-31 00:00:00"), at("2024-01-31 00:00:00")),
            (0, 0, 0)
        );
    }
}
