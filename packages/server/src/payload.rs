//! A job's payload as a request carries it: any JSON whose strings hold no
//! U+0000. Postgres cannot store that character (neither in `jsonb` nor in
//! `text`), so it is refused at the edge with 422, on both engines alike,
//! rather than failing the insert, and with it every create written in the
//! same statement, with a 500.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};

/// Any JSON without U+0000 in a string or an object key.
#[derive(Debug)]
pub(crate) struct Payload(pub(crate) Value);

/// The pattern of a string without U+0000 (ECMA-262, as OpenAPI asks).
const NUL_FREE: &str = "^[^\\u0000]*$";

/// Whether `text` can be stored.
pub(crate) fn is_nul_free(text: &str) -> bool {
    !text.contains('\0')
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => !is_nul_free(text),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| !is_nul_free(key) || holds_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if holds_nul(&value) {
            return Err(serde::de::Error::custom(
                "the payload holds the character U+0000 (`\\u0000`), which cannot be stored",
            ));
        }
        Ok(Self(value))
    }
}

impl utoipa::PartialSchema for Payload {
    /// Recursive: a value is a scalar, a string without U+0000, or an array
    /// or object of such values (with such keys).
    fn schema() -> RefOr<Schema> {
        let this = || RefOr::Ref(Ref::from_schema_name("Payload"));
        let nul_free = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(NUL_FREE))
        };
        AnyOfBuilder::new()
            .description(Some(
                "Any JSON, except that no string (nor object key) may hold the character U+0000.",
            ))
            .item(ObjectBuilder::new().schema_type(SchemaType::from_iter([
                Type::Null,
                Type::Boolean,
                Type::Number,
            ])))
            .item(nul_free())
            .item(ArrayBuilder::new().items(this()))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property_names(Some(nul_free()))
                    .additional_properties(Some(this())),
            )
            .into()
    }
}

impl utoipa::ToSchema for Payload {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_anywhere_is_refused_and_the_rest_is_kept() {
        for bad in [
            r#""a\u0000""#,
            r#"{"a":["x","\u0000"]}"#,
            r#"{"k\u0000":1}"#,
        ] {
            assert!(serde_json::from_str::<Payload>(bad).is_err(), "{bad}");
        }
        let good = r#"{"a":[1,2.5,null,true,"\u0001 é"],"b":{}}"#;
        let payload: Payload = serde_json::from_str(good).expect("a payload");
        assert_eq!(
            payload.0,
            serde_json::from_str::<Value>(good).expect("JSON")
        );
    }
}
