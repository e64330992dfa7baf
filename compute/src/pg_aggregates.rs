//! `avg` with PostgreSQL's result type.
//!
//! DataFusion averages integers into a float; PostgreSQL averages any integer into a numeric.
//! This wraps DataFusion's own aggregate and changes only how arguments are coerced: an integer
//! is averaged as a decimal of scale 12, whose average has scale 16. PostgreSQL prints an average
//! with 16 decimals when it is below 10000 (`1.5000000000000000`) and fewer above that, where
//! Strata keeps 16. The average of a numeric keeps DataFusion's scale (the argument's plus 4).
//! Everything else (accumulators, group accumulators, window frames) is DataFusion's.
//!
//! `sum(bigint)` is still a bigint (PostgreSQL: numeric): DataFusion coerces a plan's arguments
//! more than once, and a coercion that sends int4 to int8 and int8 to numeric is not idempotent.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, ReversedUDAF, SetMonotonicity,
    Signature, Volatility,
};

/// The decimal integers are averaged as; DataFusion's average adds 4 to precision and scale,
/// giving numeric(37,16): 21 integer digits hold any bigint, and the result is not taken for
/// an unconstrained numeric (38,16), whose trailing zeros are trimmed when printed.
const AVERAGE_PRECISION: u8 = 33;
const AVERAGE_SCALE: i8 = 12;

/// The aggregates to register over DataFusion's.
pub fn all() -> Vec<AggregateUDF> {
    vec![AggregateUDF::new_from_impl(PgAverage {
        inner: datafusion::functions_aggregate::average::avg_udaf(),
        signature: Signature::user_defined(Volatility::Immutable),
    })]
}

/// `avg`'s argument: any integer as a decimal, floats as float8.
fn avg_argument(t: &DataType) -> DataType {
    match t {
        t if t.is_integer() || *t == DataType::Null => {
            DataType::Decimal128(AVERAGE_PRECISION, AVERAGE_SCALE)
        }
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        other => other.clone(),
    }
}

/// DataFusion's `avg` with PostgreSQL's argument coercion. The coercion must be idempotent:
/// DataFusion may coerce a plan's arguments more than once.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgAverage {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

impl PgAverage {
    fn inner(&self) -> &Arc<dyn AggregateUDFImpl> {
        self.inner.inner()
    }
}

impl AggregateUDFImpl for PgAverage {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        Ok(arg_types.iter().map(avg_argument).collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        self.inner().return_type(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        self.inner().accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DFResult<Vec<FieldRef>> {
        self.inner().state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner().groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DFResult<Box<dyn GroupsAccumulator>> {
        self.inner().create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        self.inner().create_sliding_accumulator(args)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner().order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner().set_monotonicity(data_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coerces_as_postgres_types_results() {
        assert_eq!(avg_argument(&DataType::Int32), DataType::Decimal128(33, 12));
        assert_eq!(avg_argument(&DataType::Float64), DataType::Float64);
        // Coercing twice changes nothing.
        let once = avg_argument(&DataType::Int16);
        assert_eq!(avg_argument(&once), once);
    }
}
