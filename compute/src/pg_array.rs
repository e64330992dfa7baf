//! PostgreSQL's array text format: `{1,2,NULL}`, `{"a b","q\"x"}`, `{{1,2},{3,4}}`.
//!
//! Arrays are Arrow lists; this module reads the text form (array literals, text parameters, COPY
//! input) into nested items and says how an element is quoted on output.

use std::borrow::Cow;

use crate::error::{sqlstate, SqlError, SqlResult};

/// One item of an array literal: an element (`None` for NULL) or a nested array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Element(Option<String>),
    Array(Vec<Item>),
}

fn malformed(text: &str, detail: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        format!("malformed array literal: \"{text}\""),
    )
    .with_detail(detail.to_string())
}

/// Parses an array literal into its top-level items.
pub fn parse(text: &str) -> SqlResult<Vec<Item>> {
    let mut chars = text.trim().chars().peekable();
    let mut parser = Parser {
        text,
        chars: &mut chars,
    };
    if parser.chars.peek() != Some(&'{') {
        return Err(malformed(
            text,
            "Array value must start with \"{\" or dimension information.",
        ));
    }
    let items = parser.array()?;
    if parser.chars.any(|c| !c.is_whitespace()) {
        return Err(malformed(text, "Junk after closing right brace."));
    }
    Ok(items)
}

struct Parser<'a, I: Iterator<Item = char>> {
    text: &'a str,
    chars: &'a mut std::iter::Peekable<I>,
}

impl<I: Iterator<Item = char>> Parser<'_, I> {
    fn skip_spaces(&mut self) {
        while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.chars.next();
        }
    }

    /// `{ item, item, … }`, at the opening brace.
    fn array(&mut self) -> SqlResult<Vec<Item>> {
        self.chars.next();
        let mut items = Vec::new();
        self.skip_spaces();
        if self.chars.peek() == Some(&'}') {
            self.chars.next();
            return Ok(items);
        }
        loop {
            self.skip_spaces();
            let item = match self.chars.peek() {
                Some('{') => Item::Array(self.array()?),
                Some('"') => Item::Element(Some(self.quoted()?)),
                Some(_) => self.unquoted()?,
                None => return Err(malformed(self.text, "Unexpected end of input.")),
            };
            items.push(item);
            self.skip_spaces();
            match self.chars.next() {
                Some(',') => continue,
                Some('}') => break,
                _ => return Err(malformed(self.text, "Unexpected array element.")),
            }
        }
        let nested = items.iter().filter(|i| matches!(i, Item::Array(_))).count();
        if nested != 0 && nested != items.len() {
            return Err(malformed(
                self.text,
                "Multidimensional arrays must have sub-arrays with matching dimensions.",
            ));
        }
        Ok(items)
    }

    fn quoted(&mut self) -> SqlResult<String> {
        self.chars.next();
        let mut out = String::new();
        loop {
            match self.chars.next() {
                Some('"') => return Ok(out),
                Some('\\') => match self.chars.next() {
                    Some(c) => out.push(c),
                    None => break,
                },
                Some(c) => out.push(c),
                None => break,
            }
        }
        Err(malformed(self.text, "Unexpected end of input."))
    }

    fn unquoted(&mut self) -> SqlResult<Item> {
        let mut out = String::new();
        while let Some(&c) = self.chars.peek() {
            match c {
                ',' | '}' => break,
                '{' | '"' => return Err(malformed(self.text, "Unexpected array element.")),
                '\\' => {
                    self.chars.next();
                    if let Some(escaped) = self.chars.next() {
                        out.push(escaped);
                    }
                }
                _ => {
                    out.push(c);
                    self.chars.next();
                }
            }
        }
        let value = out.trim_end();
        if value.is_empty() {
            return Err(malformed(self.text, "Unexpected \",\" character."));
        }
        Ok(Item::Element(if value.eq_ignore_ascii_case("null") {
            None
        } else {
            Some(value.to_string())
        }))
    }
}

/// An element's text as it appears inside `{…}`: quoted when it is empty, is `NULL` spelled as a
/// string, or holds a brace, comma, quote, backslash or space.
pub fn quote_element(text: &str) -> Cow<'_, str> {
    let needs_quotes = text.is_empty()
        || text.eq_ignore_ascii_case("null")
        || text
            .chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_ascii_whitespace());
    if !needs_quotes {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> Item {
        Item::Element(Some(s.to_string()))
    }

    #[test]
    fn parses_postgres_array_literals() {
        assert_eq!(parse("{}").unwrap(), vec![]);
        assert_eq!(
            parse(" { 1 , 2,NULL } ").unwrap(),
            vec![e("1"), e("2"), Item::Element(None)]
        );
        assert_eq!(
            parse(r#"{"a b","q\"x",\,,"NULL"}"#).unwrap(),
            vec![e("a b"), e("q\"x"), e(","), e("NULL")]
        );
        assert_eq!(
            parse("{{1,2},{3,4}}").unwrap(),
            vec![
                Item::Array(vec![e("1"), e("2")]),
                Item::Array(vec![e("3"), e("4")])
            ]
        );
        for bad in ["1,2", "{1,2", "{1,,2}", "{1,2}x", "{{1},2}"] {
            assert_eq!(
                parse(bad).unwrap_err().code,
                sqlstate::INVALID_TEXT_REPRESENTATION,
                "{bad}"
            );
        }
    }

    #[test]
    fn quotes_elements_as_postgres_does() {
        assert_eq!(quote_element("abc"), "abc");
        assert_eq!(quote_element(""), "\"\"");
        assert_eq!(quote_element("a b"), "\"a b\"");
        assert_eq!(quote_element("null"), "\"null\"");
        assert_eq!(quote_element("q\"x\\"), r#""q\"x\\""#);
    }
}
