//! InfluxDB line protocol: `measurement,tag=v field=1i,f2="s" 1700000000000000000`, one point
//! per line, as the InfluxDB 1.x/2.x/3 write APIs take it. Escapes follow the reference: in the
//! measurement `\,` and `\ `; in tag keys, tag values and field keys `\,`, `\=` and `\ `; in
//! string field values `\"` and `\\`; any other backslash is itself. Field types: `1i` integer,
//! `1u` unsigned, `t`/`T`/`true`/`True`/`TRUE` (and the `f` forms) boolean, `"…"` string,
//! anything else a float. Lines that are empty or start with `#` are skipped. Zero-copy where
//! nothing is escaped.

use std::borrow::Cow;

/// One field's value, typed by its spelling.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(Cow<'a, str>),
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Point<'a> {
    pub measurement: Cow<'a, str>,
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// In the request's precision; `None` means "now".
    pub timestamp: Option<i64>,
}

/// Points with their 1-based line numbers, and the lines that failed with why.
pub type Parsed<'a> = (Vec<(usize, Point<'a>)>, Vec<(usize, String)>);

/// Parses every line of `body`.
pub fn parse(body: &str) -> Parsed<'_> {
    let mut points = vec![];
    let mut errors = vec![];
    for (i, line) in body.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Ok(point) => points.push((i + 1, point)),
            Err(message) => errors.push((i + 1, message)),
        }
    }
    (points, errors)
}

/// Parses one line (without its newline).
pub fn parse_line(line: &str) -> Result<Point<'_>, String> {
    let series_end =
        find_unescaped(line, 0, b' ', false).ok_or("expected a space and then fields")?;
    let fields_start = skip_spaces(line, series_end);
    let fields_end = find_unescaped(line, fields_start, b' ', true).unwrap_or(line.len());
    let (measurement, tags) = series(&line[..series_end])?;
    let fields = fields(&line[fields_start..fields_end])?;
    let rest = line[fields_end..].trim();
    let timestamp = if rest.is_empty() {
        None
    } else {
        Some(
            rest.parse::<i64>()
                .map_err(|_| format!("timestamp `{rest}` is not an integer"))?,
        )
    };
    Ok(Point {
        measurement,
        tags,
        fields,
        timestamp,
    })
}

type Tags<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn series(text: &str) -> Result<(Cow<'_, str>, Tags<'_>), String> {
    let mut parts = split_unescaped(text, b',');
    let first = parts.next().unwrap_or("");
    if first.is_empty() {
        return Err("missing measurement".into());
    }
    let measurement = unescape(first, b",= ");
    let mut tags = Vec::with_capacity(16);
    for part in parts {
        let eq = find_unescaped(part, 0, b'=', false)
            .ok_or_else(|| format!("tag `{part}` has no `=`"))?;
        let (key, value) = (&part[..eq], &part[eq + 1..]);
        if key.is_empty() || value.is_empty() {
            return Err(format!("tag `{part}` needs a key and a value"));
        }
        if find_unescaped(value, 0, b'=', false).is_some() {
            return Err(format!(
                "tag `{part}`: an `=` in a tag value must be escaped (`\\=`)"
            ));
        }
        tags.push((unescape(key, b",= "), unescape(value, b",= ")));
    }
    Ok((measurement, tags))
}

fn fields(text: &str) -> Result<Vec<(Cow<'_, str>, FieldValue<'_>)>, String> {
    if text.is_empty() {
        return Err("a point needs at least one field".into());
    }
    let mut out: Vec<(Cow<'_, str>, FieldValue<'_>)> = Vec::with_capacity(16);
    let mut start = 0;
    loop {
        let end = find_unescaped(text, start, b',', true).unwrap_or(text.len());
        let part = &text[start..end];
        let eq = find_unescaped(part, 0, b'=', false)
            .ok_or_else(|| format!("field `{part}` has no `=`"))?;
        let (key, raw) = (&part[..eq], &part[eq + 1..]);
        if key.is_empty() {
            return Err(format!("field `{part}` has no name"));
        }
        let key = unescape(key, b",= ");
        let value = field_value(raw).map_err(|e| format!("field `{key}`: {e}"))?;
        // A repeated key: the last value wins, as in InfluxDB.
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
        if end == text.len() {
            return Ok(out);
        }
        start = end + 1;
    }
}

