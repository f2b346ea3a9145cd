//! An `a{sv}` request exactly as the caller sent it, every entry kept.
//!
//! zbus reads `a{sv}` into a `HashMap`, which keeps only the last of a key given twice: a till
//! could send `amount` twice and have the second silently win. [`RequestMap`] has the same D-Bus
//! signature, `a{sv}` (the interface XML does not change), but keeps every entry in the order
//! sent, the maps of an `aa{sv}` value (Checkout's `items`) included, so that
//! [`super::Reader`] can refuse a repeated key by name.
//!
//! Values are kept as the readers need them: the basic types (strings, booleans, integers,
//! doubles) as variants, an array of maps as maps, and anything else only as its signature, for
//! the error that names the wrong type. Only this module deserialises requests by hand; it never
//! fails on a value's type, so every wrong type still gets `InvalidArgument` naming its key.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use zbus::{OwnedVariant, Signature, Str, Type, Variant};

/// One `a{sv}` argument, every entry in the order the caller sent it.
#[derive(Debug, Default)]
pub struct RequestMap {
    entries: Vec<(String, RequestValue)>,
}

/// The value of one entry of a [`RequestMap`].
#[derive(Debug)]
pub enum RequestValue {
    /// A string, boolean, integer or double.
    Basic(OwnedVariant),
    /// An array of maps (`aa{sv}`), each kept entry by entry.
    Maps(Vec<RequestMap>),
    /// Any other type, known only by its signature (no reader accepts one).
    Other(Signature),
}

impl RequestMap {
    /// The entries, in the order sent; a key may occur more than once.
    pub fn entries(&self) -> &[(String, RequestValue)] {
        &self.entries
    }

    /// The value of `key`: its first occurrence.
    pub fn get(&self, key: &str) -> Option<&RequestValue> {
        self.entries
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }
}

impl RequestValue {
    /// The D-Bus signature of the value, as an error names it.
    pub fn signature(&self) -> String {
        match self {
            RequestValue::Basic(value) => value.value_signature().to_string(),
            RequestValue::Maps(_) => <Vec<RequestMap>>::SIGNATURE.to_string(),
            RequestValue::Other(signature) => signature.to_string(),
        }
    }
}

impl Type for RequestMap {
    const SIGNATURE: &'static Signature =
        &Signature::static_dict(&Signature::Str, &Signature::Variant);
}

impl<'de> Deserialize<'de> for RequestMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MapVisitor)
    }
}

/// Reads the entries of an `a{sv}`, one by one, keeping every one.
struct MapVisitor;

impl<'de> Visitor<'de> for MapVisitor {
    type Value = RequestMap;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a map of strings to variants (a{sv})")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RequestMap, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(VariantSeed)?;
            entries.push((key, value));
        }
        Ok(RequestMap { entries })
    }
}

/// Reads one variant (`v`): its signature, then its value by that signature.
struct VariantSeed;

impl<'de> DeserializeSeed<'de> for VariantSeed {
    type Value = RequestValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RequestValue, D::Error> {
        deserializer.deserialize_any(VariantVisitor)
    }
}

struct VariantVisitor;

impl<'de> Visitor<'de> for VariantVisitor {
    type Value = RequestValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a variant")
    }

    /// zbus hands a variant over as a sequence: the signature, then the value.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RequestValue, A::Error> {
        let missing = || de::Error::custom("a variant without its value");
        let signature: Signature = seq.next_element()?.ok_or_else(missing)?;
        if signature == *<Vec<RequestMap>>::SIGNATURE {
            let maps = seq.next_element::<Vec<RequestMap>>()?.ok_or_else(missing)?;
            return Ok(RequestValue::Maps(maps));
        }
        if is_basic(&signature) {
            let value = seq
                .next_element_seed(BasicSeed(&signature))?
                .ok_or_else(missing)?;
            return Ok(RequestValue::Basic(value));
        }
        seq.next_element::<IgnoredAny>()?.ok_or_else(missing)?;
        Ok(RequestValue::Other(signature))
    }
}

/// Whether [`BasicSeed`] reads values of `signature`: the types the readers take, plus the
/// other numbers so that their errors can name them (file descriptors, object paths and
/// signatures are kept as [`RequestValue::Other`]).
fn is_basic(signature: &Signature) -> bool {
    matches!(
        signature,
        Signature::Bool
            | Signature::U8
            | Signature::I16
            | Signature::U16
            | Signature::I32
            | Signature::U32
            | Signature::I64
            | Signature::U64
            | Signature::F64
            | Signature::Str
    )
}

/// Reads one value of a basic type (see [`is_basic`]) into a variant.
struct BasicSeed<'s>(&'s Signature);

impl<'de> DeserializeSeed<'de> for BasicSeed<'_> {
    type Value = OwnedVariant;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<OwnedVariant, D::Error> {
        deserializer.deserialize_any(BasicVisitor(self.0))
    }
}

