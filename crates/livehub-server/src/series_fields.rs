//! The numeric fields a series reads out of each publication's JSON: the dotted paths asked for
//! (`cpu.total`, `cpu.cores.0`) as a tree, and a walk of the JSON that follows only its branches.
//!
//! One walk serves every field of a request, and it never builds the document: the parts off
//! the tree are skipped without allocating. On a host-metrics publication (830 bytes, nine
//! fields) that is about four times cheaper than parsing a `serde_json::Value` once, and nine
//! times cheaper than one request per field.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// What a publication holds at one field's path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Found {
    /// The path leads nowhere.
    Missing,
    /// A JSON number.
    Number(f64),
    /// Something else: a string, a boolean, null, an object or an array.
    Other,
}

/// The fields of one request as a tree of path segments; a node that ends a path says which
/// field it is.
#[derive(Debug, Default)]
pub(crate) struct FieldTree {
    children: Vec<(String, FieldTree)>,
    field: Option<usize>,
}

impl FieldTree {
    /// The tree of `paths`, each a list of segments; field `i` is `paths[i]`.
    pub(crate) fn new<'a>(paths: impl IntoIterator<Item = &'a [&'a str]>) -> Self {
        let mut tree = Self::default();
        for (i, path) in paths.into_iter().enumerate() {
            tree.insert(path, i);
        }
        tree
    }

    fn insert(&mut self, path: &[&str], field: usize) {
        let Some((head, rest)) = path.split_first() else {
            // Requests name each field once (`SeriesParams` drops repeats).
            self.field = Some(field);
            return;
        };
        let at = match self.children.iter().position(|(k, _)| k == head) {
            Some(at) => at,
            None => {
                self.children.push(((*head).to_owned(), Self::default()));
                self.children.len() - 1
            }
        };
        self.children[at].1.insert(rest, field);
    }

    fn child(&self, segment: &str) -> Option<&Self> {
        self.children.iter().find(|(k, _)| k == segment).map(|(_, t)| t)
    }

    /// Reads every field of `json` into `out` (one slot per field, [`Found::Missing`] where the
    /// path leads nowhere). `None` when `json` is not valid JSON.
    pub(crate) fn read(&self, json: &[u8], out: &mut [Found]) -> Option<()> {
        out.fill(Found::Missing);
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        Walk { tree: self, out }.deserialize(&mut deserializer).ok()?;
        deserializer.end().ok()
    }
}

/// Walks one JSON value along `tree`.
struct Walk<'t, 'o> {
    tree: &'t FieldTree,
    out: &'o mut [Found],
}

impl Walk<'_, '_> {
    fn found(&mut self, found: Found) {
        if let Some(slot) = self.tree.field.and_then(|i| self.out.get_mut(i)) {
            *slot = found;
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_f64<E>(mut self, v: f64) -> Result<(), E> {
        self.found(Found::Number(v));
        Ok(())
    }

    fn visit_i64<E>(mut self, v: i64) -> Result<(), E> {
        self.found(Found::Number(v as f64));
        Ok(())
    }

    fn visit_u64<E>(mut self, v: u64) -> Result<(), E> {
        self.found(Found::Number(v as f64));
        Ok(())
    }

    fn visit_bool<E>(mut self, _: bool) -> Result<(), E> {
        self.found(Found::Other);
        Ok(())
    }

    fn visit_str<E>(mut self, _: &str) -> Result<(), E> {
        self.found(Found::Other);
        Ok(())
    }

    fn visit_unit<E>(mut self) -> Result<(), E> {
        self.found(Found::Other);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.found(Found::Other);
        let tree = self.tree;
        while let Some(child) = map.next_key_seed(Key { tree })? {
            match child {
                Some(child) => map.next_value_seed(Walk { tree: child, out: &mut *self.out })?,
                None => map.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.found(Found::Other);
        let tree = self.tree;
        let mut index = 0usize;
        loop {
            let more = if tree.children.is_empty() {
                seq.next_element::<IgnoredAny>()?.is_some()
            } else {
                match tree.child(&index.to_string()) {
                    Some(child) => {
                        seq.next_element_seed(Walk { tree: child, out: &mut *self.out })?.is_some()
                    }
                    None => seq.next_element::<IgnoredAny>()?.is_some(),
                }
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }
}

/// An object's key, looked up among a node's children without being copied.
struct Key<'t> {
    tree: &'t FieldTree,
}

impl<'de, 't> DeserializeSeed<'de> for Key<'t> {
    type Value = Option<&'t FieldTree>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'t> Visitor<'_> for Key<'t> {
    type Value = Option<&'t FieldTree>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.tree.child(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(paths: &[&str], json: &str) -> Option<Vec<Found>> {
        let split: Vec<Vec<&str>> = paths.iter().map(|p| p.split('.').collect()).collect();
        let tree = FieldTree::new(split.iter().map(Vec::as_slice));
        let mut out = vec![Found::Other; paths.len()];
        tree.read(json.as_bytes(), &mut out).map(|()| out)
    }

    #[test]
    fn reads_every_field_in_one_walk() {
        let json = r#"{"cpu":{"total":12.5,"cores":[10,15.5]},"host":"vm","swap":{"total":0},
                       "disks":[{"percent":71}],"n":-3,"big":18446744073709551615}"#;
        let found = read(
            &[
                "cpu.total",
                "cpu.cores.1",
                "cpu.cores.2",
                "host",
                "cpu",
                "disks.0.percent",
                "n",
                "big",
                "nope.x",
            ],
            json,
        );
        assert_eq!(
            found,
            Some(vec![
                Found::Number(12.5),
                Found::Number(15.5),
                Found::Missing,
                Found::Other,
                Found::Other,
                Found::Number(71.0),
                Found::Number(-3.0),
                Found::Number(18_446_744_073_709_551_615.0),
                Found::Missing,
            ])
        );
    }

    #[test]
    fn a_segment_is_a_key_of_an_object_or_an_index_of_an_array() {
        assert_eq!(read(&["a.0"], r#"{"a":{"0":1}}"#), Some(vec![Found::Number(1.0)]));
        assert_eq!(read(&["a.0"], r#"{"a":[2]}"#), Some(vec![Found::Number(2.0)]));
        assert_eq!(read(&["a.b"], r#"{"a":[2]}"#), Some(vec![Found::Missing]));
        assert_eq!(read(&["a.0"], r#"{"a":"text"}"#), Some(vec![Found::Missing]));
        // An escaped key is the same key.
        assert_eq!(read(&["é"], r#"{"\u00e9":3}"#), Some(vec![Found::Number(3.0)]));
    }

    #[test]
    fn invalid_json_reads_nothing() {
        assert_eq!(read(&["a"], r#"{"a":1"#), None);
        assert_eq!(read(&["a"], r#"{"a":1} x"#), None);
    }
}
