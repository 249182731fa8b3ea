//! One member of a JSON object, found without building the others: their
//! values are skipped, not parsed into `Value`s.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Looks for the member named `.0`; anything but an object is an error.
pub(super) struct Member<'k>(pub(super) &'k str);

/// What [`Member`] found: the last value under the key, and how many there were.
pub(super) struct Found<'de> {
    pub(super) last: Option<&'de RawValue>,
    pub(super) times: usize,
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Found {
            last: None,
            times: 0,
        };
        while let Some(is_it) = map.next_key_seed(KeyIs(self.0))? {
            if is_it {
                found.last = Some(map.next_value::<&'de RawValue>()?);
                found.times += 1;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Whether a key (escapes decoded) is the one looked for.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}
