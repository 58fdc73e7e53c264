//! Lenient readers for the members of a record.
//!
//! Each reader accepts every JSON type while the record is parsed, so a member of the
//! wrong type is reported afterwards as an `InvalidField` naming the member, instead of as
//! a JSON syntax error. Strings are borrowed from the record text whenever they hold no
//! escapes, which keeps the hot path free of allocations.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::InvalidRecord;
pub(crate) use crate::json_type::JsonType;

/// A scalar member: absent, null, a string, a boolean, or something else.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) enum Member<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Bool(bool),
    Other(JsonType),
}

impl<'a> Member<'a> {
    /// The string, if this is one; `Ok(None)` when absent, `null` or empty; the member's
    /// type when it is anything else.
    pub(crate) fn optional_str(&self) -> Result<Option<Cow<'a, str>>, JsonType> {
        match self {
            Member::Absent | Member::Null => Ok(None),
            Member::Str(value) if value.is_empty() => Ok(None),
            Member::Str(value) => Ok(Some(value.clone())),
            Member::Bool(_) => Err(JsonType::Bool),
            Member::Other(json_type) => Err(*json_type),
        }
    }

    pub(crate) fn json_type(&self) -> Option<JsonType> {
        match self {
            Member::Absent => None,
            Member::Null => Some(JsonType::Null),
            Member::Str(_) => Some(JsonType::String),
            Member::Bool(_) => Some(JsonType::Bool),
            Member::Other(json_type) => Some(*json_type),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Member<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MemberVisitor(PhantomData))
    }
}

struct MemberVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for MemberVisitor<'a> {
    type Value = Member<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Member::Str(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Member::Str(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(Member::Str(Cow::Owned(value)))
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Member::Bool(value))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Member::Other(JsonType::Number))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Member::Other(JsonType::Number))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Member::Other(JsonType::Number))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Member::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Member::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Member::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain_seq(seq)?;
        Ok(Member::Other(JsonType::Array))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        drain_map(map)?;
        Ok(Member::Other(JsonType::Object))
    }
}

/// A member kept as its raw JSON text, so that normalisation can tell `null` from absent
/// and knows where the value sits in the record text.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RawMember<'a>(pub Option<&'a RawValue>);

impl<'a> RawMember<'a> {
    /// The member read as a [`Member`]: strings without escapes stay borrowed.
    pub(crate) fn member(self) -> Member<'a> {
        let Some(raw) = self.0 else {
            return Member::Absent;
        };
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'"') => match text.get(1..text.len() - 1) {
                Some(content) if !content.contains('\\') => Member::Str(Cow::Borrowed(content)),
                _ => match serde_json::from_str::<String>(text) {
                    Ok(decoded) => Member::Str(Cow::Owned(decoded)),
                    Err(_) => Member::Other(JsonType::String),
                },
            },
            Some(b'n') => Member::Null,
            Some(b't') => Member::Bool(true),
            Some(b'f') => Member::Bool(false),
            Some(b'[') => Member::Other(JsonType::Array),
            Some(b'{') => Member::Other(JsonType::Object),
            _ => Member::Other(JsonType::Number),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawMember<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(deserializer).map(|raw| RawMember(Some(raw)))
    }
}

/// An object member read into `T`, or the reason it is not one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) enum ObjectMember<T> {
    #[default]
    Absent,
    Object(T),
    NotAnObject(JsonType),
}

impl<T> ObjectMember<T> {
    /// `Ok(None)` when absent or null; the member's type when it is anything else.
    pub(crate) fn object(&self) -> Result<Option<&T>, JsonType> {
        match self {
            ObjectMember::Absent | ObjectMember::NotAnObject(JsonType::Null) => Ok(None),
            ObjectMember::Object(value) => Ok(Some(value)),
            ObjectMember::NotAnObject(json_type) => Err(*json_type),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectMember<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ContainerVisitor::<T, ObjectMember<T>>(PhantomData))
    }
}

/// An array member read into `Vec<T>`, or the reason it is not one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) enum ArrayMember<T> {
    #[default]
    Absent,
    Array(Vec<T>),
    NotAnArray(JsonType),
}

impl<T> ArrayMember<T> {
    /// `Ok(empty)` when absent or null; the member's type when it is anything else.
    pub(crate) fn items(&self) -> Result<&[T], JsonType> {
        match self {
            ArrayMember::Absent | ArrayMember::NotAnArray(JsonType::Null) => Ok(&[]),
            ArrayMember::Array(items) => Ok(items),
            ArrayMember::NotAnArray(json_type) => Err(*json_type),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ArrayMember<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ContainerVisitor::<T, ArrayMember<T>>(PhantomData))
    }
}

/// What [`ContainerVisitor`] builds: an object or array member from whichever JSON type
/// it meets.
trait ContainerMember<T>: Sized {
    fn wrong_type(json_type: JsonType) -> Self;
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>
    where
        T: Deserialize<'de>;
    fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error>
    where
        T: Deserialize<'de>;
}