fn field_value(raw: &str) -> Result<FieldValue<'_>, String> {
    if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .filter(|i| !ends_escaped(i))
            .ok_or("a string value must end with an unescaped `\"`")?;
        return Ok(FieldValue::Str(unescape_string(inner)));
    }
    match raw {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(FieldValue::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(FieldValue::Bool(false)),
        "" => return Err("missing value".into()),
        _ => {}
    }
    if let Some(digits) = raw.strip_suffix('i') {
        return digits
            .parse()
            .map(FieldValue::Int)
            .map_err(|_| format!("`{raw}` is not a 64-bit integer"));
    }
    if let Some(digits) = raw.strip_suffix('u') {
        return digits
            .parse()
            .map(FieldValue::UInt)
            .map_err(|_| format!("`{raw}` is not an unsigned 64-bit integer"));
    }
    // `inf`, `NaN` and their spellings parse but are not finite: refused with the rest.
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(FieldValue::Float(v)),
        _ => Err(format!("`{raw}` is not a number, boolean or quoted string")),
    }
}

/// Whether the text ends in an odd run of backslashes (its last character is escaped).
fn ends_escaped(text: &str) -> bool {
    text.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1
}

fn skip_spaces(line: &str, from: usize) -> usize {
    from + line[from..].bytes().take_while(|b| *b == b' ').count()
}

/// The first `sep` at or after `from` not escaped by a backslash. Two rules, as InfluxDB
/// scans: in the field set (`quotes`) a backslash escapes the next byte, whatever it is, and
/// separators inside a double-quoted string do not count; in the series key and field keys a
/// separator is escaped when the byte before it is a backslash — so in `m,t=a\\ v=1` the space
/// belongs to the tag value and the line has no fields: refused, as InfluxDB 1.6 refuses it
/// (the protocol tests compare the two).
fn find_unescaped(text: &str, from: usize, sep: u8, quotes: bool) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = from;
    if !quotes {
        while let Some(offset) = memchr::memchr(sep, bytes.get(i..)?) {
            let at = i + offset;
            if at == 0 || bytes[at - 1] != b'\\' {
                return Some(at);
            }
            i = at + 1;
        }
        return None;
    }
    let mut quoted = false;
    while let Some(offset) = memchr::memchr3(sep, b'\\', b'"', bytes.get(i..)?) {
        let at = i + offset;
        match bytes[at] {
            b'\\' => i = at + 2,
            b'"' => {
                quoted = !quoted;
                i = at + 1;
            }
            _ if !quoted => return Some(at),
            _ => i = at + 1,
        }
    }
    None
}

/// The pieces of `text` between unescaped `sep`s (series-key rule), without collecting them.
fn split_unescaped(text: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let from = start?;
        match find_unescaped(text, from, sep, false) {
            Some(at) => {
                start = Some(at + 1);
                Some(&text[from..at])
            }
            None => {
                start = None;
                Some(&text[from..])
            }
        }
    })
}

/// Removes the backslash before any of `escapable`; other backslashes stay.
fn unescape<'a>(text: &'a str, escapable: &[u8]) -> Cow<'a, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && next.is_ascii()
            && escapable.contains(&(next as u8))
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

