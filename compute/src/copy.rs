//! COPY's text and CSV formats: parsing what `COPY … FROM STDIN` receives (as it arrives, in
//! chunks that split lines anywhere) and writing what `COPY … TO STDOUT` sends, as PostgreSQL
//! does. The binary format is in `copy_binary.rs`; [`CopyInput`] reads either.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryBuilder, BooleanBuilder, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::DataType;
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use crate::bytea::decode_bytea;
use crate::catalog::{ColumnDef, TableDef};
use crate::copy_binary::{binary_rows_to_batch, BinaryCopyParser, BinaryRow};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::types::SqlType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// The options of a COPY statement that Strata honours.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: u8,
    pub null: String,
    pub header: bool,
    pub quote: u8,
    pub escape: u8,
}

impl CopyOptions {
    pub fn from_statement(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> SqlResult<Self> {
        let mut format = CopyFormat::Text;
        let (mut delimiter, mut null, mut header, mut quote, mut escape) =
            (None, None, false, b'"', None);
        let ascii = |c: char, what: &str| -> SqlResult<u8> {
            u8::try_from(c).map_err(|_| SqlError::unsupported(format!("a non-ASCII COPY {what}")))
        };
        for option in options {
            match option {
                CopyOption::Format(f) => {
                    format = match f.value.to_ascii_lowercase().as_str() {
                        "text" => CopyFormat::Text,
                        "csv" => CopyFormat::Csv,
                        "binary" => CopyFormat::Binary,
                        other => {
                            return Err(SqlError::new(
                                sqlstate::INVALID_PARAMETER_VALUE,
                                format!("COPY format \"{other}\" not recognized"),
                            ))
                        }
                    }
                }
                CopyOption::Delimiter(c) => delimiter = Some(ascii(*c, "delimiter")?),
                CopyOption::Null(n) => null = Some(n.clone()),
                CopyOption::Header(h) => header = *h,
                CopyOption::Quote(c) => quote = ascii(*c, "quote")?,
                CopyOption::Escape(c) => escape = Some(ascii(*c, "escape")?),
                // FREEZE only matters to PostgreSQL's visibility map; ENCODING must be UTF8.
                CopyOption::Freeze(_) => {}
                CopyOption::Encoding(e)
                    if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => return Err(SqlError::unsupported(format!("COPY option {other}"))),
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Binary => format = CopyFormat::Binary,
                CopyLegacyOption::Delimiter(c) => delimiter = Some(ascii(*c, "delimiter")?),
                CopyLegacyOption::Null(n) => null = Some(n.clone()),
                CopyLegacyOption::Csv(csv) => {
                    format = CopyFormat::Csv;
                    for o in csv {
                        match o {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(c) => quote = ascii(*c, "quote")?,
                            CopyLegacyCsvOption::Escape(c) => escape = Some(ascii(*c, "escape")?),
                            other => {
                                return Err(SqlError::unsupported(format!("COPY option {other}")))
                            }
                        }
                    }
                }
                other => return Err(SqlError::unsupported(format!("COPY option {other}"))),
            }
        }
        if format == CopyFormat::Binary {
            // PostgreSQL's codes: a syntax error for the first two, unsupported for HEADER.
            let text_only = [
                (delimiter.is_some(), "DELIMITER", sqlstate::SYNTAX_ERROR),
                (null.is_some(), "NULL", sqlstate::SYNTAX_ERROR),
                (header, "HEADER", sqlstate::FEATURE_NOT_SUPPORTED),
            ];
            if let Some((_, option, code)) = text_only.iter().find(|(given, ..)| *given) {
                return Err(SqlError::new(
                    code,
                    format!("cannot specify {option} in BINARY mode"),
                ));
            }
        }
        let csv = format == CopyFormat::Csv;
        Ok(CopyOptions {
            format,
            delimiter: delimiter.unwrap_or(if csv { b',' } else { b'\t' }),
            null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
            header,
            quote,
            escape: escape.unwrap_or(quote),
        })
    }
}

/// One row of COPY input: a text value or NULL per column.
pub type CopyRow = Vec<Option<String>>;

/// What `COPY … FROM STDIN` has received and not yet inserted, in its format.
pub enum CopyInput {
    Text {
        parser: CopyParser,
        rows: Vec<CopyRow>,
    },
    Binary {
        parser: BinaryCopyParser,
        rows: Vec<BinaryRow>,
    },
}

impl CopyInput {
    pub fn new(options: CopyOptions) -> Self {
        match options.format {
            CopyFormat::Binary => CopyInput::Binary {
                parser: BinaryCopyParser::default(),
                rows: Vec::new(),
            },
            _ => CopyInput::Text {
                parser: CopyParser::new(options),
                rows: Vec::new(),
            },
        }
    }

