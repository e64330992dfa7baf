//! PostgreSQL's system information functions (`version()`, `current_schema()`,
//! `pg_get_indexdef()`, `format_type()`, …) and the helpers the catalog rewrites call for
//! `::regclass` and `::regtype` casts.

use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, ListBuilder, StringArray,
    StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type};
use datafusion::common::{DataFusionError, Result as DFResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use super::snapshot::CatalogHandle;
use super::types::{format_type, type_oid_by_name};
use crate::error::{sqlstate, SqlError};
use crate::settings::SERVER_VERSION;

/// What a function computes from its arguments (as arrays of `rows` values).
type Body = Arc<dyn Fn(&CatalogHandle, &[ArrayRef], usize) -> DFResult<ArrayRef> + Send + Sync>;

struct PgFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    /// Returns `void` (an empty text value described as PostgreSQL's `void` type).
    void: bool,
    handle: CatalogHandle,
    body: Body,
}

impl std::fmt::Debug for PgFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgFunction")
            .field("name", &self.name)
            .finish()
    }
}

impl PartialEq for PgFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for PgFunction {}

impl Hash for PgFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(self.returns.clone())
    }

    fn return_field_from_args(
        &self,
        _args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DFResult<datafusion::arrow::datatypes::FieldRef> {
        Ok(Arc::new(if self.void {
            crate::types::void_field(self.name)
        } else {
            Field::new(self.name, self.returns.clone(), true)
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = (self.body)(&self.handle, &arrays, rows)?;
        Ok(ColumnarValue::Array(out))
    }
}

pub(crate) fn ints(a: &ArrayRef) -> DFResult<Vec<Option<i64>>> {
    let a = cast(a, &DataType::Int64)?;
    Ok(a.as_primitive::<Int64Type>().iter().collect())
}

pub(crate) fn texts(a: &ArrayRef) -> DFResult<Vec<Option<String>>> {
    let a = cast(a, &DataType::Utf8)?;
    Ok(a.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

pub(crate) fn arg(args: &[ArrayRef], i: usize) -> DFResult<&ArrayRef> {
    args.get(i)
        .ok_or_else(|| DataFusionError::Plan(format!("missing argument {}", i + 1)))
}

/// The comment on an object (`sub == 0`) or a table's column (by position), among a
/// snapshot's `descriptions()`, taken once per call rather than per row.
fn description(
    descriptions: &[(i64, i64, i64, String)],
    oid: i64,
    catalog: Option<u32>,
    sub: i64,
) -> Option<String> {
    descriptions
        .iter()
        .find(|(o, c, s, _)| {
            *o == oid && *s == sub && catalog.is_none_or(|catalog| *c == i64::from(catalog))
        })
        .map(|(_, _, _, text)| text.clone())
}

fn text_per_row(rows: usize, f: impl Fn(usize) -> Option<String>) -> ArrayRef {
    Arc::new((0..rows).map(f).collect::<StringArray>())
}

/// `pg_typeof(x)`: the type of the argument, by name (PostgreSQL returns a regtype, which prints
/// so). The type is the argument's PostgreSQL type, kept in its field's metadata where Arrow's
/// type does not tell it (json, uuid, varchar).
struct PgTypeof {
    signature: Signature,
    /// For the names of enum types.
    handle: CatalogHandle,
}

impl PgTypeof {
    fn new(handle: &CatalogHandle) -> Self {
        PgTypeof {
            signature: Signature::any(1, Volatility::Immutable),
            handle: handle.clone(),
        }
    }
}

impl std::fmt::Debug for PgTypeof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgTypeof")
    }
}

impl PartialEq for PgTypeof {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PgTypeof {}

impl Hash for PgTypeof {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "pg_typeof".hash(state);
    }
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let field = &args.arg_fields[0];
        let name = match field.data_type() {
            DataType::Null => "unknown".to_string(),
            _ => {
                let oid = i64::from(crate::types::pg_type_of_field(field).0.oid());
                format_type(oid, None)
                    .or_else(|| self.handle.snapshot().type_name(oid, None))
                    .unwrap_or_else(|| oid.to_string())
            }
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

/// Waits for `f` on this worker thread: DataFusion calls scalar functions synchronously, and a
/// few (`nextval` committing a reservation, `pg_advisory_lock` waiting) must await. The compute's
/// multi-threaded runtime lets `block_in_place` hand the worker's other tasks to other threads.
pub(crate) fn block_on_worker<T>(
    f: impl std::future::Future<Output = Result<T, SqlError>>,
) -> Result<T, SqlError> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| SqlError::internal("this function needs a tokio runtime"))?;
    if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread {
        return Err(SqlError::internal(
            "this function needs the multi-threaded runtime",
        ));
    }
    tokio::task::block_in_place(|| handle.block_on(f))
}

pub(crate) fn sql_error(e: SqlError) -> DataFusionError {
    e.into_datafusion()
}

/// A function of fixed arities whose result depends only on its arguments and the catalog.
fn function(
    name: &'static str,
    arities: &[usize],
    returns: DataType,
    handle: &CatalogHandle,
    body: impl Fn(&CatalogHandle, &[ArrayRef], usize) -> DFResult<ArrayRef> + Send + Sync + 'static,
) -> ScalarUDF {
    function_with(Volatility::Stable, name, arities, returns, handle, body)
}

/// A function of fixed arities with the given volatility (`Volatile` for `nextval`: evaluated
/// on every call, never folded).
pub(crate) fn function_with(
    volatility: Volatility,
    name: &'static str,
    arities: &[usize],
    returns: DataType,
    handle: &CatalogHandle,
    body: impl Fn(&CatalogHandle, &[ArrayRef], usize) -> DFResult<ArrayRef> + Send + Sync + 'static,
) -> ScalarUDF {
    ScalarUDF::new_from_impl(pg_function(
        volatility, name, arities, returns, handle, body,
    ))
}

fn pg_function(
    volatility: Volatility,
    name: &'static str,
    arities: &[usize],
    returns: DataType,
    handle: &CatalogHandle,
    body: impl Fn(&CatalogHandle, &[ArrayRef], usize) -> DFResult<ArrayRef> + Send + Sync + 'static,
) -> PgFunction {
    let signatures = arities
        .iter()
        .map(|n| {
            if *n == 0 {
                TypeSignature::Nullary
            } else {
                TypeSignature::Any(*n)
            }
        })
        .collect();
    PgFunction {
        name,
        signature: Signature::one_of(signatures, volatility),
        returns,
        void: false,
        handle: handle.clone(),
        body: Arc::new(body),
    }
}

/// [`function_with`] for a function returning `void`: `body` gives one empty text per row.
pub(crate) fn void_function(
    volatility: Volatility,
    name: &'static str,
    arities: &[usize],
    handle: &CatalogHandle,
    body: impl Fn(&CatalogHandle, &[ArrayRef], usize) -> DFResult<ArrayRef> + Send + Sync + 'static,
) -> ScalarUDF {
    let mut f = pg_function(volatility, name, arities, DataType::Utf8, handle, body);
    f.void = true;
    ScalarUDF::new_from_impl(f)
}

/// A function of the rows' first argument, as an oid, giving text.
fn oid_to_text(
    name: &'static str,
    arities: &[usize],
    handle: &CatalogHandle,
    f: impl Fn(&super::snapshot::Snapshot, i64) -> Option<String> + Send + Sync + 'static,
) -> ScalarUDF {
    function(
        name,
        arities,
        DataType::Utf8,
        handle,
        move |h, args, rows| {
            let oids = ints(arg(args, 0)?)?;
            let snap = h.snapshot();
            // PostgreSQL prints the invalid oid 0 of any reg type as `-`.
            Ok(text_per_row(rows, |i| {
                oids[i].and_then(|oid| match oid {
                    0 => Some("-".to_string()),
                    oid => f(&snap, oid),
                })
            }))
        },
    )
}

fn constant_text(
    name: &'static str,
    arities: &[usize],
    handle: &CatalogHandle,
    f: impl Fn(&CatalogHandle) -> Option<String> + Send + Sync + 'static,
) -> ScalarUDF {
    function(name, arities, DataType::Utf8, handle, move |h, _, rows| {
        let value = f(h);
        Ok(text_per_row(rows, |_| value.clone()))
    })
}

fn constant_bool(
    name: &'static str,
    arities: &[usize],
    value: bool,
    h: &CatalogHandle,
) -> ScalarUDF {
    function(name, arities, DataType::Boolean, h, move |_, _, rows| {
        Ok(Arc::new(BooleanArray::from(vec![value; rows])) as ArrayRef)
    })
}

fn unknown_size(name: &'static str, arities: &[usize], h: &CatalogHandle) -> ScalarUDF {
    function(name, arities, DataType::Int64, h, |_, _, rows| {
        Ok(Arc::new(Int64Array::from(vec![None; rows])) as ArrayRef)
    })
}

/// `pg_size_pretty(bytes)`, as PostgreSQL 15 prints it: bytes below 10 kB, then kB, MB, GB, TB
/// and PB below 20 units of the next, rounded half away from zero.
fn size_pretty(size: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if size.abs() < 10 * 1024 {
        return format!("{size} bytes");
    }
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    // Kept in half-units, so that the last step can round.
    let mut size = size / (1 << 9);
    for (i, unit) in UNITS.iter().enumerate() {
        if i + 1 == UNITS.len() || size.abs() < 20 * 1024 - 1 {
            return format!("{} {unit}", half_rounded(size));
        }
        size /= 1 << 10;
    }
    unreachable!("the last unit is always taken")
}

/// What `version()` says: a PostgreSQL version first, since clients parse it.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Strata {}) on {}-unknown-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// Every function, bound to one session's catalog and settings.
pub fn all(h: &CatalogHandle) -> Vec<ScalarUDF> {
    let user = |h: &CatalogHandle| Some(h.snapshot().user);
    let no_text = |_: &CatalogHandle| None::<String>;
    let list_type = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    vec![
        constant_text("version", &[0], h, |_| Some(version_string())),
        constant_text("current_database", &[0], h, |h| {
            Some(h.slot.database_name().to_string())
        }),
        constant_text("current_catalog", &[0], h, |h| {
            Some(h.slot.database_name().to_string())
        }),
        constant_text("current_schema", &[0], h, |h| {
            h.search_path().into_iter().next()
        }),
        constant_text("current_user", &[0], h, user),
        constant_text("session_user", &[0], h, user),
        constant_text("current_role", &[0], h, user),
        function("current_schemas", &[1], list_type, h, |h, args, rows| {
            let implicit = cast(arg(args, 0)?, &DataType::Boolean)?;
            let implicit = implicit.as_boolean();
            let path = h.search_path();
            let mut builder = ListBuilder::new(StringBuilder::new());
            for i in 0..rows {
                let with_system = implicit.is_valid(i) && implicit.value(i);
                if with_system && !path.iter().any(|s| s == "pg_catalog") {
                    builder.values().append_value("pg_catalog");
                }
                for schema in &path {
                    builder.values().append_value(schema);
                }
                builder.append(true);
            }
            Ok(Arc::new(builder.finish()) as ArrayRef)
        }),
        function(
            "current_setting",
            &[1, 2],
            DataType::Utf8,
            h,
            |h, args, rows| {
                let names = texts(arg(args, 0)?)?;
                let missing_ok = match args.get(1) {
                    Some(a) => cast(a, &DataType::Boolean)?.as_boolean().iter().collect(),
                    None => vec![Some(false); rows],
                };
                let settings = h.settings.lock().expect("settings lock").clone();
                let mut out = Vec::with_capacity(rows);
                for i in 0..rows {
                    let Some(name) = &names[i] else {
                        out.push(None);
                        continue;
                    };
                    match settings.get(name) {
                        Ok((_, value)) => out.push(Some(value)),
                        Err(_) if missing_ok[i] == Some(true) => out.push(None),
                        Err(e) => return Err(sql_error(e)),
                    }
                }
                Ok(Arc::new(StringArray::from(out)) as ArrayRef)
            },
        ),
        // `set_config(name, value, false)`: SET, as a function (what drivers call on connect).
        function_with(
            Volatility::Volatile,
            "set_config",
            &[3],
            DataType::Utf8,
            h,
            |h, args, rows| {
                let names = texts(arg(args, 0)?)?;
                let values = texts(arg(args, 1)?)?;
                let local = cast(arg(args, 2)?, &DataType::Boolean)?;
                let local = local.as_boolean();
                let mut settings = h.settings.lock().expect("settings lock");
                let mut out = Vec::with_capacity(rows);
                for i in 0..rows {
                    let (Some(name), Some(value)) = (&names[i], &values[i]) else {
                        out.push(None);
                        continue;
                    };
                    if local.is_valid(i) && local.value(i) {
                        return Err(sql_error(SqlError::unsupported(
                            "set_config with is_local = true",
                        )));
                    }
                    settings.set(name, value).map_err(sql_error)?;
                    out.push(Some(settings.get(name).map_err(sql_error)?.1));
                }
                h.slot
                    .set_search_path(crate::search_path::SearchPath::from_settings(&settings));
                Ok(Arc::new(StringArray::from(out)) as ArrayRef)
            },
        ),
        // Where this session reads: its `strata.as_of` pin, else its snapshot (the LSN of the
        // last commit it sees), printed as PostgreSQL prints LSNs.
        function(
            "strata_current_lsn",
            &[0],
            DataType::Utf8,
            h,
            |h, _, rows| {
                let lsn = h
                    .slot
                    .as_of()
                    .or_else(|| h.slot.with_optional(|t| t.map(|t| t.snapshot())))
                    .unwrap_or_else(|| h.primary.txns.last_commit_lsn());
                Ok(Arc::new(StringArray::from(vec![lsn.to_string(); rows])) as ArrayRef)
            },
        ),
        function("pg_backend_pid", &[0], DataType::Int32, h, |h, _, rows| {
            let pid = h.pid.load(Ordering::Relaxed);
            Ok(Arc::new(Int32Array::from(vec![pid; rows])) as ArrayRef)
        }),
        oid_to_text("pg_get_userbyid", &[1], h, |snap, oid| {
            Some(match oid {
                super::snapshot::DATABASE_OWNER_ROLE => "pg_database_owner".to_string(),
                _ => snap.user.clone(),
            })
        }),
        oid_to_text("pg_get_viewdef", &[1, 2], h, |snap, oid| {
            snap.view_definition(oid)
        }),
        // Immutable, as a cast to text is: an index expression may use it.
        function_with(
            Volatility::Immutable,
            TEXT_NAME,
            &[1],
            DataType::Utf8,
            h,
            |_, args, _| {
                let value = arg(args, 0)?;
                // As PostgreSQL prints the value: `{1,2}`, `1e+20`, `2024-01-05 10:00:00.5`.
                if crate::pg_encode::output_function(value.data_type()).is_some() {
                    crate::pg_encode::text_column(value).map_err(SqlError::into_datafusion)
                } else {
                    Ok(cast(&value, &DataType::Utf8)?)
                }
            },
        ),
        // Strata has no triggers, so no oid names one.
        oid_to_text("pg_get_triggerdef", &[1, 2], h, |_, _| None),
        function(
            "pg_table_is_visible",
            &[1],
            DataType::Boolean,
            h,
            |h, args, _| {
                let oids = ints(arg(args, 0)?)?;
                let snap = h.snapshot();
                Ok(Arc::new(
                    oids.iter()
                        .map(|oid| oid.map(|oid| snap.relation_is_visible(oid)))
                        .collect::<BooleanArray>(),
                ) as ArrayRef)
            },
        ),
        constant_bool("pg_type_is_visible", &[1], true, h),
        // A compute is never a standby replaying WAL.
        constant_bool("pg_is_in_recovery", &[0], false, h),
        ScalarUDF::new_from_impl(PgTypeof::new(h)),
        constant_bool("pg_function_is_visible", &[1], true, h),
        constant_bool("has_table_privilege", &[2, 3], true, h),
        constant_bool("has_schema_privilege", &[2, 3], true, h),
        constant_bool("has_database_privilege", &[2, 3], true, h),
        constant_bool("has_column_privilege", &[3, 4], true, h),
        constant_bool("pg_relation_is_publishable", &[1], false, h),
        function("format_type", &[2], DataType::Utf8, h, |h, args, rows| {
            let oids = ints(arg(args, 0)?)?;
            let mods = ints(arg(args, 1)?)?;
            // Only an oid that is not built in (an enum type's) needs the catalog.
            let snap = std::cell::OnceCell::new();
            Ok(text_per_row(rows, |i| {
                oids[i].map(|oid| {
                    let typmod = mods[i].map(|m| m as i32);
                    format_type(oid, typmod)
                        .or_else(|| snap.get_or_init(|| h.snapshot()).type_name(oid, typmod))
                        .unwrap_or_else(|| "???".into())
                })
            }))
        }),
        // Default expressions are stored as their text, so the "expression tree" is the text.
        function(
            "pg_get_expr",
            &[2, 3],
            DataType::Utf8,
            h,
            |_, args, rows| {
                let exprs = texts(arg(args, 0)?)?;
                Ok(text_per_row(rows, |i| exprs[i].clone()))
            },
        ),
        function(
            "pg_get_indexdef",
            &[1, 3],
            DataType::Utf8,
            h,
            |h, args, rows| {
                let oids = ints(arg(args, 0)?)?;
                let columns = match args.get(1) {
                    Some(a) => ints(a)?,
                    None => vec![Some(0); rows],
                };
                let pretty: Vec<Option<bool>> = match args.get(2) {
                    Some(a) => cast(a, &DataType::Boolean)?.as_boolean().iter().collect(),
                    None => vec![None; rows],
                };
                let snap = h.snapshot();
                Ok(text_per_row(rows, |i| {
                    let column = columns[i]?;
                    oids[i]
                        .and_then(|oid| snap.index_definition(oid, column, pretty[i] == Some(true)))
                }))
            },
        ),
        function(
            "pg_get_constraintdef",
            &[1, 2],
            DataType::Utf8,
            h,
            |h, args, rows| {
                let oids = ints(arg(args, 0)?)?;
                let pretty: Vec<Option<bool>> = match args.get(1) {
                    Some(a) => cast(a, &DataType::Boolean)?.as_boolean().iter().collect(),
                    None => vec![Some(false); rows],
                };
                let snap = h.snapshot();
                Ok(text_per_row(rows, |i| {
                    oids[i]
                        .and_then(|oid| snap.constraint_definition(oid, pretty[i].unwrap_or(false)))
                }))
            },
        ),
        function(
            "pg_size_pretty",
            &[1],
            DataType::Utf8,
            h,
            |_, args, rows| {
                let sizes = ints(arg(args, 0)?)?;
                Ok(text_per_row(rows, |i| sizes[i].map(size_pretty)))
            },
        ),
        // Strata does not know how much storage a relation or database takes: its rows live in
        // layers shared by versions and branches. The sizes are unknown (NULL), so psql's `\dt+`,
        // `\di+` and `\l+` show an empty Size.
        unknown_size("pg_table_size", &[1], h),
        unknown_size("pg_relation_size", &[1, 2], h),
        unknown_size("pg_total_relation_size", &[1], h),
        unknown_size("pg_indexes_size", &[1], h),
        unknown_size("pg_database_size", &[1], h),
        function(
            "obj_description",
            &[1, 2],
            DataType::Utf8,
            h,
            |h, args, rows| {
                let oids = ints(arg(args, 0)?)?;
                let catalogs = match args.get(1) {
                    Some(names) => texts(names)?,
                    None => vec![None; rows],
                };
                let descriptions = h.snapshot().descriptions();
                Ok(text_per_row(rows, |i| {
                    let catalog = match &catalogs[i] {
                        Some(name) => Some(crate::comments::catalog_oid(name)?),
                        None => None,
                    };
                    description(&descriptions, oids[i]?, catalog, 0)
                }))
            },
        ),
        function(
            "col_description",
            &[2],
            DataType::Utf8,
            h,
            |h, args, rows| {
                let oids = ints(arg(args, 0)?)?;
                let columns = ints(arg(args, 1)?)?;
                let descriptions = h.snapshot().descriptions();
                Ok(text_per_row(rows, |i| {
                    description(
                        &descriptions,
                        oids[i]?,
                        Some(crate::comments::PG_CLASS),
                        columns[i]?,
                    )
                }))
            },
        ),
        constant_text("shobj_description", &[2], h, no_text),
        constant_text("pg_get_function_result", &[1], h, no_text),
        constant_text("pg_get_function_arguments", &[1], h, no_text),
        constant_text("pg_get_function_identity_arguments", &[1], h, no_text),
        constant_text("pg_get_statisticsobjdef_columns", &[1], h, no_text),
        function(
            "pg_encoding_to_char",
            &[1],
            DataType::Utf8,
            h,
            |_, args, rows| {
                let codes = ints(arg(args, 0)?)?;
                Ok(text_per_row(rows, |i| {
                    codes[i].map(|c| if c == 6 { "UTF8".into() } else { String::new() })
                }))
            },
        ),
        function("to_regtype", &[1], DataType::Int64, h, |h, args, _| {
            let names = texts(arg(args, 0)?)?;
            let snap = std::cell::OnceCell::new();
            Ok(Arc::new(
                names
                    .iter()
                    .map(|n| {
                        let n = n.as_deref()?;
                        type_oid_by_name(n)
                            .or_else(|| snap.get_or_init(|| h.snapshot()).type_oid(n))
                    })
                    .collect::<Int64Array>(),
            ) as ArrayRef)
        }),
        function("to_regclass", &[1], DataType::Int64, h, |h, args, _| {
            let names = texts(arg(args, 0)?)?;
            let snap = h.snapshot();
            Ok(Arc::new(
                names
                    .iter()
                    .map(|n| n.as_deref().and_then(|n| snap.relation_oid(n)))
                    .collect::<Int64Array>(),
            ) as ArrayRef)
        }),
        function("to_regnamespace", &[1], DataType::Int64, h, |h, args, _| {
            let names = texts(arg(args, 0)?)?;
            let snap = h.snapshot();
            Ok(Arc::new(
                names
                    .iter()
                    .map(|n| n.as_deref().and_then(|n| snap.namespace_by_name(n)))
                    .collect::<Int64Array>(),
            ) as ArrayRef)
        }),
        function("array_upper", &[2], DataType::Int32, h, |_, args, _| {
            let list = arg(args, 0)?;
            let dims = ints(arg(args, 1)?)?;
            let Some(list) = list.as_list_opt::<i32>() else {
                return Ok(Arc::new(Int32Array::from(vec![None; dims.len()])) as ArrayRef);
            };
            Ok(Arc::new(
                (0..list.len())
                    .map(|i| {
                        let len = if list.is_valid(i) {
                            list.value(i).len()
                        } else {
                            0
                        };
                        (dims[i] == Some(1) && len > 0).then_some(len as i32)
                    })
                    .collect::<Int32Array>(),
            ) as ArrayRef)
        }),
        // `x::regclass` of a name: the relation's oid, or 42P01 as in PostgreSQL.
        function(REGCLASS_OID, &[1], DataType::Int64, h, |h, args, _| {
            let names = texts(arg(args, 0)?)?;
            let snap = h.snapshot();
            let oids = names
                .iter()
                .map(|n| match n {
                    None => Ok(None),
                    Some(n) => match n.parse::<i64>() {
                        Ok(oid) => Ok(Some(oid)),
                        Err(_) => snap
                            .relation_oid(n)
                            .map(Some)
                            .ok_or_else(|| sql_error(SqlError::undefined_table(n))),
                    },
                })
                .collect::<DFResult<Int64Array>>()?;
            Ok(Arc::new(oids) as ArrayRef)
        }),
        // `oid::regclass` printed: the relation's name, or the number if there is none.
        oid_to_text(REGCLASS_NAME, &[1], h, |snap, oid| {
            Some(snap.relation_name(oid).unwrap_or_else(|| oid.to_string()))
        }),
        function(REGTYPE_OID, &[1], DataType::Int64, h, |h, args, _| {
            let names = texts(arg(args, 0)?)?;
            // Only a name that is not built in (an enum type's) needs the catalog.
            let snap = std::cell::OnceCell::new();
            let oids = names
                .iter()
                .map(|n| match n {
                    None => Ok(None),
                    Some(n) => type_oid_by_name(n)
                        .or_else(|| snap.get_or_init(|| h.snapshot()).type_oid(n))
                        .map(Some)
                        .ok_or_else(|| {
                            sql_error(SqlError::new(
                                sqlstate::UNDEFINED_OBJECT,
                                format!("type \"{n}\" does not exist"),
                            ))
                        }),
                })
                .collect::<DFResult<Int64Array>>()?;
            Ok(Arc::new(oids) as ArrayRef)
        }),
        oid_to_text(REGTYPE_NAME, &[1], h, |snap, oid| {
            Some(snap.type_name(oid, None).unwrap_or_else(|| oid.to_string()))
        }),
        oid_to_text(REGNAMESPACE_NAME, &[1], h, |snap, oid| {
            Some(
                snap.namespaces
                    .iter()
                    .find(|(o, _)| *o == oid)
                    .map_or_else(|| oid.to_string(), |(_, n)| n.to_string()),
            )
        }),
        function(
            "pg_my_temp_schema",
            &[0],
            DataType::Int64,
            h,
            |_, _, rows| Ok(Arc::new(Int64Array::from(vec![0; rows])) as ArrayRef),
        ),
        constant_bool("pg_is_other_temp_schema", &[1], false, h),
    ]
}

pub const REGCLASS_OID: &str = "strata_regclass_oid";
/// `x::text` of a non-literal: the value as plain text.
pub const TEXT_NAME: &str = "strata_text";
pub const REGCLASS_NAME: &str = "strata_regclass_name";
pub const REGTYPE_OID: &str = "strata_regtype_oid";
pub const REGTYPE_NAME: &str = "strata_regtype_name";
pub const REGNAMESPACE_NAME: &str = "strata_regnamespace_name";
