//! JSON read as TOML is: a key given twice in one object is an error naming the key (and
//! where, line and column), not a silent choice of the last value as `serde_json` makes.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `text` as JSON, refusing an object that gives a key twice.
///
/// # Errors
/// Not JSON, or a duplicate key.
pub fn parse(text: &str) -> serde_json::Result<Value> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = (&mut deserializer).deserialize_any(UniqueVisitor)?;
    deserializer.end()?;
    Ok(value)
}

/// A [`Value`] whose objects have no key twice.
struct Unique(Value);

impl<'de> de::Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity: every parsed float is finite.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::new();
        while let Some(Unique(value)) = seq.next_element()? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("the key {key:?} is given twice in one object")));
            }
            let Unique(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_key_given_twice_is_refused_by_name_and_place() {
        let error = parse("{\"grid\": {\"seed\": [0], \"seed\": [1]}}").unwrap_err().to_string();
        assert!(error.contains("the key \"seed\" is given twice") && error.contains("line 1"), "{error}");
        // Nested and in lists too; the same key in two objects is fine.
        assert!(parse("[{\"a\": {\"b\": 1, \"b\": 1}}]").is_err());
        assert_eq!(parse("[{\"a\": 1}, {\"a\": 2}]").unwrap(), serde_json::json!([{"a": 1}, {"a": 2}]));
    }

    #[test]
    fn everything_else_parses_as_serde_json_does() {
        let text = r#"{"a": [1, -2, 3.5, 1e300, true, null, "x\u00e9"], "b": {}, "c": 18446744073709551615}"#;
        assert_eq!(parse(text).unwrap(), serde_json::from_str::<serde_json::Value>(text).unwrap());
        assert!(parse("{\"a\": 1} x").is_err(), "trailing characters");
        assert!(parse("{\"a\": }").is_err());
    }
}
