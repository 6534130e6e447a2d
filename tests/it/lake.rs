//! The lake's readers: pairing a pricing part with its usage part row by row.

use arrow::record_batch::RecordBatch;
use std::path::Path;
use tokenledger::lake::io::{LakeError, zip_rows};
type Result<T> = std::result::Result<T, LakeError>;
use arrow::array::{Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use std::sync::Arc;

fn batches(sizes: &[i64]) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send> {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let mut next = 0i64;
    let out: Vec<Result<RecordBatch>> = sizes
        .iter()
        .map(|&n| {
            let a = Int64Array::from_iter_values(next..next + n);
            next += n;
            Ok(RecordBatch::try_new(schema.clone(), vec![Arc::new(a)]).unwrap())
        })
        .collect();
    Box::new(out.into_iter())
}

fn values(b: &RecordBatch) -> Vec<i64> {
    let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    (0..a.len()).map(|i| a.value(i)).collect()
}

#[test]
fn zip_rows_pairs_row_i_with_row_i_across_different_batch_boundaries() {
    let p = Path::new("x");
    let pairs: Vec<(RecordBatch, RecordBatch)> =
        zip_rows(batches(&[3, 0, 2, 4]), batches(&[1, 5, 3]), (p, p))
            .collect::<Result<_>>()
            .unwrap();
    let lens: Vec<usize> = pairs.iter().map(|(a, _)| a.num_rows()).collect();
    assert_eq!(lens, [1, 2, 2, 1, 3]);
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for (a, b) in &pairs {
        assert_eq!(a.num_rows(), b.num_rows());
        left.extend(values(a));
        right.extend(values(b));
    }
    assert_eq!(left, (0..9).collect::<Vec<_>>());
    assert_eq!(left, right);
}

#[test]
fn zip_rows_refuses_streams_of_different_lengths() {
    let (u, p) = (
        Path::new("usage/part-1.parquet"),
        Path::new("pricing/part-1.parquet"),
    );
    let out: Vec<Result<(RecordBatch, RecordBatch)>> =
        zip_rows(batches(&[3, 2]), batches(&[4]), (u, p)).collect();
    assert_eq!(
        out.len(),
        3,
        "the four common rows, then one error, then nothing"
    );
    assert!(out[..2].iter().all(|r| r.is_ok()));
    let err = out[2].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("usage/part-1.parquet") && err.contains("tokenledger rate"),
        "{err}"
    );
}
