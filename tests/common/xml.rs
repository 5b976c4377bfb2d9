//! A small XML well-formedness checker, for the tests of the SVG pictures
//! (`tests/timeline.rs`, `tests/pictures.rs`): with `std` alone, enough to
//! catch the mistakes a hand-built SVG can make (a tag left open, an
//! attribute without quotes, a bare `&`). It is a test's tool, so it lives
//! here rather than in the `timeline` appendix.

use std::fmt;

/// Checks that `xml` is well-formed XML, with `std` alone: one root element,
/// tags that balance, attribute values in quotes (and no attribute twice),
/// and only valid entity references (`&amp; &lt; &gt; &quot; &apos;`, `&#N;`,
/// `&#xH;`). Comments, processing instructions (`<?xml …?>`), CDATA sections
/// and a DOCTYPE without an internal subset are accepted. It is not a full
/// XML parser (no DTDs, no namespace checks); it is enough to catch the
/// mistakes a hand-built SVG can make.
///
/// Returns `Err` with a message that says where it breaks, as
/// `line 3, column 7: closing tag </b> does not match <a> (opened at line 1, column 1)`.
pub fn check_well_formed(xml: &str) -> Result<(), String> {
    XmlChecker {
        chars: xml.chars().collect(),
        pos: 0,
    }
    .document()
}

struct XmlChecker {
    chars: Vec<char>,
    pos: usize,
}