    /// Takes a chunk of data; its complete rows wait to be taken.
    pub fn feed(&mut self, data: &[u8]) -> SqlResult<()> {
        match self {
            CopyInput::Text { parser, rows } => rows.extend(parser.feed(data)?),
            CopyInput::Binary { parser, rows } => rows.extend(parser.feed(data)?),
        }
        Ok(())
    }

    /// The end of the data.
    pub fn finish(&mut self) -> SqlResult<()> {
        match self {
            CopyInput::Text { parser, rows } => rows.extend(parser.finish()?),
            CopyInput::Binary { parser, .. } => parser.finish()?,
        }
        Ok(())
    }

    /// Rows waiting to be inserted.
    pub fn rows(&self) -> usize {
        match self {
            CopyInput::Text { rows, .. } => rows.len(),
            CopyInput::Binary { rows, .. } => rows.len(),
        }
    }

    /// The input line (binary: tuple) being read, for error messages.
    pub fn line(&self) -> u64 {
        match self {
            CopyInput::Text { parser, .. } => parser.line(),
            CopyInput::Binary { parser, .. } => parser.line(),
        }
    }

    /// The waiting rows, for `columns` (positions in `def`), as a batch of the table's columns.
    pub fn take_batch(&mut self, def: &TableDef, columns: &[usize]) -> SqlResult<RecordBatch> {
        match self {
            CopyInput::Text { rows, .. } => rows_to_batch(def, columns, &std::mem::take(rows)),
            CopyInput::Binary { rows, .. } => {
                binary_rows_to_batch(def, columns, &std::mem::take(rows))
            }
        }
    }
}

/// Splits COPY input into rows as it arrives.
pub struct CopyParser {
    options: CopyOptions,
    pending: Vec<u8>,
    header_done: bool,
    /// The text format's end marker (`\.`) was seen: the rest is ignored.
    ended: bool,
    line: u64,
}

impl CopyParser {
    pub fn new(options: CopyOptions) -> Self {
        Self {
            header_done: !options.header,
            options,
            pending: Vec::new(),
            ended: false,
            line: 0,
        }
    }

    /// The input line being parsed, for error messages.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Rows completed by `data`.
    pub fn feed(&mut self, data: &[u8]) -> SqlResult<Vec<CopyRow>> {
        self.pending.extend_from_slice(data);
        let mut rows = Vec::new();
        let mut start = 0;
        while let Some(end) = self.record_end(start) {
            let record = self.pending[start..end].to_vec();
            start = end + 1;
            if let Some(row) = self.record(&record)? {
                rows.push(row);
            }
        }
        self.pending.drain(..start);
        Ok(rows)
    }

    /// The last row, if the input did not end with a newline.
    pub fn finish(&mut self) -> SqlResult<Option<CopyRow>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let record = std::mem::take(&mut self.pending);
        self.record(&record)
    }

    /// Where the record starting at `start` ends (its newline), if it is complete.
    fn record_end(&self, start: usize) -> Option<usize> {
        let bytes = &self.pending[start..];
        match self.options.format {
            // (Binary input is read by `BinaryCopyParser`, never here.)
            CopyFormat::Text | CopyFormat::Binary => {
                bytes.iter().position(|&b| b == b'\n').map(|p| start + p)
            }
            CopyFormat::Csv => {
                let mut in_quotes = false;
                let mut i = 0;
                while i < bytes.len() {
                    let b = bytes[i];
                    if in_quotes {
                        if b == self.options.escape
                            && self.options.escape != self.options.quote
                            && bytes.get(i + 1) == Some(&self.options.quote)
                        {
                            i += 1;
                        } else if b == self.options.quote {
                            in_quotes = false;
                        }
                    } else if b == self.options.quote {
                        in_quotes = true;
                    } else if b == b'\n' {
                        return Some(start + i);
                    }
                    i += 1;
                }
                None
            }
        }
    }

