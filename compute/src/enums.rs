//! Enum types: `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`.
//!
//! A value of an enum type is stored as its label's text, so rows read back without a lookup,
//! and the column is described to clients with the type's own oid, as PostgreSQL describes it.
//! The definition (its oid, name and labels, in order) lives in the catalog under its name; each
//! column of the type keeps a copy of it (see [`crate::catalog::ColumnDef::enum_type`]) so that
//! a write can check its labels without a catalog lookup, and DDL that changes the type
//! (`ALTER TYPE … ADD VALUE`, `RENAME TO`) rewrites those copies in the same transaction.
//!
//! Text becomes an enum value where PostgreSQL's `enum_in` would read it: when written to a
//! column of the type, and in a cast (`'ok'::mood`, rewritten before planning to
//! `strata_enum_in('ok', <oid>, 'mood', <labels…>)`). A label not in the type is 22P02.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result as DFResult, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    lit, BinaryExpr, ColumnarValue, Expr as DfExpr, ExprSchemable, LogicalPlan, Operator,
    ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    DataType as SqlDataType, Expr, ObjectName, Statement, Value, VisitMut, VisitorMut,
};
use serde::{Deserialize, Serialize};
use strata_core::key::CATALOG_PREFIX;

use crate::catalog::CatalogView;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::search_path::SearchPath;

/// An enum type as `CREATE TYPE … AS ENUM` made it (and `ALTER TYPE` changed it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumTypeDef {
    /// The type's oid (from the relation id counter).
    pub id: u64,
    pub database: String,
    pub schema: String,
    pub name: String,
    /// The labels in their sort order.
    pub labels: Vec<String>,
}

impl EnumTypeDef {
    /// Whether `label` is one of the type's values; if not, PostgreSQL's `enum_in` error.
    pub fn check(&self, label: &str) -> SqlResult<()> {
        place(&self.qualified_name(), &self.labels, label).map(|_| ())
    }

    /// The name as `format_type` prints it: bare in `public`, else with its schema.
    pub fn qualified_name(&self) -> String {
        if self.schema == crate::catalog::DEFAULT_SCHEMA {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }
}

/// The place (from 1) of `label` among the labels of the type `type_name`; if it has none,
/// PostgreSQL's `enum_in` error.
fn place(type_name: &str, labels: &[String], label: &str) -> SqlResult<i32> {
    match labels.iter().position(|l| l == label) {
        Some(i) => Ok(i as i32 + 1),
        None => Err(SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid input value for enum {type_name}: \"{label}\""),
        )),
    }
}

/// The place of each value of a text column among an enum type's labels, given to a function
/// as literal text arguments: the type's name (as `format_type` prints it), then its labels.
fn places(
    text: &ArrayRef,
    type_args: &[ColumnarValue],
) -> DFResult<datafusion::arrow::array::Int32Array> {
    let text_literal = |a: &ColumnarValue| match a {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(l))) => Ok(l.clone()),
        _ => Err(datafusion::error::DataFusionError::Internal(
            "an enum type is given by its name and labels as text literals".into(),
        )),
    };
    let Some((name, labels)) = type_args.split_first() else {
        return Err(datafusion::error::DataFusionError::Internal(
            "an enum type is given by its name and labels".into(),
        ));
    };
    let name = text_literal(name)?;
    let labels: Vec<String> = labels.iter().map(text_literal).collect::<DFResult<_>>()?;
    text.as_string::<i32>()
        .iter()
        .map(|v| v.map(|label| place(&name, &labels, label)).transpose())
        .collect::<SqlResult<_>>()
        .map_err(SqlError::into_datafusion)
}

/// Key of an enum type's definition: `m Y <database> 0x00 <schema> 0x00 <name>`. Keyed by name,
/// so two concurrent `CREATE TYPE`s of one name conflict at commit.
pub fn enum_type_key(database: &str, schema: &str, name: &str) -> Bytes {
    let mut k = vec![CATALOG_PREFIX, b'Y'];
    for part in [database, schema] {
        k.extend_from_slice(part.as_bytes());
        k.push(0);
    }
    k.extend_from_slice(name.as_bytes());
    Bytes::from(k)
}

/// Whether `key` is an enum type's key.
pub fn is_enum_type_key(key: &[u8]) -> bool {
    key.starts_with(&[CATALOG_PREFIX, b'Y'])
}

pub fn encode_enum_type(def: &EnumTypeDef) -> Bytes {
    crate::catalog::encode_def(def)
}

