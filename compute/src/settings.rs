//! Session settings: what `SET`, `SHOW` and `RESET` work on.
//!
//! Names are case-insensitive (stored lower case) and shown with PostgreSQL's canonical
//! spelling. Settings Strata cannot honour yet (a time zone other than UTC, a non-ISO date
//! style) are refused rather than silently ignored, so output never claims a format it is not in.

use std::collections::BTreeMap;

use crate::error::{sqlstate, SqlError, SqlResult};

/// The PostgreSQL version Strata speaks: clients adapt their catalog queries to it.
pub const SERVER_VERSION: &str = "15.0";
pub const SERVER_VERSION_NUM: &str = "150000";

/// (canonical name, default, reported to the client in ParameterStatus, read-only)
const PARAMETERS: &[(&str, &str, bool, bool)] = &[
    ("server_version", SERVER_VERSION, true, true),
    ("server_version_num", SERVER_VERSION_NUM, false, true),
    ("server_encoding", "UTF8", true, true),
    ("client_encoding", "UTF8", true, false),
    ("DateStyle", "ISO, MDY", true, false),
    ("TimeZone", "UTC", true, false),
    ("IntervalStyle", "postgres", true, false),
    ("integer_datetimes", "on", true, true),
    ("standard_conforming_strings", "on", true, false),
    ("is_superuser", "on", true, true),
    ("application_name", "", true, false),
    ("search_path", "\"$user\", public", false, false),
    ("extra_float_digits", "1", false, false),
    ("client_min_messages", "notice", false, false),
    ("statement_timeout", "0", false, false),
    ("lock_timeout", "0", false, false),
    ("idle_in_transaction_session_timeout", "0", false, false),
    (
        "default_transaction_isolation",
        "read committed",
        false,
        false,
    ),
    ("transaction_isolation", "read committed", false, true),
    ("default_transaction_read_only", "off", true, false),
    ("in_hot_standby", "off", true, true),
    ("max_identifier_length", "63", false, true),
    ("bytea_output", "hex", false, false),
    ("timezone_abbreviations", "Default", false, false),
    ("session_authorization", "postgres", true, true),
    // Empty: the present. Otherwise a timestamp or LSN the session's reads are pinned at
    // (resolved by the session when set; see `session/time_travel.rs`).
    ("strata.as_of", "", false, false),
];

#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            values: PARAMETERS
                .iter()
                .map(|(name, default, ..)| (name.to_lowercase(), default.to_string()))
                .collect(),
        }
    }
}

fn parameter(name: &str) -> Option<&'static (&'static str, &'static str, bool, bool)> {
    PARAMETERS
        .iter()
        .find(|(n, ..)| n.eq_ignore_ascii_case(name))
}

impl Settings {
    /// Settings a new connection starts with: defaults, then what the client sent at startup.
    pub fn for_startup<'a>(
        user: &str,
        params: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> SqlResult<Self> {
        let mut s = Settings::default();
        s.values
            .insert("session_authorization".into(), user.to_string());
        for (name, value) in params {
            if name == "options" {
                for (name, value) in command_line_options(value)? {
                    s.set(&name, &value)?;
                }
            } else if parameter(name).is_some_and(|p| !p.3) || name.contains('.') {
                s.set(name, value)?;
            }
        }
        Ok(s)
    }

    /// `(canonical name, value)` of every setting, for `pg_settings`.
    pub fn all(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(key, value)| {
                let name = parameter(key).map_or(key.as_str(), |p| p.0);
                (name.to_string(), value.clone())
            })
            .collect()
    }

    /// `(canonical name, value)` of every parameter reported to clients at startup.
    pub fn reported(&self) -> Vec<(String, String)> {
        PARAMETERS
            .iter()
            .filter(|p| p.2)
            .map(|(name, ..)| (name.to_string(), self.values[&name.to_lowercase()].clone()))
            .collect()
    }

    /// The value and canonical name of a setting.
    pub fn get(&self, name: &str) -> SqlResult<(String, String)> {
        let key = name.to_lowercase();
        match (parameter(name), self.values.get(&key)) {
            (Some(p), Some(v)) => Ok((p.0.to_string(), v.clone())),
            (None, Some(v)) => Ok((key, v.clone())),
            _ => Err(unrecognized(name)),
        }
    }

    /// Applies `SET name = value`; returns the canonical name when the client must be told of
    /// the new value (a ParameterStatus message).
    pub fn set(&mut self, name: &str, value: &str) -> SqlResult<Option<String>> {
        let key = name.to_lowercase();
        let Some(&(canonical, _, reported, read_only)) = parameter(name) else {
            if key.contains('.') {
                self.values.insert(key, value.to_string());
                return Ok(None);
            }
            return Err(unrecognized(name));
        };
        if read_only {
            return Err(SqlError::new(
                sqlstate::CANT_CHANGE_RUNTIME_PARAM,
                format!("parameter \"{key}\" cannot be changed"),
            ));
        }
        let value = validate(&key, value)?;
        self.values.insert(key, value);
        Ok(reported.then(|| canonical.to_string()))
    }

    pub fn reset(&mut self, name: &str) -> SqlResult<Option<String>> {
        match parameter(name) {
            Some(&(canonical, default, reported, read_only)) if !read_only => {
                self.values.insert(name.to_lowercase(), default.to_string());
                Ok(reported.then(|| canonical.to_string()))
            }
            Some(_) => Err(SqlError::new(
                sqlstate::CANT_CHANGE_RUNTIME_PARAM,
                format!("parameter \"{}\" cannot be changed", name.to_lowercase()),
            )),
            None if name.contains('.') => {
                self.values.remove(&name.to_lowercase());
                Ok(None)
            }
            None => Err(unrecognized(name)),
        }
    }

    /// `statement_timeout`, when there is one (0 means none).
    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        self.timeout("statement_timeout")
    }

    /// `lock_timeout`, when there is one (0 means none).
    pub fn lock_timeout(&self) -> Option<std::time::Duration> {
        self.timeout("lock_timeout")
    }

    fn timeout(&self, key: &str) -> Option<std::time::Duration> {
        milliseconds(self.values.get(key)?)
            .filter(|&ms| ms > 0)
            .map(std::time::Duration::from_millis)
    }

    pub fn reset_all(&mut self) {
        let user = self.values["session_authorization"].clone();
        *self = Settings::default();
        self.values.insert("session_authorization".into(), user);
    }
}