impl<T> ContainerMember<T> for ObjectMember<T> {
    fn wrong_type(json_type: JsonType) -> Self {
        ObjectMember::NotAnObject(json_type)
    }

    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>
    where
        T: Deserialize<'de>,
    {
        T::deserialize(MapAccessDeserializer::new(map)).map(ObjectMember::Object)
    }

    fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error>
    where
        T: Deserialize<'de>,
    {
        drain_seq(seq)?;
        Ok(ObjectMember::NotAnObject(JsonType::Array))
    }
}

impl<T> ContainerMember<T> for ArrayMember<T> {
    fn wrong_type(json_type: JsonType) -> Self {
        ArrayMember::NotAnArray(json_type)
    }

    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>
    where
        T: Deserialize<'de>,
    {
        drain_map(map)?;
        Ok(ArrayMember::NotAnArray(JsonType::Object))
    }

    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error>
    where
        T: Deserialize<'de>,
    {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<T>()? {
            items.push(item);
        }
        Ok(ArrayMember::Array(items))
    }
}

struct ContainerVisitor<T, M>(PhantomData<(T, M)>);

impl<'de, T: Deserialize<'de>, M: ContainerMember<T>> Visitor<'de> for ContainerVisitor<T, M> {
    type Value = M;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(M::wrong_type(JsonType::String))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(M::wrong_type(JsonType::Bool))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(M::wrong_type(JsonType::Number))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(M::wrong_type(JsonType::Number))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(M::wrong_type(JsonType::Number))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(M::wrong_type(JsonType::Null))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(M::wrong_type(JsonType::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        M::from_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        M::from_map(map)
    }
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A string member that may be absent or `null`; an empty string counts as absent.
pub(crate) fn optional_string<'a>(
    member: &Member<'a>,
    path: &str,
) -> Result<Option<Cow<'a, str>>, InvalidRecord> {
    member
        .optional_str()
        .map_err(|found| InvalidRecord::wrong_type(path, "a string", found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(default, borrow)]
        scalar: Member<'a>,
        #[serde(default, borrow)]
        raw: RawMember<'a>,
        #[serde(default, borrow)]
        object: ObjectMember<Inner<'a>>,
        #[serde(default, borrow)]
        array: ArrayMember<Member<'a>>,
    }

    #[derive(Deserialize, Debug, PartialEq, Eq)]
    struct Inner<'a> {
        #[serde(default, borrow)]
        name: Member<'a>,
    }

    fn probe(text: &str) -> Probe<'_> {
        serde_json::from_str(text).expect("probe parses")
    }

    #[test]
    fn scalars_of_every_type_are_read_without_error() {
        assert_eq!(probe("{}").scalar, Member::Absent);
        assert_eq!(probe(r#"{"scalar":null}"#).scalar, Member::Null);
        assert_eq!(
            probe(r#"{"scalar":"a"}"#).scalar,
            Member::Str(Cow::Borrowed("a"))
        );
        assert!(
            matches!(probe(r#"{"scalar":"a\"b"}"#).scalar, Member::Str(Cow::Owned(text)) if text == "a\"b")
        );
        assert_eq!(
            probe(r#"{"scalar":1.5}"#).scalar,
            Member::Other(JsonType::Number)
        );
        assert_eq!(
            probe(r#"{"scalar":[1,{}]}"#).scalar,
            Member::Other(JsonType::Array)
        );
        assert_eq!(
            probe(r#"{"scalar":{"a":[]}}"#).scalar,
            Member::Other(JsonType::Object)
        );
    }

    #[test]
    fn raw_members_tell_null_from_absent() {
        assert_eq!(probe("{}").raw.member(), Member::Absent);
        assert_eq!(probe(r#"{"raw":null}"#).raw.member(), Member::Null);
        assert_eq!(
            probe(r#"{"raw":"x\u0041"}"#).raw.member(),
            Member::Str(Cow::Owned("xA".to_owned()))
        );
        assert_eq!(probe(r#"{"raw":false}"#).raw.member(), Member::Bool(false));
        assert_eq!(
            probe(r#"{"raw":-1}"#).raw.member(),
            Member::Other(JsonType::Number)
        );
    }

    #[test]
    fn containers_report_their_actual_type() {
        assert_eq!(
            probe(r#"{"object":{"name":"n"}}"#).object.object(),
            Ok(Some(&Inner {
                name: Member::Str(Cow::Borrowed("n"))
            }))
        );
        assert_eq!(probe(r#"{"object":null}"#).object.object(), Ok(None));
        assert_eq!(
            probe(r#"{"object":[1]}"#).object.object(),
            Err(JsonType::Array)
        );
        assert_eq!(
            probe(r#"{"array":[1,"a"]}"#).array.items().map(<[_]>::len),
            Ok(2)
        );
        assert_eq!(
            probe(r#"{"array":"a"}"#).array.items().map(<[_]>::len),
            Err(JsonType::String)
        );
    }
}