fn unescape_string(text: &str) -> Cow<'_, str> {
    unescape(text, b"\"\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(line: &str) -> Point<'_> {
        parse_line(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn types_are_read_from_their_spelling() {
        let p = point(r#"cpu,host=a f=1.5,i=-3i,u=7u,b=t,B=FALSE,s="x y",e=2 1700000000"#);
        assert_eq!(p.measurement, "cpu");
        assert_eq!(p.tags, vec![("host".into(), "a".into())]);
        let values: Vec<_> = p.fields.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(
            values,
            [
                FieldValue::Float(1.5),
                FieldValue::Int(-3),
                FieldValue::UInt(7),
                FieldValue::Bool(true),
                FieldValue::Bool(false),
                FieldValue::Str("x y".into()),
                FieldValue::Float(2.0),
            ]
        );
        assert_eq!(p.timestamp, Some(1_700_000_000));
        assert_eq!(point("m v=1").timestamp, None);
    }

    #[test]
    fn escapes_follow_the_reference() {
        let p = point(r#"my\ meas\,ure,t\ k\=1=v\,a\ l\=ue f\ k\,\=="q\"uo\\te, \d" -5"#);
        assert_eq!(p.measurement, "my meas,ure");
        assert_eq!(p.tags, vec![("t k=1".into(), "v,a l=ue".into())]);
        assert_eq!(p.fields[0].0, "f k,=");
        assert_eq!(p.fields[0].1, FieldValue::Str(r#"q"uo\te, \d"#.into()));
        assert_eq!(p.timestamp, Some(-5));
        // A space or comma inside a quoted string does not end the field set.
        let p = point(r#"m a="1 2,3",b=2i 10"#);
        assert_eq!(p.fields.len(), 2);
        assert_eq!(p.timestamp, Some(10));
        // Other backslashes are themselves; the measurement's `=` needs no escape.
        assert_eq!(point(r"a=b\x,t=\y v=1").measurement, r"a=b\x");
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, why) in [
            ("cpu", "expected a space"),
            ("cpu ", "at least one field"),
            ("cpu,host v=1", "has no `=`"),
            ("cpu,host= v=1", "needs a key and a value"),
            ("cpu,host=a=b v=1", "must be escaped"),
            ("cpu v=abc", "not a number"),
            ("cpu v=1.5i", "not a 64-bit integer"),
            ("cpu v=-1u", "unsigned"),
            (r#"cpu v="open"#, "must end"),
            (r#"cpu v="esc\""#, "must end"),
            ("cpu v=1 12x", "not an integer"),
            ("cpu v=nan", "not a number"),
            (",t=1 v=1", "missing measurement"),
        ] {
            let err = parse_line(line).expect_err(line);
            assert!(err.contains(why), "{line}: {err}");
        }
        let (points, errors) = parse("# comment\n\ncpu v=1\ncpu v=\r\ncpu v=2\r\n");
        assert_eq!(points.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [3, 5]);
        assert_eq!(errors.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [4]);
    }

    const SEED: &str =
        "we\\ ird\\,m,t\\=k=v\\ 1,x=y f=\"a\\\"b\",g=1i,h=2u,i=T 1700000000000000000\ncpu v=1.5";
    const SIGNIFICANT: &[u8] = b"\\\", =\n#iu0123456789.-tTfF";

    proptest::proptest! {
        // Damaged lines: never a panic; every line number reported is a line of the body, and
        // every line is either a point or a refusal.
        #[test]
        fn damaged_lines_are_points_or_refusals(
            edits in proptest::collection::vec(
                (proptest::prelude::any::<usize>(), 0u8..3, proptest::prelude::any::<u8>()),
                1..8,
            ),
        ) {
            let body = crate::damage::damage(SEED.as_bytes(), &edits, SIGNIFICANT);
            let Ok(text) = std::str::from_utf8(&body) else { return Ok(()) };
            let lines = text.split('\n').count();
            let (points, errors) = parse(text);
            for line in points.iter().map(|p| p.0).chain(errors.iter().map(|e| e.0)) {
                proptest::prop_assert!(line >= 1 && line <= lines);
            }
            proptest::prop_assert!(points.len() + errors.len() <= lines);
        }
    }
}
