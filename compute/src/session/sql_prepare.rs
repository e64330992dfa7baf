//! SQL-level `PREPARE name [(types)] AS statement` and `EXECUTE name [(arguments)]`.
//!
//! A statement prepared in SQL shares its name with those prepared by the protocol (Parse): a
//! name is taken once (42P05), `DEALLOCATE` frees it, and `pg_prepared_statements` lists it.
//! It is planned once, like a protocol statement, and planned again when DDL or the session's
//! `search_path` changed since. `EXECUTE` evaluates its arguments, converts each to the type of
//! its parameter as PostgreSQL would a parameter sent in text (a quoted literal is input text of
//! that type), and runs the plan.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{DataType as SqlDataType, Expr, Ident, Statement, Value};

use super::prepare::Prepared;
use super::{Output, Session};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::named_statements::NamedStatement;

impl Session {
    /// `PREPARE name [(types)] AS statement`.
    pub(super) async fn sql_prepare(
        &self,
        name: &Ident,
        data_types: &[SqlDataType],
        statement: &Statement,
        text: String,
    ) -> SqlResult<Output> {
        let name = crate::names::normalize(name);
        self.named.take(&name)?;
        let planned = match self.prepare(statement.clone()).await {
            Ok(p) => p,
            Err(e) => {
                self.named.free(&name);
                return Err(e);
            }
        };
        let parameter_types = (0..planned.param_types.len().max(data_types.len()))
            .map(|i| match (data_types.get(i), &planned.param_types.get(i)) {
                (Some(declared), _) => crate::types::SqlType::from_sql(declared)
                    .ok()
                    .and_then(|t| {
                        crate::pg_catalog::format_type(i64::from(t.pg_type().oid()), None)
                    })
                    .unwrap_or_else(|| declared.to_string().to_lowercase()),
                (None, Some(Some(field))) => {
                    // A parameter has a type but no modifier (pg_prepared_statements lists
                    // regtypes).
                    let (t, _) = crate::types::pg_type_of_field(field);
                    crate::pg_catalog::format_type(i64::from(t.oid()), None)
                        .unwrap_or_else(|| t.name().to_string())
                }
                (None, _) => "text".to_string(),
            })
            .collect();
        self.named.describe(
            &name,
            NamedStatement {
                statement: text,
                prepare_time: chrono::Utc::now().timestamp_micros(),
                parameter_types,
            },
        );
        self.sql_prepared
            .lock()
            .expect("prepared lock")
            .insert(name, Arc::new(planned));
        Ok(Output::command("PREPARE"))
    }

    /// The statement `PREPARE` made under `name`.
    pub(super) fn sql_prepared(&self, name: &str) -> SqlResult<Arc<Prepared>> {
        self.sql_prepared
            .lock()
            .expect("prepared lock")
            .get(name)
            .cloned()
            .ok_or_else(|| {
                SqlError::new(
                    sqlstate::INVALID_SQL_STATEMENT_NAME,
                    format!("prepared statement \"{name}\" does not exist"),
                )
            })
    }

    /// The statement an `EXECUTE` runs, if `statement` is one and its name is known.
    pub(super) fn executed_by(&self, statement: &Statement) -> Option<Arc<Prepared>> {
        let Statement::Execute {
            name: Some(name), ..
        } = statement
        else {
            return None;
        };
        let [part] = name.0.as_slice() else {
            return None;
        };
        let name = crate::names::normalize(part.as_ident()?);
        self.sql_prepared(&name).ok()
    }

    /// Forgets statements whose names `DEALLOCATE` freed.
    pub fn forget_prepared(&self, names: &[String]) {
        let mut prepared = self.sql_prepared.lock().expect("prepared lock");
        for name in names {
            prepared.remove(name);
        }
    }

    /// `EXECUTE name [(arguments)]`.
    pub(super) async fn sql_execute(&self, name: &str, arguments: &[Expr]) -> SqlResult<Output> {
        let prepared = self.sql_prepared(name)?;
        let expected = prepared.param_types.len();
        if arguments.len() != expected {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!("wrong number of parameters for prepared statement \"{name}\""),
            )
            .with_detail(format!(
                "Expected {expected} parameters but got {}.",
                arguments.len()
            )));
        }
        let mut params = Vec::with_capacity(expected);
        for (argument, field) in arguments.iter().zip(&prepared.param_types) {
            let target = field.as_ref().map(|f| f.data_type().clone());
            params.push(self.argument(argument, target.as_ref()).await?);
        }
        Box::pin(self.run(&prepared, params)).await
    }

    /// One `EXECUTE` argument as a value of its parameter's type.
    async fn argument(&self, argument: &Expr, target: Option<&DataType>) -> SqlResult<ScalarValue> {
        // A quoted literal is input text of the parameter's type, as a text parameter is.
        if let Expr::Value(v) = argument {
            if let Value::SingleQuotedString(text) = &v.value {
                let raw = bytes::Bytes::from(text.clone().into_bytes());
                return crate::params::decode_param(Some(&raw), false, target, None);
            }
        }
        let value = self.constant(argument).await?;
        match target {
            Some(t) if value.data_type() != *t && !value.is_null() => {
                value.cast_to(t).map_err(|_| {
                    SqlError::new(
                        sqlstate::DATATYPE_MISMATCH,
                        format!(
                            "parameter of type {} cannot be coerced to the expected type {}",
                            crate::types::pg_type_of_arrow(&value.data_type()).name(),
                            crate::types::pg_type_of_arrow(t).name()
                        ),
                    )
                    .with_hint("You will need to rewrite or cast the expression.")
                })
            }
            Some(t) if value.is_null() => Ok(ScalarValue::try_from(t)?),
            _ => Ok(value),
        }
    }

    /// The value of a constant expression, planned as the session plans any query (so
    /// PostgreSQL's casts and functions mean what they mean elsewhere).
    async fn constant(&self, expr: &Expr) -> SqlResult<ScalarValue> {
        let mut statements = self.parse(&format!("SELECT {expr}"))?;
        let plan = self.logical_plan(&statements.remove(0)).await?;
        let batches = self.ctx.execute_logical_plan(plan).await?.collect().await?;
        let batch = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .ok_or_else(|| SqlError::internal("a constant produced no row"))?;
        Ok(ScalarValue::try_from_array(batch.column(0), 0)?)
    }
}