fn unrecognized(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

fn validate(key: &str, value: &str) -> SqlResult<String> {
    let unsupported = |what: &str| {
        SqlError::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("{what} is not supported yet"),
        )
        .with_hint("Strata prints dates in ISO style and times in UTC.")
    };
    match key {
        "timezone" => match value.to_ascii_uppercase().as_str() {
            "UTC" | "ETC/UTC" | "GMT" | "ETC/GMT" | "Z" | "ZULU" | "UCT" | "UTC0" | "+00"
            | "+00:00" | "00:00" => Ok(value.to_string()),
            _ => Err(unsupported(&format!("time zone \"{value}\""))),
        },
        "datestyle" => {
            if value
                .to_ascii_uppercase()
                .split(',')
                .any(|p| p.trim() == "ISO")
            {
                Ok("ISO, MDY".to_string())
            } else {
                Err(unsupported(&format!("DateStyle \"{value}\"")))
            }
        }
        // Quoted as in a configuration file (asyncpg sends 'utf-8' in its startup packet).
        "client_encoding" => match value
            .trim_matches('\'')
            .to_ascii_uppercase()
            .replace(['-', '_'], "")
            .as_str()
        {
            "UTF8" | "UNICODE" => Ok("UTF8".to_string()),
            _ => Err(unsupported(&format!("client encoding \"{value}\""))),
        },
        "intervalstyle" if !value.eq_ignore_ascii_case("postgres") => {
            Err(unsupported(&format!("IntervalStyle \"{value}\"")))
        }
        "standard_conforming_strings"
            if !matches!(value.to_ascii_lowercase().as_str(), "on" | "true" | "1") =>
        {
            Err(unsupported("standard_conforming_strings = off"))
        }
        "extra_float_digits" => match value.parse::<i32>() {
            Ok(v) if (-15..=3).contains(&v) => Ok(value.to_string()),
            _ => Err(SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"extra_float_digits\": \"{value}\""),
            )),
        },
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
            milliseconds(value)
                .map(milliseconds_text)
                .ok_or_else(|| {
                    SqlError::new(
                        sqlstate::INVALID_PARAMETER_VALUE,
                        format!("invalid value for parameter \"{key}\": \"{value}\""),
                    )
                    .with_hint(
                        "Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\".",
                    )
                })
        }
        _ => Ok(value.to_string()),
    }
}

/// Units of a time setting whose base unit is the millisecond, largest first.
const MILLISECOND_UNITS: &[(&str, f64)] = &[
    ("d", 86_400_000.0),
    ("h", 3_600_000.0),
    ("min", 60_000.0),
    ("s", 1_000.0),
    ("ms", 1.0),
    ("us", 0.001),
];

/// A time setting in milliseconds, as PostgreSQL reads one: a number, in milliseconds unless a
/// unit follows (`200`, `5s`, `1.5 min`), rounded to a whole millisecond.
fn milliseconds(value: &str) -> Option<u64> {
    let value = value.trim().trim_matches('\'').trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" => 1.0,
        unit => MILLISECOND_UNITS.iter().find(|(u, _)| *u == unit)?.1,
    };
    let ms = (number * scale).round();
    (ms >= 0.0 && ms <= f64::from(i32::MAX)).then_some(ms as u64)
}