    fn record(&mut self, record: &[u8]) -> SqlResult<Option<CopyRow>> {
        self.line += 1;
        let record = record.strip_suffix(b"\r").unwrap_or(record);
        if self.ended {
            return Ok(None);
        }
        if !self.header_done {
            self.header_done = true;
            return Ok(None);
        }
        if record == b"\\." {
            self.ended = true;
            return Ok(None);
        }
        let text = std::str::from_utf8(record).map_err(|_| {
            SqlError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                "invalid byte sequence for encoding \"UTF8\"",
            )
        })?;
        Ok(Some(match self.options.format {
            CopyFormat::Text | CopyFormat::Binary => self.text_fields(text)?,
            CopyFormat::Csv => self.csv_fields(text),
        }))
    }

    fn text_fields(&self, line: &str) -> SqlResult<CopyRow> {
        let delimiter = self.options.delimiter as char;
        let mut fields = Vec::new();
        let mut raw = String::new();
        let mut chars = line.chars().peekable();
        // Split on unescaped delimiters, keeping escapes for the field decoder.
        while let Some(c) = chars.next() {
            if c == '\\' {
                raw.push(c);
                if let Some(next) = chars.next() {
                    raw.push(next);
                }
            } else if c == delimiter {
                fields.push(std::mem::take(&mut raw));
            } else {
                raw.push(c);
            }
        }
        fields.push(raw);
        fields
            .into_iter()
            .map(|f| {
                if f == self.options.null {
                    Ok(None)
                } else {
                    unescape_text(&f).map(Some)
                }
            })
            .collect()
    }

    fn csv_fields(&self, line: &str) -> CopyRow {
        let (delimiter, quote, escape) = (
            self.options.delimiter as char,
            self.options.quote as char,
            self.options.escape as char,
        );
        let mut fields = Vec::new();
        let mut value = String::new();
        let mut quoted = false;
        let mut in_quotes = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_quotes {
                if c == escape && chars.peek() == Some(&quote) {
                    value.push(quote);
                    chars.next();
                } else if c == quote {
                    in_quotes = false;
                } else {
                    value.push(c);
                }
            } else if c == quote {
                in_quotes = true;
                quoted = true;
            } else if c == delimiter {
                fields.push(csv_value(
                    std::mem::take(&mut value),
                    quoted,
                    &self.options.null,
                ));
                quoted = false;
            } else {
                value.push(c);
            }
        }
        fields.push(csv_value(value, quoted, &self.options.null));
        fields
    }
}

/// In CSV, only an unquoted value equal to the NULL string is NULL.
fn csv_value(value: String, quoted: bool, null: &str) -> Option<String> {
    if !quoted && value == null {
        None
    } else {
        Some(value)
    }
}

/// The text format's backslash escapes.
fn unescape_text(field: &str) -> SqlResult<String> {
    if !field.contains('\\') {
        return Ok(field.to_string());
    }
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let c = bytes[i + 1];
        i += 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match bytes.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' if bytes.get(i).is_some_and(|d| d.is_ascii_hexdigit()) => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match bytes.get(i) {
                        Some(d) if d.is_ascii_hexdigit() => {
                            v = v * 16 + (*d as char).to_digit(16).expect("hex digit");
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            "invalid byte sequence for encoding \"UTF8\"",
        )
    })
}

/// Rows of text fields for `columns` (positions in the table) as a batch of the table's columns;
/// columns not listed are NULL.
fn rows_to_batch(def: &TableDef, columns: &[usize], rows: &[CopyRow]) -> SqlResult<RecordBatch> {
    for row in rows {
        if row.len() != columns.len() {
            return Err(SqlError::new(
                sqlstate::BAD_COPY_FILE_FORMAT,
                if row.len() < columns.len() {
                    "missing data for a column"
                } else {
                    "extra data after last expected column"
                },
            ));
        }
    }
    batch_of_columns(def, columns, rows.len(), |i, column| {
        let values: Vec<Option<&str>> = rows.iter().map(|r| r[i].as_deref()).collect();
        text_to_array(column.ty, &values)
    })
}

