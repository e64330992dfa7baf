//! Integer arithmetic that fails on overflow, as PostgreSQL's does.
//!
//! DataFusion evaluates `+`, `-`, `*` and unary minus on integers with wrapping arithmetic:
//! `2147483647::int4 + 1` is `-2147483648`, and an `UPDATE … SET n = n + 1` would store it.
//! PostgreSQL refuses with 22003 ("integer out of range"). This analyzer rule, which runs after
//! type coercion (both operands then have one type), replaces those operators on integers by
//! functions that use Arrow's checked kernels.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Datum};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Result as DFResult, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::error::{sqlstate, SqlError};

/// The checked operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Subtract,
    Multiply,
    Negate,
}

impl Op {
    fn of(operator: Operator) -> Option<Op> {
        match operator {
            Operator::Plus => Some(Op::Add),
            Operator::Minus => Some(Op::Subtract),
            Operator::Multiply => Some(Op::Multiply),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Add => "int_add_checked",
            Op::Subtract => "int_subtract_checked",
            Op::Multiply => "int_multiply_checked",
            Op::Negate => "int_negate_checked",
        }
    }
}

fn is_integer(t: &DataType) -> bool {
    matches!(t, DataType::Int16 | DataType::Int32 | DataType::Int64)
}

/// Replaces integer `+`, `-`, `*` and negation by their checked forms (see the module doc).
#[derive(Debug, Default)]
pub struct CheckedIntegerArithmetic;

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn name(&self) -> &str {
        "strata_checked_integer_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DFResult<LogicalPlan> {
        crate::expr_rules::rewrite_expressions(
            plan,
            |_, _| None,
            |e, schema| {
                let integer = |e: &Expr| e.get_type(schema).is_ok_and(|t| is_integer(&t));
                Ok(match e {
                    Expr::BinaryExpr(BinaryExpr { left, op, right })
                        if Op::of(op).is_some() && integer(&left) && integer(&right) =>
                    {
                        let op = Op::of(op).expect("checked above");
                        Transformed::yes(call(op, vec![*left, *right]))
                    }
                    Expr::Negative(inner) if integer(&inner) => {
                        Transformed::yes(call(Op::Negate, vec![*inner]))
                    }
                    other => Transformed::no(other),
                })
            },
        )
    }
}

fn call(op: Op, args: Vec<Expr>) -> Expr {
    let udf = Arc::new(ScalarUDF::new_from_impl(CheckedInt {
        op,
        signature: Signature::any(args.len(), Volatility::Immutable),
    }));
    Expr::ScalarFunction(ScalarFunction::new_udf(udf, args))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedInt {
    op: Op,
    signature: Signature,
}

/// PostgreSQL's message for a result that does not fit `t`.
fn out_of_range(t: &DataType) -> SqlError {
    let name = match t {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        _ => "bigint",
    };
    SqlError::new(
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
        format!("{name} out of range"),
    )
}

impl ScalarUDFImpl for CheckedInt {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let data: Vec<Box<dyn Datum>> = args
            .args
            .iter()
            .map(|a| -> DFResult<Box<dyn Datum>> {
                Ok(match a {
                    ColumnarValue::Array(array) => Box::new(array.clone()),
                    ColumnarValue::Scalar(s) => Box::new(s.to_scalar()?),
                })
            })
            .collect::<DFResult<_>>()?;
        let result: Result<ArrayRef, ArrowError> = match (self.op, data.as_slice()) {
            (Op::Add, [l, r]) => numeric::add(l.as_ref(), r.as_ref()),
            (Op::Subtract, [l, r]) => numeric::sub(l.as_ref(), r.as_ref()),
            (Op::Multiply, [l, r]) => numeric::mul(l.as_ref(), r.as_ref()),
            (Op::Negate, [v]) => {
                let (array, _) = v.get();
                numeric::neg(array)
            }
            _ => Err(ArrowError::InvalidArgumentError(format!(
                "{} takes {} arguments",
                self.name(),
                if self.op == Op::Negate { 1 } else { 2 }
            ))),
        };
        let result = result.map_err(|e| match e {
            ArrowError::ArithmeticOverflow(_) => {
                out_of_range(&args.return_field.data_type().clone()).into_datafusion()
            }
            other => other.into(),
        })?;
        Ok(if all_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?)
        } else {
            ColumnarValue::Array(result)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int32Array};
    use datafusion::arrow::datatypes::Field;

    fn run(op: Op, args: Vec<ColumnarValue>, t: DataType) -> DFResult<ColumnarValue> {
        let udf = CheckedInt {
            op,
            signature: Signature::any(args.len(), Volatility::Immutable),
        };
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        udf.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: 2,
            return_field: Arc::new(Field::new("r", t, true)),
            config_options: Arc::new(ConfigOptions::default()),
        })
    }

    #[test]
    fn overflow_is_out_of_range_and_the_rest_computes() {
        let column = ColumnarValue::Array(Arc::new(Int32Array::from(vec![Some(1), None])));
        let one = ColumnarValue::Scalar(ScalarValue::Int32(Some(1)));
        let sum = run(Op::Add, vec![column.clone(), one.clone()], DataType::Int32).unwrap();
        let ColumnarValue::Array(sum) = sum else {
            panic!("an array in, an array out")
        };
        assert_eq!(sum.len(), 2);
        assert!(sum.is_null(1));

        let max = ColumnarValue::Scalar(ScalarValue::Int32(Some(i32::MAX)));
        let err = run(Op::Add, vec![max, one], DataType::Int32).unwrap_err();
        let err = SqlError::from(err);
        assert_eq!(err.code, sqlstate::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(err.message, "integer out of range");

        let min = ColumnarValue::Scalar(ScalarValue::Int16(Some(i16::MIN)));
        let err = SqlError::from(run(Op::Negate, vec![min], DataType::Int16).unwrap_err());
        assert_eq!(err.message, "smallint out of range");
    }
}