struct BasicVisitor<'s>(&'s Signature);

impl BasicVisitor<'_> {
    fn owned<E: de::Error>(value: Variant<'_>) -> Result<OwnedVariant, E> {
        value.try_into_owned().map_err(E::custom)
    }
}

/// A `Visitor` method that keeps a value of a basic type as its variant.
macro_rules! visit_basic {
    ($method:ident, $type:ty) => {
        fn $method<E: de::Error>(self, value: $type) -> Result<OwnedVariant, E> {
            Self::owned(Variant::from(value))
        }
    };
}

impl<'de> Visitor<'de> for BasicVisitor<'_> {
    type Value = OwnedVariant;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "a value of type {}", self.0)
    }

    visit_basic!(visit_bool, bool);
    visit_basic!(visit_u8, u8);
    visit_basic!(visit_i16, i16);
    visit_basic!(visit_u16, u16);
    visit_basic!(visit_i32, i32);
    visit_basic!(visit_u32, u32);
    visit_basic!(visit_i64, i64);
    visit_basic!(visit_u64, u64);
    visit_basic!(visit_f64, f64);

    fn visit_str<E: de::Error>(self, value: &str) -> Result<OwnedVariant, E> {
        Self::owned(Variant::from(Str::from(value.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde::ser::{SerializeMap, SerializeStruct};
    use zbus::wire::LE;
    use zbus::wire::serialized::Context;

    use super::*;

    /// `a{sv}` entries as a D-Bus encoder writes them, repeats and all (a `HashMap` cannot hold
    /// a repeated key).
    struct Pairs(Vec<(&'static str, Value)>);

    enum Value {
        One(Variant<'static>),
        Maps(Vec<Pairs>),
    }

    impl Type for Pairs {
        const SIGNATURE: &'static Signature = RequestMap::SIGNATURE;
    }

    impl Serialize for Pairs {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(self.0.len()))?;
            for (key, value) in &self.0 {
                map.serialize_entry(key, value)?;
            }
            map.end()
        }
    }

    impl Serialize for Value {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self {
                Value::One(variant) => variant.serialize(serializer),
                // A variant is written as its signature, then its value.
                Value::Maps(maps) => {
                    let mut variant = serializer.serialize_struct("Variant", 2)?;
                    variant.serialize_field("signature", &<Vec<RequestMap>>::SIGNATURE)?;
                    variant.serialize_field("value", maps)?;
                    variant.end()
                }
            }
        }
    }

    /// Encodes `pairs` as D-Bus does and reads them back.
    fn round_trip(pairs: &Pairs) -> RequestMap {
        let encoded = zbus::wire::to_bytes(Context::new(LE, 0), pairs).expect("encodes");
        let (map, _) = encoded.deserialize::<RequestMap>().expect("decodes");
        map
    }

    fn summary(map: &RequestMap) -> Vec<(&str, String)> {
        map.entries()
            .iter()
            .map(|(key, value)| (key.as_str(), value.signature()))
            .collect()
    }

    #[test]
    fn it_has_the_signature_of_a_string_to_variant_map() {
        assert_eq!(RequestMap::SIGNATURE.to_string(), "a{sv}");
    }

    #[test]
    fn every_entry_is_kept_in_order_with_its_type() {
        let item = || {
            Pairs(vec![
                ("unit_price", Value::One(Variant::from("100"))),
                ("unit_price", Value::One(Variant::from("1"))),
            ])
        };
        let map = round_trip(&Pairs(vec![
            ("amount", Value::One(Variant::from("100"))),
            ("amount", Value::One(Variant::from("99999"))),
            ("limit", Value::One(Variant::from(7_u32))),
            ("price", Value::One(Variant::from(1.5_f64))),
            ("allow_partial", Value::One(Variant::from(true))),
            ("tags", Value::One(Variant::from(vec!["a", "b"]))),
            ("items", Value::Maps(vec![item(), item()])),
        ]));
        assert_eq!(
            summary(&map),
            [
                ("amount", "s".to_owned()),
                ("amount", "s".to_owned()),
                ("limit", "u".to_owned()),
                ("price", "d".to_owned()),
                ("allow_partial", "b".to_owned()),
                ("tags", "as".to_owned()),
                ("items", "aa{sv}".to_owned()),
            ]
        );
        let Some(RequestValue::Basic(first)) = map.get("amount") else {
            panic!("a string");
        };
        assert_eq!(&**first, &Variant::from("100"));
        let Some(RequestValue::Maps(items)) = map.get("items") else {
            panic!("the items");
        };
        assert_eq!(items.len(), 2);
        for item in items {
            assert_eq!(
                summary(item),
                [
                    ("unit_price", "s".to_owned()),
                    ("unit_price", "s".to_owned())
                ]
            );
        }
    }
}