/// A batch of `rows` rows of the table's columns: the `i`th of `columns` (positions in the
/// table) made by `column(i, its definition)`, the columns not listed NULL. A column's error
/// names the column.
pub(crate) fn batch_of_columns(
    def: &TableDef,
    columns: &[usize],
    rows: usize,
    mut column: impl FnMut(usize, &ColumnDef) -> SqlResult<ArrayRef>,
) -> SqlResult<RecordBatch> {
    let schema = def.arrow_schema();
    let mut arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| datafusion::arrow::array::new_null_array(f.data_type(), rows))
        .collect();
    for (i, &position) in columns.iter().enumerate() {
        let definition = &def.columns[position];
        arrays[position] = column(i, definition).map_err(|e| {
            SqlError::new(
                e.code,
                format!("{} (column {})", e.message, definition.name),
            )
        })?;
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// Text values in PostgreSQL's input syntax, as an array of the column type.
fn text_to_array(ty: SqlType, values: &[Option<&str>]) -> SqlResult<ArrayRef> {
    match ty {
        SqlType::Bytea => {
            let mut b = BinaryBuilder::new();
            for v in values {
                match v {
                    Some(s) => b.append_value(decode_bytea(s)?),
                    None => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        SqlType::Bool => {
            let mut b = BooleanBuilder::new();
            for v in values {
                match v {
                    Some(s) => b.append_value(parse_bool(s)?),
                    None => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        _ => {
            let strings: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
            let target = ty.arrow_type();
            if target == DataType::Utf8 {
                return Ok(strings);
            }
            if crate::text_input::needs_parser(&target) {
                return crate::text_input::cast_array(&strings, &target);
            }
            let options = CastOptions {
                safe: false,
                ..Default::default()
            };
            cast_with_options(&strings, &target, &options).map_err(|e| {
                SqlError::new(
                    sqlstate::INVALID_TEXT_REPRESENTATION,
                    format!("invalid input syntax for type {}: {e}", ty.display_name()),
                )
            })
        }
    }
}

/// PostgreSQL's boolean input: any unique prefix of true/false/yes/no/on/off, or 1/0.
pub fn parse_bool(s: &str) -> SqlResult<bool> {
    let v = s.trim().to_ascii_lowercase();
    let matches = |word: &str| !v.is_empty() && word.starts_with(&v);
    if v == "1" || matches("true") || matches("yes") || (v.len() >= 2 && matches("on")) {
        Ok(true)
    } else if v == "0" || matches("false") || matches("no") || (v.len() >= 2 && matches("off")) {
        Ok(false)
    } else {
        Err(SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type boolean: \"{s}\""),
        ))
    }
}

/// One row of COPY output, with its newline.
pub fn format_row(values: &[Option<String>], options: &CopyOptions) -> String {
    let delimiter = options.delimiter as char;
    let mut line = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            line.push(delimiter);
        }
        match (v, options.format) {
            (None, _) => line.push_str(&options.null),
            (Some(s), CopyFormat::Text | CopyFormat::Binary) => {
                for c in s.chars() {
                    match c {
                        '\\' => line.push_str("\\\\"),
                        '\n' => line.push_str("\\n"),
                        '\r' => line.push_str("\\r"),
                        '\t' => line.push_str("\\t"),
                        c if c == delimiter => {
                            line.push('\\');
                            line.push(c);
                        }
                        c => line.push(c),
                    }
                }
            }
            (Some(s), CopyFormat::Csv) => {
                let (quote, escape) = (options.quote as char, options.escape as char);
                let needs_quotes = s.is_empty() && options.null.is_empty()
                    || s.contains([delimiter, quote, '\n', '\r'])
                    || *s == options.null;
                if needs_quotes {
                    line.push(quote);
                    for c in s.chars() {
                        if c == quote || c == escape {
                            line.push(escape);
                        }
                        line.push(c);
                    }
                    line.push(quote);
                } else {
                    line.push_str(s);
                }
            }
        }
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(format: CopyFormat) -> CopyOptions {
        let csv = format == CopyFormat::Csv;
        CopyOptions {
            format,
            delimiter: if csv { b',' } else { b'\t' },
            null: if csv { String::new() } else { "\\N".into() },
            header: false,
            quote: b'"',
            escape: b'"',
        }
    }

    #[test]
    fn text_rows_split_anywhere_and_unescape() {
        let mut p = CopyParser::new(options(CopyFormat::Text));
        let mut rows = p.feed(b"1\ta\\tb\t\\N\n2\tx").unwrap();
        assert_eq!(
            rows,
            vec![vec![Some("1".into()), Some("a\tb".into()), None]]
        );
        rows = p.feed(b"y\\\\z\t\\101\n\\.\nignored\n").unwrap();
        assert_eq!(
            rows,
            vec![vec![
                Some("2".into()),
                Some("xy\\z".into()),
                Some("A".into())
            ]]
        );
        assert_eq!(p.finish().unwrap(), None);
    }

    #[test]
    fn csv_rows_keep_quoted_newlines_and_empty_strings() {
        let mut o = options(CopyFormat::Csv);
        o.header = true;
        let mut p = CopyParser::new(o);
        let rows = p
            .feed(b"id,note\n1,\"a,\"\"b\"\"\nc\"\n2,\n3,\"\"\n")
            .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("a,\"b\"\nc".into())],
                vec![Some("2".into()), None],
                vec![Some("3".into()), Some(String::new())],
            ]
        );
    }

    #[test]
    fn output_round_trips() {
        let o = options(CopyFormat::Text);
        let line = format_row(&[Some("a\tb\\".into()), None], &o);
        assert_eq!(line, "a\\tb\\\\\t\\N\n");
        let mut p = CopyParser::new(o);
        assert_eq!(
            p.feed(line.as_bytes()).unwrap(),
            vec![vec![Some("a\tb\\".into()), None]]
        );
        let c = options(CopyFormat::Csv);
        assert_eq!(
            format_row(&[Some("x,y".into()), Some(String::new()), None], &c),
            "\"x,y\",\"\",\n"
        );
        assert!(
            parse_bool("t").unwrap() && !parse_bool("OFF").unwrap() && parse_bool("o").is_err()
        );
    }
}