pub fn decode_enum_type(value: &[u8]) -> SqlResult<EnumTypeDef> {
    crate::catalog::decode_def("enum type", value)
}

/// `(schema, name)` of a type name as SQL writes it, if it may name an enum type: one part
/// (`public`, as other schemas were qualified before, see `search_path`) or two.
pub fn type_name_parts(name: &ObjectName) -> Option<(String, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(crate::names::normalize))
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [name] => Some((crate::catalog::DEFAULT_SCHEMA.to_string(), name.clone())),
        [schema, name] => Some((schema.clone(), name.clone())),
        _ => None,
    }
}

/// The enum type a column or cast type names, if it names one.
pub fn lookup(view: &CatalogView, data_type: &SqlDataType) -> SqlResult<Option<Arc<EnumTypeDef>>> {
    let SqlDataType::Custom(name, args) = data_type else {
        return Ok(None);
    };
    if !args.is_empty() {
        return Ok(None);
    }
    match type_name_parts(name) {
        Some((schema, name)) => view.enum_type(&schema, &name),
        None => Ok(None),
    }
}

/// The name of the function a cast to an enum type becomes.
pub const ENUM_INPUT_FUNCTION: &str = "strata_enum_in";

/// Rewrites every cast to an enum type (`x::mood`, `CAST(x AS mood)`) into
/// `strata_enum_in(x, <oid>, <name>, <labels…>)`, which checks the labels and types the result.
/// A type named without a schema is looked up along `path`.
pub fn rewrite_enum_casts(
    statement: &mut Statement,
    view: &CatalogView,
    path: &SearchPath,
) -> SqlResult<()> {
    if !view.may_have_enum_types() {
        return Ok(());
    }
    struct Casts<'a, 'b> {
        view: &'a CatalogView<'b>,
        path: &'a SearchPath,
        error: Option<SqlError>,
    }
    impl Casts<'_, '_> {
        fn enum_type(&self, data_type: &SqlDataType) -> SqlResult<Option<Arc<EnumTypeDef>>> {
            if let SqlDataType::Custom(name, args) = data_type {
                if let ([part], true) = (name.0.as_slice(), args.is_empty()) {
                    let Some(ident) = part.as_ident() else {
                        return Ok(None);
                    };
                    let name = crate::names::normalize(ident);
                    return match self.path.lookup_type(self.view, &name)? {
                        Some(schema) => self.view.enum_type(&schema, &name),
                        None => Ok(None),
                    };
                }
            }
            lookup(self.view, data_type)
        }
    }
    impl VisitorMut for Casts<'_, '_> {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            let Expr::Cast {
                expr: inner,
                data_type,
                ..
            } = expr
            else {
                return ControlFlow::Continue(());
            };
            match self.enum_type(data_type) {
                Ok(Some(def)) => {
                    let mut args = vec![
                        inner.as_ref().clone(),
                        Expr::value(Value::Number(def.id.to_string(), false)),
                        Expr::value(Value::SingleQuotedString(def.qualified_name())),
                    ];
                    args.extend(
                        def.labels
                            .iter()
                            .map(|l| Expr::value(Value::SingleQuotedString(l.clone()))),
                    );
                    *expr = crate::sql_rewrite::function_call(ENUM_INPUT_FUNCTION, args);
                    ControlFlow::Continue(())
                }
                Ok(None) => ControlFlow::Continue(()),
                Err(e) => {
                    self.error = Some(e);
                    ControlFlow::Break(())
                }
            }
        }
    }
    let mut casts = Casts {
        view,
        path,
        error: None,
    };
    let _ = statement.visit(&mut casts);
    casts.error.map_or(Ok(()), Err)
}

/// `strata_enum_in(text, oid, name, label…)`: the text, checked to be one of the labels, typed as
/// the enum type `oid` (which RowDescription announces).
#[derive(Debug, PartialEq, Eq, Hash)]
struct EnumInput {
    signature: Signature,
}

