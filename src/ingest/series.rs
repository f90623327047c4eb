//! How many distinct series (tag combinations) a batch holds, for the per-write series limit.
//! Tags are dictionary-encoded, so a row's series is the tuple of its dictionary keys: counting
//! hashes integers, never strings.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, DictionaryArray};
use arrow::datatypes::{DataType, Int32Type};
use arrow::record_batch::RecordBatch;

/// The distinct series in `batch` when that is over `limit` (counting stops just past it);
/// otherwise a bound at most `limit` — all the limit check needs.
pub fn distinct_series(batch: &RecordBatch, limit: usize) -> usize {
    let tags: Vec<&DictionaryArray<Int32Type>> = batch
        .columns()
        .iter()
        .filter(|c| matches!(c.data_type(), DataType::Dictionary(..)))
        .filter_map(|c| c.as_dictionary_opt::<Int32Type>())
        .collect();
    // Fewer possible combinations than the limit: no need to look at the rows.
    let bound = tags
        .iter()
        .fold(1usize, |n, t| n.saturating_mul(t.values().len() + 1));
    if bound <= limit || batch.num_rows() <= limit {
        return bound.min(batch.num_rows().max(1));
    }
    let mut seen = HashSet::with_capacity(limit + 1);
    for row in 0..batch.num_rows() {
        let mut key = 0xcbf2_9ce4_8422_2325u64;
        for tag in &tags {
            let k = if tag.is_null(row) {
                -1
            } else {
                tag.keys().value(row)
            };
            key = (key ^ k as u32 as u64)
                .wrapping_mul(0x0100_0000_01b3)
                .rotate_left(5);
        }
        seen.insert(key);
        if seen.len() > limit {
            break;
        }
    }
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Float64Array, StringDictionaryBuilder};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch(hosts: &[&str], regions: &[Option<&str>]) -> RecordBatch {
        let mut h = StringDictionaryBuilder::<Int32Type>::new();
        let mut r = StringDictionaryBuilder::<Int32Type>::new();
        for (host, region) in hosts.iter().zip(regions) {
            h.append_value(host);
            r.append_option(*region);
        }
        let value = Float64Array::from(vec![1.0; hosts.len()]);
        let columns: Vec<ArrayRef> =
            vec![Arc::new(h.finish()), Arc::new(r.finish()), Arc::new(value)];
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let schema = Schema::new(vec![
            Field::new("host", dict.clone(), true),
            Field::new("region", dict, true),
            Field::new("value", DataType::Float64, true),
        ]);
        RecordBatch::try_new(Arc::new(schema), columns).unwrap()
    }

    #[test]
    fn series_are_tag_combinations_counted_up_to_the_limit() {
        let b = batch(
            &["a", "a", "b", "b", "a", "c"],
            &[Some("eu"), Some("eu"), Some("eu"), None, Some("us"), None],
        );
        // (a,eu) (b,eu) (b,null) (a,us) (c,null)
        assert_eq!(distinct_series(&b, 1), 2, "stops just past the limit");
        assert_eq!(distinct_series(&b, 4), 5);
        assert_eq!(distinct_series(&b, 5), 5.min(b.num_rows()));
        assert!(distinct_series(&b, 100) <= 100);
    }
}
