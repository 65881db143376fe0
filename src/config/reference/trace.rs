//! Every key `shipit.toml` accepts, read from the model itself: `RawConfig` is deserialized
//! from a tracer that answers each struct with all of its fields (serde's derive hands them to
//! `deserialize_struct`), each map with one entry named by a placeholder, each list with one
//! element, and records the dotted path of every struct field. A field added to a `Raw*` struct
//! (or to a table struct such as `Health`) is a key here without anyone listing it.
//!
//! Untagged values (a string or a table, such as a process or a hook) reach the tracer as
//! `deserialize_any`, which serde buffers before trying the variants, so their table form is
//! traced separately (`reference::table_form`); enum variants used as keys (a secret source's
//! `env`/`file`/`command`) are values of the key that holds them, documented there.

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde::de::value::Error;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

/// What a trace found.
#[derive(Default)]
pub(super) struct Found {
    /// Dotted paths of struct fields.
    pub keys: BTreeSet<String>,
    /// Paths where an untagged value (or a free-form `toml::Value`) sits.
    pub any: BTreeSet<String>,
}

/// The keys of `T` deserialized at `path` (`""` for the whole file).
pub(super) fn keys<'de, T: serde::Deserialize<'de>>(path: &str) -> Found {
    let found = RefCell::new(Found::default());
    T::deserialize(Tracer {
        path: path.to_string(),
        text: "x",
        key: false,
        found: &found,
    })
    .unwrap_or_else(|e| panic!("tracing {path}: {e}"));
    found.into_inner()
}

/// The placeholder a map's entries are named by in the reference: `<t>` for a target.
fn placeholder(map: &str) -> &'static str {
    match map.rsplit('.').next().unwrap_or("") {
        "targets" => "<t>",
        "processes" => "<p>",
        "requirements" => "<env>",
        _ => "<name>",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// toml's `Spanned<T>` is a struct of this name; its value is the key's own.
const SPANNED: &str = "$__serde_spanned_private_Spanned";

#[derive(Clone)]
struct Tracer<'f> {
    path: String,
    /// What a string is answered with: a map key's placeholder, a field's name, or any text.
    text: &'static str,
    /// A key (a field's name or a map's placeholder), not a value: nothing is recorded.
    key: bool,
    found: &'f RefCell<Found>,
}

impl<'f> Tracer<'f> {
    fn at(&self, path: String) -> Tracer<'f> {
        Tracer {
            path,
            text: "x",
            key: false,
            found: self.found,
        }
    }

    fn key(&self, text: &'static str) -> Tracer<'f> {
        Tracer {
            text,
            key: true,
            ..self.at(self.path.clone())
        }
    }
}

/// A struct's fields, or a map's one entry, in order: each key's text and its value.
struct Entries<'f> {
    entries: std::vec::IntoIter<(&'static str, Tracer<'f>)>,
    next: Option<Tracer<'f>>,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let key = seed.deserialize(value.key(key))?;
        self.next = Some(value);
        Ok(Some(key))
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(self.next.take().expect("a key comes first"))
    }
}

/// A list's one element.
struct One<'f>(Option<Tracer<'f>>);

impl<'de, 'f> de::SeqAccess<'de> for One<'f> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.take().map(|t| seed.deserialize(t)).transpose()
    }
}

impl<'de, 'f> de::EnumAccess<'de> for Tracer<'f> {
    type Error = Error;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let variant = seed.deserialize(self.text.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de, 'f> de::VariantAccess<'de> for Tracer<'f> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        let path = self.path.clone();
        seed.deserialize(self.at(path))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Error> {
        Err(de::Error::custom(
            "tuple variants are not used in shipit.toml",
        ))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Error> {
        Err(de::Error::custom(
            "struct variants are not used in shipit.toml",
        ))
    }
}

impl<'de, 'f> Deserializer<'de> for Tracer<'f> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if !self.key {
            self.found.borrow_mut().any.insert(self.path.clone());
        }
        visitor.visit_borrowed_str(self.text)
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bool(false)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(1)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(1)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u16(1)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u32(1)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.text)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.text)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let element = self.at(format!("{}[]", self.path));
        visitor.visit_seq(One(Some(element)))
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let name = placeholder(&self.path);
        let value = self.at(join(&self.path, name));
        visitor.visit_map(Entries {
            entries: vec![(name, value)].into_iter(),
            next: None,
        })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let entries = fields
            .iter()
            .map(|field| {
                if name == SPANNED {
                    (*field, self.clone())
                } else {
                    let path = join(&self.path, field);
                    self.found.borrow_mut().keys.insert(path.clone());
                    (*field, self.at(path))
                }
            })
            .collect::<Vec<_>>()
            .into_iter();
        visitor.visit_map(Entries {
            entries,
            next: None,
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(Tracer {
            text: variants[0],
            ..self
        })
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u128 f32 f64 char bytes byte_buf unit unit_struct
        newtype_struct tuple tuple_struct identifier ignored_any
    }
}
