//! Resources by id: O(log n) lookups, ordered iteration for listings, and a
//! plain JSON array in the state file.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A resource with an id.
pub(crate) trait Keyed {
    fn key(&self) -> &str;
}

/// Resources of one kind, keyed by id.
#[derive(Clone, Debug)]
pub(crate) struct Table<T> {
    rows: BTreeMap<String, T>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { rows: BTreeMap::new() }
    }
}

impl<T: Keyed> Table<T> {
    pub(crate) fn insert(&mut self, row: T) {
        self.rows.insert(row.key().to_string(), row);
    }

    pub(crate) fn get(&self, id: &str) -> Option<&T> {
        self.rows.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.rows.get_mut(id)
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<T> {
        self.rows.remove(id)
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.rows.contains_key(id)
    }

    /// Rows in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.rows.values()
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }
}

impl<T: Serialize> Serialize for Table<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.rows.values())
    }
}

impl<'de, T: Keyed + DeserializeOwned> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rows = Vec::<T>::deserialize(deserializer)?;
        let mut table = Table::default();
        for row in rows {
            table.insert(row);
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        id: String,
        n: u32,
    }

    impl Keyed for Row {
        fn key(&self) -> &str {
            &self.id
        }
    }

    #[test]
    fn round_trips_as_an_array_in_id_order() {
        let mut t = Table::default();
        t.insert(Row { id: "b".into(), n: 2 });
        t.insert(Row { id: "a".into(), n: 1 });
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"[{"id":"a","n":1},{"id":"b","n":2}]"#);
        let back: Table<Row> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.get("b"), Some(&Row { id: "b".into(), n: 2 }));
        assert_eq!(back.len(), 2);
    }
}