impl XmlChecker {
    fn where_(&self, pos: usize) -> String {
        let (mut line, mut col) = (1, 1);
        for &c in &self.chars[..pos.min(self.chars.len())] {
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        format!("line {line}, column {col}")
    }

    fn fail<T>(&self, pos: usize, what: impl fmt::Display) -> Result<T, String> {
        Err(format!("{}: {what}", self.where_(pos)))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn starts_with(&self, s: &str) -> bool {
        (self.pos..)
            .zip(s.chars())
            .all(|(i, c)| self.chars.get(i) == Some(&c))
    }

    fn skip_space(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(' ' | '\t' | '\r' | '\n')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Skips to just past `close`, or fails naming `what` was left open.
    fn skip_past(&mut self, close: &str, what: &str) -> Result<(), String> {
        let start = self.pos;
        while self.pos < self.chars.len() {
            if self.starts_with(close) {
                self.pos += close.chars().count();
                return Ok(());
            }
            self.pos += 1;
        }
        self.fail(start, format!("{what} is never closed with `{close}`"))
    }

    fn name(&mut self, what: &str) -> Result<String, String> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_alphabetic() || c == '_' || c == ':' => {}
            Some(c) => return self.fail(start, format!("expected {what}, found {c:?}")),
            None => return self.fail(start, format!("expected {what}, found the end")),
        }
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    /// At `&`: checks one entity reference and steps past it.
    fn entity(&mut self) -> Result<(), String> {
        let start = self.pos;
        self.pos += 1;
        let body_start = self.pos;
        while let Some(c) = self.peek() {
            if c == ';' || self.pos - body_start > 12 || !(c.is_alphanumeric() || c == '#') {
                break;
            }
            self.pos += 1;
        }
        if self.peek() != Some(';') {
            return self.fail(
                start,
                "`&` that does not start an entity (write `&amp;` for a literal &)",
            );
        }
        let body: String = self.chars[body_start..self.pos].iter().collect();
        self.pos += 1;
        let number = if let Some(hex) = body.strip_prefix("#x") {
            Some(u32::from_str_radix(hex, 16).ok())
        } else {
            body.strip_prefix('#').map(|dec| dec.parse::<u32>().ok())
        };
        let ok = match number {
            Some(code) => code.and_then(char::from_u32).is_some_and(|c| c != '\0'),
            None => matches!(body.as_str(), "amp" | "lt" | "gt" | "quot" | "apos"),
        };
        if ok {
            Ok(())
        } else {
            self.fail(start, format!("unknown entity `&{body};`"))
        }
    }

    fn document(mut self) -> Result<(), String> {
        // (name, where it was opened)
        let mut open: Vec<(String, usize)> = Vec::new();
        let mut seen_root = false;
        loop {
            let at = self.pos;
            let Some(c) = self.peek() else {
                if let Some((name, opened)) = open.last() {
                    return self.fail(
                        at,
                        format!(
                            "the document ends inside <{name}> (opened at {}); missing </{name}>",
                            self.where_(*opened)
                        ),
                    );
                }
                if !seen_root {
                    return self.fail(at, "no root element");
                }
                return Ok(());
            };
            if self.starts_with("<!--") {
                self.pos += 4;
                self.skip_past("-->", "a comment")?;
            } else if self.starts_with("<?") {
                self.pos += 2;
                self.skip_past("?>", "a processing instruction")?;
            } else if self.starts_with("<![CDATA[") {
                if open.is_empty() {
                    return self.fail(at, "a CDATA section outside the root element");
                }
                self.pos += 9;
                self.skip_past("]]>", "a CDATA section")?;
            } else if self.starts_with("<!DOCTYPE") {
                if seen_root {
                    return self.fail(at, "a DOCTYPE after the root element");
                }
                while let Some(c) = self.peek() {
                    if c == '[' {
                        return self.fail(self.pos, "DOCTYPE internal subsets are not supported");
                    }
                    self.pos += 1;
                    if c == '>' {
                        break;
                    }
                }
            } else if self.starts_with("</") {
                self.pos += 2;
                let name = self.name("a tag name after `</`")?;
                self.skip_space();
                if self.peek() != Some('>') {
                    return self.fail(self.pos, format!("expected `>` to end </{name}"));
                }
                self.pos += 1;
                match open.pop() {
                    None => {
                        return self
                            .fail(at, format!("closing tag </{name}> with no open element"));
                    }
                    Some((expected, opened)) if expected != name => {
                        return self.fail(
                            at,
                            format!(
                                "closing tag </{name}> does not match <{expected}> (opened at {})",
                                self.where_(opened)
                            ),
                        );
                    }
                    Some(_) => {}
                }
            } else if c == '<' {
                if open.is_empty() && seen_root {
                    return self.fail(at, "a second root element (a document has exactly one)");
                }
                self.pos += 1;
                let name = self.name("a tag name after `<`")?;
                let closed = self.attributes(&name)?;
                seen_root = true;
                if !closed {
                    open.push((name, at));
                }
            } else {
                // Character data.
                if c == '&' {
                    if open.is_empty() {
                        return self.fail(at, "an entity outside the root element");
                    }
                    self.entity()?;
                } else if self.starts_with("]]>") {
                    return self.fail(at, "`]]>` in text (it may only end a CDATA section)");
                } else if open.is_empty() && !c.is_whitespace() {
                    return self.fail(
                        at,
                        format!(
                            "text {c:?} outside the root element{}",
                            if seen_root { " (after it ended)" } else { "" }
                        ),
                    );
                } else {
                    self.pos += 1;
                }
            }
        }
    }

    /// After `<name`: the attributes, up to `>` (returns false) or `/>`
    /// (returns true: the element is already closed).
    fn attributes(&mut self, element: &str) -> Result<bool, String> {
        let mut seen: Vec<String> = Vec::new();
        loop {
            let spaced = self.skip_space();
            match self.peek() {
                Some('>') => {
                    self.pos += 1;
                    return Ok(false);
                }
                Some('/') => {
                    if self.starts_with("/>") {
                        self.pos += 2;
                        return Ok(true);
                    }
                    return self.fail(self.pos, format!("`/` not followed by `>` in <{element}>"));
                }
                None => {
                    return self.fail(
                        self.pos,
                        format!("the document ends inside the tag <{element}"),
                    );
                }
                Some(_) if !spaced => {
                    return self.fail(
                        self.pos,
                        format!("expected a space, `>` or `/>` in <{element}>"),
                    );
                }
                Some(_) => {}
            }
            let attr_at = self.pos;
            let attr = self.name(&format!("an attribute name in <{element}>"))?;
            if seen.contains(&attr) {
                return self.fail(
                    attr_at,
                    format!("attribute `{attr}` appears twice in <{element}>"),
                );
            }
            self.skip_space();
            if self.peek() != Some('=') {
                return self.fail(
                    self.pos,
                    format!("attribute `{attr}` in <{element}> has no `=value`"),
                );
            }
            self.pos += 1;
            self.skip_space();
            let quote = match self.peek() {
                Some(q @ ('"' | '\'')) => q,
                _ => {
                    return self.fail(
                        self.pos,
                        format!("the value of attribute `{attr}` in <{element}> is not in quotes"),
                    );
                }
            };
            let value_at = self.pos;
            self.pos += 1;
            loop {
                match self.peek() {
                    None => {
                        return self.fail(
                            value_at,
                            format!("the value of attribute `{attr}` is never closed"),
                        );
                    }
                    Some(c) if c == quote => {
                        self.pos += 1;
                        break;
                    }
                    Some('<') => {
                        return self.fail(
                            self.pos,
                            format!("`<` inside the value of attribute `{attr}`"),
                        );
                    }
                    Some('&') => self.entity()?,
                    Some(_) => self.pos += 1,
                }
            }
            seen.push(attr);
        }
    }
}
