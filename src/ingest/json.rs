//! JSON array and NDJSON bodies. Objects are streamed straight into the [`BatchBuilder`]
//! through serde visitors, borrowing keys and strings from the body where possible, so no
//! intermediate `serde_json::Value` tree is built.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::builder::{BatchBuilder, Value};

/// `[ {...}, {...} ]`: lines in errors are 1-based record numbers.
pub fn decode_array(body: &[u8], builder: &mut BatchBuilder) {
    // A bare object (or objects one per line) sent as application/json is read as NDJSON.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return decode_ndjson(body, builder);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = (&mut de)
        .deserialize_seq(RecordsVisitor {
            builder: &mut *builder,
        })
        .and_then(|()| de.end());
    if let Err(e) = result {
        let message = format!("invalid JSON: {e}");
        builder.error_at(e.line(), None, message);
    }
}

/// One JSON object per line; blank lines are skipped.
pub fn decode_ndjson(body: &[u8], builder: &mut BatchBuilder) {
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        builder.begin_row(line_no);
        let mut de = serde_json::Deserializer::from_slice(line);
        let result = RowSeed {
            builder: &mut *builder,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        match result {
            Ok(()) => builder.end_row(),
            Err(e) => {
                builder.error_at(
                    line_no,
                    None,
                    format!("invalid JSON at column {}: {e}", e.column()),
                );
                // Keep row accounting consistent; the request fails anyway.
                builder.end_row_after_error();
            }
        }
    }
}

struct RecordsVisitor<'b> {
    builder: &'b mut BatchBuilder,
}

impl<'de> Visitor<'de> for RecordsVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut record = 0;
        loop {
            record += 1;
            self.builder.begin_row(record);
            match seq.next_element_seed(RowSeed {
                builder: &mut *self.builder,
            })? {
                Some(()) => self.builder.end_row(),
                None => return Ok(()),
            }
        }
    }
}

struct RowSeed<'b> {
    builder: &'b mut BatchBuilder,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of column names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match map.next_value::<JsonValue<'de>>() {
                Ok(JsonValue(v)) => self.builder.set(&key.0, v),
                Err(e) => {
                    let message = e.to_string();
                    if message.contains("nested") {
                        self.builder.error(Some(&key.0), format!("column {:?}: nested objects and arrays are not supported; flatten them into columns", key.0));
                    } else {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A string that borrows from the body unless it had escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A scalar JSON value; objects and arrays are rejected (and skipped) with a "nested" error.
struct JsonValue<'a>(Value<'a>);

impl<'de> serde::Deserialize<'de> for JsonValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_unit<E>(self) -> Result<JsonValue<'de>, E> {
                Ok(JsonValue(Value::Null))
            }
            fn visit_bool<E>(self, v: bool) -> Result<JsonValue<'de>, E> {
                Ok(JsonValue(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<JsonValue<'de>, E> {
                Ok(JsonValue(Value::Int(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<JsonValue<'de>, E> {
                Ok(JsonValue(match i64::try_from(v) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::UInt(v),
                }))
            }
            fn visit_f64<E>(self, v: f64) -> Result<JsonValue<'de>, E> {
                Ok(JsonValue(Value::Float(v)))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<JsonValue<'de>, E> {
                Ok(JsonValue(Value::Str(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<JsonValue<'de>, E> {
                Ok(JsonValue(Value::Str(Cow::Owned(v.to_string()))))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Err(A::Error::custom("nested object"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Err(A::Error::custom("nested array"))
            }
        }
        d.deserialize_any(V)
    }
}
