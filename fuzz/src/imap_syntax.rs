//! Parses what the server writes into FETCH responses (ENVELOPE, BODY, BODYSTRUCTURE) back
//! into values, strictly: a stray quote, an unescaped byte or a short literal would let message
//! content break out of the response (RFC 3501 §4, §7.4.2).

/// One IMAP value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Nil,
    Number(u64),
    String(Vec<u8>),
    List(Vec<Value>),
}

/// Deeper than any structure the server writes (it stops at 32 levels of parts).
const DEPTH_MAX: usize = 512;

/// Parses exactly one value from `bytes`, which must hold nothing else.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut parser = Parser { bytes, position: 0 };
    let value = parser.value(0)?;
    if parser.position != bytes.len() {
        return Err(format!("{} bytes after the value at {}", bytes.len() - parser.position, parser.position));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at byte {} ({:?})", self.position, self.peek().map(char::from))
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > DEPTH_MAX {
            return Err(self.error("nesting too deep"));
        }
        match self.peek() {
            Some(b'(') => self.list(depth),
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            Some(b'0'..=b'9') => self.number(),
            Some(b'N') if self.bytes[self.position..].starts_with(b"NIL") => {
                self.position += 3;
                Ok(Value::Nil)
            }
            _ => Err(self.error("expected a value")),
        }
    }

    /// Items are separated by one space, except that parenthesized items may abut (the
    /// bodies of a multipart, the addresses of a list).
    fn list(&mut self, depth: usize) -> Result<Value, String> {
        self.position += 1;
        let mut items: Vec<Value> = Vec::new();
        loop {
            match self.peek() {
                Some(b')') => {
                    self.position += 1;
                    return Ok(Value::List(items));
                }
                Some(b' ') if !items.is_empty() => {
                    self.position += 1;
                    if matches!(self.peek(), Some(b')' | b' ')) {
                        return Err(self.error("space before a list end or another space"));
                    }
                }
                Some(b'(') if matches!(items.last(), Some(Value::List(_))) => {}
                Some(_) if items.is_empty() => {}
                _ => return Err(self.error("expected a space or a list end")),
            }
            items.push(self.value(depth + 1)?);
        }
    }

    fn quoted(&mut self) -> Result<Value, String> {
        self.position += 1;
        let mut text = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.position += 1;
                    return Ok(Value::String(text));
                }
                Some(b'\\') => {
                    self.position += 1;
                    match self.peek() {
                        Some(escaped @ (b'"' | b'\\')) => text.push(escaped),
                        _ => return Err(self.error("bad escape in a quoted string")),
                    }
                }
                Some(byte @ 1..=0x7f) if byte != b'\r' && byte != b'\n' => text.push(byte),
                _ => return Err(self.error("byte not allowed in a quoted string")),
            }
            self.position += 1;
        }
    }

    fn literal(&mut self) -> Result<Value, String> {
        self.position += 1;
        let digits_start = self.position;
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.position += 1;
        }
        let length: usize = std::str::from_utf8(&self.bytes[digits_start..self.position])
            .ok()
            .and_then(|digits| digits.parse().ok())
            .ok_or_else(|| self.error("bad literal length"))?;
        if !self.bytes[self.position..].starts_with(b"}\r\n") {
            return Err(self.error("literal length not followed by } CRLF"));
        }
        self.position += 3;
        let data = self.bytes.get(self.position..self.position + length).ok_or_else(|| self.error("short literal"))?;
        self.position += length;
        Ok(Value::String(data.to_vec()))
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.position;
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.position += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.position])
            .ok()
            .and_then(|digits| digits.parse().ok())
            .map(Value::Number)
            .ok_or_else(|| self.error("number out of range"))
    }
}

fn is_nstring(value: &Value) -> bool {
    matches!(value, Value::Nil | Value::String(_))
}

/// NIL or a list of addresses `(name adl mailbox host)`.
fn is_address_list(value: &Value) -> bool {
    match value {
        Value::Nil => true,
        Value::List(addresses) => !addresses.is_empty()
            && addresses.iter().all(
                |address| matches!(address, Value::List(fields) if fields.len() == 4 && fields.iter().all(is_nstring)),
            ),
        _ => false,
    }
}

/// Checks the shape of an ENVELOPE (RFC 3501 §7.4.2).
pub fn check_envelope(value: &Value) -> Result<(), String> {
    let Value::List(fields) = value else {
        return Err("envelope is not a list".into());
    };
    if fields.len() != 10 {
        return Err(format!("envelope has {} fields, not 10", fields.len()));
    }
    for (index, field) in fields.iter().enumerate() {
        let valid = if (2..8).contains(&index) { is_address_list(field) } else { is_nstring(field) };
        if !valid {
            return Err(format!("envelope field {index} is {field:?}"));
        }
    }
    Ok(())
}

/// Checks the shape of a BODY or BODYSTRUCTURE: a multipart is its parts then a subtype; a
/// single part starts with type, subtype, parameters, id, description, encoding, size.
pub fn check_body(value: &Value) -> Result<(), String> {
    let Value::List(items) = value else {
        return Err("body is not a list".into());
    };
    let parts = items.iter().take_while(|item| matches!(item, Value::List(_))).count();
    if parts > 0 {
        items[..parts].iter().try_for_each(check_body)?;
        return match items.get(parts) {
            Some(Value::String(_)) => Ok(()),
            other => Err(format!("multipart subtype is {other:?}")),
        };
    }
    let valid = items.len() >= 7
        && matches!(items[0], Value::String(_))
        && matches!(items[1], Value::String(_))
        && matches!(items[2], Value::Nil | Value::List(_))
        && is_nstring(&items[3])
        && is_nstring(&items[4])
        && matches!(items[5], Value::String(_))
        && matches!(items[6], Value::Number(_));
    if !valid {
        return Err(format!("single part fields are {items:?}"));
    }
    Ok(())
}
