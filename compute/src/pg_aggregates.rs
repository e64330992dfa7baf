//! `avg`, `sum` and `array_agg` with PostgreSQL's result types.
//!
//! DataFusion averages integers into a float; PostgreSQL averages any integer into a numeric.
//! `PgAverage` wraps DataFusion's own aggregate and changes only how arguments are coerced: an integer
//! is averaged as a decimal of scale 12, whose average has scale 16. PostgreSQL prints an average
//! with 16 decimals when it is below 10000 (`1.5000000000000000`) and fewer above that, where
//! Strata keeps 16. A numeric of scale below 12 is averaged the same way; one of a larger scale
//! keeps DataFusion's scale (the argument's plus 4).
//! Everything else (accumulators, group accumulators, window frames) is DataFusion's.
//!
//! DataFusion sums every integer into a bigint (wrapping on overflow); PostgreSQL sums smallint
//! and integer into a bigint and bigint into a numeric. A coercion cannot say that: DataFusion
//! coerces a plan's arguments more than once, and one that sends int4 to int8 and int8 to
//! numeric is not idempotent. So `PgSum` coerces no integer: it picks the result type from the
//! argument's own type and casts each input batch to it before DataFusion's accumulator (built
//! for that result type) adds it up.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, DECIMAL128_MAX_PRECISION};
use datafusion::common::{Result as DFResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, ReversedUDAF,
    SetMonotonicity, Signature, Volatility,
};

/// The decimal integers are averaged as; DataFusion's average adds 4 to precision and scale,
/// giving numeric(37,16): 21 integer digits hold any bigint, and the result is not taken for
/// an unconstrained numeric (38,16), whose trailing zeros are trimmed when printed.
const AVERAGE_PRECISION: u8 = 33;
const AVERAGE_SCALE: i8 = 12;

/// DataFusion's optimizer rule that must not run with `PgSum`: it splits aggregates beside a
/// DISTINCT one into two phases, the outer applying the same function to the inner's results.
pub const SUM_SPLITTING_RULE: &str = "single_distinct_aggregation_to_group_by";

/// The aggregates to register over DataFusion's.
pub fn all() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::new_from_impl(PgAverage {
            inner: datafusion::functions_aggregate::average::avg_udaf(),
            signature: Signature::user_defined(Volatility::Immutable),
        }),
        AggregateUDF::new_from_impl(PgSum {
            inner: datafusion::functions_aggregate::sum::sum_udaf(),
            signature: Signature::user_defined(Volatility::Immutable),
        }),
        AggregateUDF::new_from_impl(PgArrayAgg::new(
            datafusion::functions_aggregate::array_agg::array_agg_udaf(),
        )),
    ]
}