/// A time setting as `SHOW` prints it: in the largest unit that divides it (`5s`, `200ms`).
fn milliseconds_text(ms: u64) -> String {
    if ms == 0 {
        return "0".into();
    }
    MILLISECOND_UNITS
        .iter()
        .filter(|(_, scale)| *scale >= 1.0)
        .find(|(_, scale)| ms.is_multiple_of(*scale as u64))
        .map(|(unit, scale)| format!("{}{unit}", ms / (*scale as u64)))
        .unwrap_or_else(|| format!("{ms}ms"))
}

/// The settings of the `options` startup parameter (libpq's `PGOPTIONS`): command-line switches
/// `-c name=value` (or `-cname=value`, `--name=value`), separated by spaces; a backslash keeps
/// the next character, so `\ ` is a space inside a value.
/// How a client names the endpoint it wants in `options` (`endpoint=NAME`, `-c endpoint=NAME`).
const ENDPOINT_SWITCH: &str = "endpoint=";

fn command_line_options(options: &str) -> SqlResult<Vec<(String, String)>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut settings = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let assignment = if word == "-c" {
            words.next()
        } else if let Some(rest) = word.strip_prefix("--") {
            Some(rest.to_string())
        } else {
            word.strip_prefix("-c").map(str::to_string)
        };
        let invalid = || {
            SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!("invalid command-line argument for server process: {word}"),
            )
        };
        let assignment = match assignment {
            Some(a) => a,
            // The proxy's routing switch, which reaches the compute when the proxy hands it
            // the client's connection: not a setting.
            None if word.starts_with(ENDPOINT_SWITCH) => continue,
            None => return Err(invalid()),
        };
        if assignment.starts_with(ENDPOINT_SWITCH) {
            continue;
        }
        let (name, value) = assignment.split_once('=').ok_or_else(invalid)?;
        settings.push((name.replace('-', "_"), value.to_string()));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_units_and_show_the_largest() {
        let mut s = Settings::default();
        assert_eq!(s.statement_timeout(), None);
        for (given, shown, ms) in [
            ("200", "200ms", 200),
            ("5s", "5s", 5_000),
            ("'1.5 min'", "90s", 90_000),
            ("60000", "1min", 60_000),
            ("2h", "2h", 7_200_000),
            ("1500us", "2ms", 2),
        ] {
            s.set("statement_timeout", given).unwrap();
            assert_eq!(s.get("statement_timeout").unwrap().1, shown, "{given}");
            assert_eq!(
                s.statement_timeout(),
                Some(std::time::Duration::from_millis(ms))
            );
        }
        s.set("statement_timeout", "0").unwrap();
        assert_eq!(s.statement_timeout(), None);
        for bad in ["abc", "5 parsecs", "-1", ""] {
            let err = s.set("lock_timeout", bad).unwrap_err();
            assert_eq!(err.code, sqlstate::INVALID_PARAMETER_VALUE, "{bad}");
        }
    }

    #[test]
    fn set_show_reset() {
        let mut s = Settings::default();
        assert_eq!(
            s.get("timezone").unwrap(),
            ("TimeZone".into(), "UTC".into())
        );
        assert_eq!(
            s.set("TimeZone", "Etc/UTC").unwrap(),
            Some("TimeZone".into())
        );
        assert_eq!(
            s.set("TimeZone", "Europe/Paris").unwrap_err().code,
            sqlstate::FEATURE_NOT_SUPPORTED
        );
        assert_eq!(
            s.set("server_version", "1").unwrap_err().code,
            sqlstate::CANT_CHANGE_RUNTIME_PARAM
        );
        assert_eq!(
            s.set("no_such_thing", "1").unwrap_err().code,
            sqlstate::UNDEFINED_OBJECT
        );
        assert_eq!(s.set("myapp.flag", "x").unwrap(), None);
        assert_eq!(s.get("myapp.flag").unwrap().1, "x");
        s.set("application_name", "psql").unwrap();
        s.reset("application_name").unwrap();
        assert_eq!(s.get("application_name").unwrap().1, "");
    }

    #[test]
    fn reads_command_line_options_as_postgres_does() {
        let options = command_line_options(
            "-c search_path=app,public -cstatement_timeout=5 --work-mem=4MB -c x.y=a\\ b",
        )
        .unwrap();
        assert_eq!(
            options,
            [
                ("search_path".to_string(), "app,public".to_string()),
                ("statement_timeout".to_string(), "5".to_string()),
                ("work_mem".to_string(), "4MB".to_string()),
                ("x.y".to_string(), "a b".to_string()),
            ]
        );
        assert!(command_line_options("-c").is_err());
        assert!(command_line_options("search_path=x").is_err());
        // The proxy's endpoint switch is not a setting.
        assert_eq!(
            command_line_options("endpoint=dev -c endpoint=dev --search-path=a").unwrap(),
            [("search_path".to_string(), "a".to_string())]
        );
    }
}
