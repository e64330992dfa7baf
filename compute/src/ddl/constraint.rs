//! ALTER TABLE … ADD CONSTRAINT … CHECK / FOREIGN KEY on a table that may have rows: the new
//! definition, named as PostgreSQL names the constraint. The session checks the rows the
//! transaction sees against it before writing it (`session/alter.rs`), with the table locked
//! against writers (`lock_for_rebuild`).

use datafusion::sql::sqlparser::ast::{CheckConstraint, ForeignKeyConstraint};

use super::resolve_foreign_key;
use crate::catalog::{CatalogView, TableDef};
use crate::checks::CheckDef;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::foreign_keys::ForeignKeyDef;
use crate::names::normalize;

/// `def` with the check added; the check, named.
pub fn with_check(def: &TableDef, check: &CheckConstraint) -> SqlResult<(TableDef, CheckDef)> {
    let name = match &check.name {
        Some(name) => {
            let name = normalize(name);
            refuse_taken(def, &name)?;
            name
        }
        None => {
            let columns: Vec<String> = def.columns.iter().map(|c| c.name.clone()).collect();
            crate::checks::default_check_name(&def.name, &check.expr, &columns, &def.checks)
        }
    };
    let check = CheckDef {
        name,
        expr: check.expr.to_string(),
        not_valid: false,
    };
    let mut changed = def.clone();
    changed.checks.push(check.clone());
    Ok((changed, check))
}

/// `def` with the foreign key added; the foreign key, resolved against `view`.
pub fn with_foreign_key(
    view: &CatalogView,
    def: &TableDef,
    fk: &ForeignKeyConstraint,
) -> SqlResult<(TableDef, ForeignKeyDef)> {
    if let Some(name) = &fk.name {
        refuse_taken(def, &normalize(name))?;
    }
    let resolved = resolve_foreign_key(view, def, fk, None)?;
    let mut changed = def.clone();
    changed.foreign_keys.push(resolved.clone());
    Ok((changed, resolved))
}

/// `RENAME CONSTRAINT old TO new` of a CHECK or FOREIGN KEY constraint: `def` with it renamed.
/// `None` when `old` is a UNIQUE constraint, whose index has its name and is renamed with it
/// (`index::rename_index`).
pub fn renamed(def: &TableDef, old: &str, new: &str) -> SqlResult<Option<TableDef>> {
    if !def.primary_key.is_empty() && def.primary_key_name() == old {
        return Err(SqlError::unsupported(
            "renaming a primary key constraint (its name is always <table>_pkey)",
        ));
    }
    let exists = def.checks.iter().any(|c| c.name == old)
        || def.foreign_keys.iter().any(|f| f.name == old)
        || def.indexes.iter().any(|i| i.constraint && i.name == old);
    if !exists {
        return Err(SqlError::new(
            sqlstate::UNDEFINED_OBJECT,
            format!(
                "constraint \"{old}\" for table \"{}\" does not exist",
                def.name
            ),
        ));
    }
    refuse_taken(def, new)?;
    if def.indexes.iter().any(|i| i.constraint && i.name == old) {
        return Ok(None);
    }
    let mut changed = def.clone();
    for check in changed.checks.iter_mut().filter(|c| c.name == old) {
        check.name = new.to_string();
    }
    for fk in changed.foreign_keys.iter_mut().filter(|f| f.name == old) {
        fk.name = new.to_string();
    }
    Ok(Some(changed))
}

/// 42710 if the table has a constraint named `name` already.
fn refuse_taken(def: &TableDef, name: &str) -> SqlResult<()> {
    let taken = def.checks.iter().any(|c| c.name == name)
        || def.foreign_keys.iter().any(|f| f.name == name)
        || def.indexes.iter().any(|i| i.constraint && i.name == name)
        || (!def.primary_key.is_empty() && def.primary_key_name() == name);
    if taken {
        return Err(SqlError::new(
            sqlstate::DUPLICATE_OBJECT,
            format!(
                "constraint \"{name}\" for relation \"{}\" already exists",
                def.name
            ),
        ));
    }
    Ok(())
}