pub fn enum_input_function() -> ScalarUDF {
    ScalarUDF::new_from_impl(EnumInput {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

fn literal_oid(args: &ReturnFieldArgs) -> Option<u64> {
    match args.scalar_arguments.get(1).copied().flatten()? {
        ScalarValue::Int64(Some(v)) => u64::try_from(*v).ok(),
        ScalarValue::Int32(Some(v)) => u64::try_from(*v).ok(),
        _ => None,
    }
}

impl ScalarUDFImpl for EnumInput {
    fn name(&self) -> &str {
        ENUM_INPUT_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DFResult<FieldRef> {
        let field = Field::new(self.name(), DataType::Utf8, true);
        Ok(Arc::new(match literal_oid(&args) {
            Some(oid) => {
                field.with_metadata(crate::types::SqlType::Enum { type_id: oid }.field_metadata())
            }
            None => field,
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        if args.args.len() < 3 {
            return Err(datafusion::error::DataFusionError::Internal(format!(
                "{ENUM_INPUT_FUNCTION} takes a value, an oid, a name and labels"
            )));
        }
        let array = args.args[0].to_array(args.number_rows)?;
        let text = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
        places(&text, &args.args[2..])?;
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&text, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(text),
        })
    }
}

/// The name of the function that orders enum values by their labels' places.
pub const ENUM_ORDER_FUNCTION: &str = "strata_enum_order";

/// `strata_enum_order(value, name, label…)`: the value's place among the labels (1-based),
/// what `ORDER BY` and `<` compare for an enum type, as PostgreSQL orders enum values by their
/// declaration, not their text. A label not in the type is 22P02.
#[derive(Debug, PartialEq, Eq, Hash)]
struct EnumOrder {
    signature: Signature,
}

fn enum_order_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(EnumOrder {
        signature: Signature::variadic_any(Volatility::Immutable),
    }))
}

impl ScalarUDFImpl for EnumOrder {
    fn name(&self) -> &str {
        ENUM_ORDER_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let text = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
        let places: ArrayRef = Arc::new(places(&text, &args.args[1..])?);
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&places, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(places),
        })
    }
}

/// The enum types of the catalog view, by oid (empty when there are none).
pub fn types_by_id(view: &CatalogView) -> HashMap<u64, Arc<EnumTypeDef>> {
    if !view.may_have_enum_types() {
        return HashMap::new();
    }
    view.schemas()
        .iter()
        .flat_map(|s| view.enum_types(&s.name))
        .map(|e| (e.id, e))
        .collect()
}

/// Makes `ORDER BY` and `<`, `<=`, `>`, `>=` of enum values follow the labels' order: each
/// such sort key or operand `x` becomes `strata_enum_order(x, name, labels…)`.
pub fn order_by_declaration(
    plan: LogicalPlan,
    types: &HashMap<u64, Arc<EnumTypeDef>>,
) -> DFResult<LogicalPlan> {
    if types.is_empty() {
        return Ok(plan);
    }
    let udf = enum_order_udf();
    let enum_of = |expr: &DfExpr, schema: &DFSchema| -> Option<Arc<EnumTypeDef>> {
        let (_, field) = expr.to_field(schema).ok()?;
        let oid = field
            .metadata()
            .get(crate::types::PG_OID_METADATA)?
            .parse::<u64>()
            .ok()?;
        types.get(&oid).cloned()
    };
    let order = |expr: DfExpr, def: &EnumTypeDef| {
        let mut args = vec![expr, lit(def.qualified_name())];
        args.extend(def.labels.iter().map(|l| lit(l.clone())));
        DfExpr::ScalarFunction(ScalarFunction::new_udf(udf.clone(), args))
    };
    crate::expr_rules::rewrite_expressions(
        plan,
        |key, schema| enum_of(key, schema).map(|def| order(key.clone(), &def)),
        |e, schema| match e {
            DfExpr::BinaryExpr(BinaryExpr { left, op, right })
                if matches!(
                    op,
                    Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
                ) =>
            {
                match enum_of(&left, schema).or_else(|| enum_of(&right, schema)) {
                    Some(def) => Ok(Transformed::yes(DfExpr::BinaryExpr(BinaryExpr {
                        left: Box::new(order(*left, &def)),
                        op,
                        right: Box::new(order(*right, &def)),
                    }))),
                    None => Ok(Transformed::no(DfExpr::BinaryExpr(BinaryExpr {
                        left,
                        op,
                        right,
                    }))),
                }
            }
            other => Ok(Transformed::no(other)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked_as_enum_in_checks_them() {
        let def = EnumTypeDef {
            id: 16390,
            database: "postgres".into(),
            schema: "public".into(),
            name: "mood".into(),
            labels: vec!["sad".into(), "ok".into()],
        };
        assert!(def.check("ok").is_ok());
        let e = def.check("OK").unwrap_err();
        assert_eq!(e.code, sqlstate::INVALID_TEXT_REPRESENTATION);
        assert_eq!(e.message, "invalid input value for enum mood: \"OK\"");
        let key = enum_type_key("postgres", "public", "mood");
        assert!(is_enum_type_key(&key));
        assert_eq!(decode_enum_type(&encode_enum_type(&def)).unwrap(), def);
    }
}