/// `avg`'s argument: any integer as a decimal, floats as float8.
fn avg_argument(t: &DataType) -> DataType {
    match t {
        t if t.is_integer() || *t == DataType::Null => {
            DataType::Decimal128(AVERAGE_PRECISION, AVERAGE_SCALE)
        }
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        // A numeric of a smaller scale is averaged at scale 12 too, so that its average has
        // the 16 decimals of a quotient (`numeric_scale`), if its integer digits still fit.
        DataType::Decimal128(p, s)
            if *s < AVERAGE_SCALE
                && i16::from(*p) - i16::from(*s) + i16::from(AVERAGE_SCALE)
                    <= i16::from(AVERAGE_PRECISION) =>
        {
            DataType::Decimal128((*p as i8 - *s + AVERAGE_SCALE) as u8, AVERAGE_SCALE)
        }
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

/// The type `sum` adds an integer argument up in, which is its result type: bigint for the
/// smaller integers, numeric for bigint (as PostgreSQL's `int8_sum`). `None` for other types.
fn integer_sum_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Null => {
            Some(DataType::Int64)
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => Some(DataType::Int64),
        DataType::Int64 | DataType::UInt64 => {
            Some(DataType::Decimal128(DECIMAL128_MAX_PRECISION, 0))
        }
        _ => None,
    }
}

/// DataFusion's `sum` with PostgreSQL's result types for integers. Floats are summed as float8,
/// decimals and intervals as DataFusion sums them.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgSum {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

impl PgSum {
    fn inner(&self) -> &Arc<dyn AggregateUDFImpl> {
        self.inner.inner()
    }

    /// What each input batch is cast to before the inner accumulator sees it: the result type,
    /// when the argument is an integer of another type.
    fn input_cast(args: &AccumulatorArgs) -> Option<DataType> {
        let argument = args.expr_fields.first()?.data_type();
        integer_sum_type(argument).filter(|t| t != argument)
    }
}

impl AggregateUDFImpl for PgSum {
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
        if arg_types.len() == 1 && integer_sum_type(&arg_types[0]).is_some() {
            return Ok(arg_types.to_vec());
        }
        // Anything else as DataFusion's `sum` coerces it (floats to float8).
        let fields: Vec<FieldRef> = arg_types
            .iter()
            .map(|t| Arc::new(Field::new("argument", t.clone(), true)))
            .collect();
        let coerced = fields_with_udf(&fields, self.inner.as_ref())?;
        Ok(coerced.iter().map(|f| f.data_type().clone()).collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        match arg_types.first().and_then(integer_sum_type) {
            Some(t) => Ok(t),
            None => self.inner().return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        let inner = self.inner().accumulator(args.clone())?;
        Ok(match Self::input_cast(&args) {
            Some(to) => Box::new(CastInput { inner, to }),
            None => inner,
        })
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
        let inner = self.inner().create_groups_accumulator(args.clone())?;
        Ok(match Self::input_cast(&args) {
            Some(to) => Box::new(CastInput { inner, to }),
            None => inner,
        })
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        let inner = self.inner().create_sliding_accumulator(args.clone())?;
        Ok(match Self::input_cast(&args) {
            Some(to) => Box::new(CastInput { inner, to }),
            None => inner,
        })
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

/// An accumulator whose input (not its state, which is already of the result type) is cast to
/// `to` first.
#[derive(Debug)]
struct CastInput<A: ?Sized> {
    inner: Box<A>,
    to: DataType,
}

impl<A: ?Sized> CastInput<A> {
    fn cast(&self, values: &[ArrayRef]) -> DFResult<Vec<ArrayRef>> {
        values.iter().map(|v| Ok(cast(v, &self.to)?)).collect()
    }
}

impl Accumulator for CastInput<dyn Accumulator> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DFResult<()> {
        let values = self.cast(values)?;
        self.inner.update_batch(&values)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DFResult<()> {
        let values = self.cast(values)?;
        self.inner.retract_batch(&values)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }

    fn evaluate(&mut self) -> DFResult<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn state(&mut self) -> DFResult<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DFResult<()> {
        self.inner.merge_batch(states)
    }
}

impl GroupsAccumulator for CastInput<dyn GroupsAccumulator> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DFResult<()> {
        let values = self.cast(values)?;
        self.inner
            .update_batch(&values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DFResult<ArrayRef> {
        self.inner.evaluate(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> DFResult<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DFResult<()> {
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DFResult<Vec<ArrayRef>> {
        self.inner.convert_to_state(&self.cast(values)?, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }
}

/// DataFusion's `array_agg`, whose result is an array of its argument's PostgreSQL type:
/// `array_agg(oid)` is an `oid[]`, `array_agg(uuid)` a `uuid[]` (DataFusion's keeps the Arrow
/// type alone, an `int8[]`, a `text[]`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgArrayAgg {
    inner: Arc<AggregateUDF>,
}

impl PgArrayAgg {
    fn new(inner: Arc<AggregateUDF>) -> Self {
        PgArrayAgg { inner }
    }

    /// DataFusion's implementation `inner` (a variant of `array_agg`), wrapped.
    fn wrapping(inner: Arc<dyn AggregateUDFImpl>) -> Self {
        PgArrayAgg::new(Arc::new(AggregateUDF::new_from_shared_impl(inner)))
    }

    fn inner(&self) -> &Arc<dyn AggregateUDFImpl> {
        self.inner.inner()
    }
}

impl AggregateUDFImpl for PgArrayAgg {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        self.inner().return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> DFResult<FieldRef> {
        let field = self.inner().return_field(arg_fields)?;
        let element = arg_fields
            .first()
            .filter(|f| !f.metadata().is_empty())
            .map(|f| crate::types::pg_type_of_field(f).0);
        Ok(
            match element.and_then(|t| crate::types::array_type_of(&t)) {
                Some(array) => Arc::new(crate::types::pg_typed_field(
                    field.name(),
                    field.data_type().clone(),
                    &array,
                )),
                None => field,
            },
        )
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

    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial_ordering: bool,
    ) -> DFResult<Option<Arc<dyn AggregateUDFImpl>>> {
        Ok(self
            .inner()
            .clone()
            .with_beneficial_ordering(beneficial_ordering)?
            .map(|inner| Arc::new(PgArrayAgg::wrapping(inner)) as _))
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        match self.inner().reverse_expr() {
            ReversedUDAF::Reversed(udaf) => ReversedUDAF::Reversed(Arc::new(
                AggregateUDF::new_from_impl(PgArrayAgg::wrapping(udaf.inner().clone())),
            )),
            other => other,
        }
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner().supports_null_handling_clause()
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

    #[test]
    fn sums_as_postgres_types_results() {
        let sum = PgSum {
            inner: datafusion::functions_aggregate::sum::sum_udaf(),
            signature: Signature::user_defined(Volatility::Immutable),
        };
        let result = |t: DataType| {
            let coerced = sum.coerce_types(&[t]).unwrap();
            // Coercing twice changes nothing.
            assert_eq!(sum.coerce_types(&coerced).unwrap(), coerced);
            sum.return_type(&coerced).unwrap()
        };
        assert_eq!(result(DataType::Int16), DataType::Int64);
        assert_eq!(result(DataType::Int32), DataType::Int64);
        assert_eq!(result(DataType::Int64), DataType::Decimal128(38, 0));
        assert_eq!(result(DataType::Float32), DataType::Float64);
        assert_eq!(
            result(DataType::Decimal128(10, 2)),
            DataType::Decimal128(20, 2)
        );
    }
}
