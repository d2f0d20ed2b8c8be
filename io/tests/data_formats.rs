//! Every dataset format on files these tests write, and the damaged-file cases.

use descent_io::data::{self, Cell, RowCount, summarize};
use std::path::Path;
use std::sync::Arc;

fn err(path: &Path) -> String {
    match data::open(path) {
        Err(e) => e.to_string(),
        Ok(mut d) => summarize(&mut d, None, 4)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string()),
    }
}

#[test]
fn csv_pages_across_the_index_and_counts_classes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.csv");
    let mut text = String::from("x,note,label\n");
    for i in 0..5000 {
        text.push_str(&format!(
            "{},\"a, \"\"quoted\"\"\nnote\",{}\n",
            i as f64 / 2.0,
            i % 3
        ));
    }
    std::fs::write(&p, text).unwrap();
    let mut d = data::open(&p).unwrap();
    assert_eq!(d.format(), "CSV");
    let cols: Vec<_> = d
        .columns()
        .iter()
        .map(|c| (c.name.as_str(), c.dtype.as_str()))
        .collect();
    assert_eq!(cols, [("x", "float"), ("note", "text"), ("label", "int")]);
    assert_eq!(d.rows(), RowCount::AtLeast(1000));
    // A page past the first index stride, then an earlier one.
    let page = d.page(3000, 2).unwrap();
    assert_eq!(page[0][0], Cell::Float(1500.0));
    assert_eq!(page[1][2], Cell::Int(3001 % 3));
    assert_eq!(page[0][1], Cell::Text("a, \"quoted\"\nnote".into()));
    assert_eq!(d.page(5, 1).unwrap()[0][0], Cell::Float(2.5));
    let s = summarize(&mut d, None, 0).unwrap();
    assert_eq!(s.rows, RowCount::Exact(5000));
    assert_eq!(s.scanned, 5000);
    assert_eq!(s.label.as_deref(), Some("label"));
    assert_eq!(
        s.classes,
        [
            ("0".to_string(), 1667),
            ("1".into(), 1667),
            ("2".into(), 1666)
        ]
    );
    let x = &s.columns[0];
    assert_eq!((x.min, x.max), (Some(0.0), Some(2499.5)));
    assert!((x.mean.unwrap() - 1249.75).abs() < 1e-9);
    assert_eq!(x.distinct, 5000);
}

#[test]
fn tsv_and_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.tsv");
    std::fs::write(&p, "a\tb\n1\tx\n2\t\n").unwrap();
    let mut d = data::open(&p).unwrap();
    assert_eq!(
        d.page(0, 10).unwrap(),
        vec![
            vec![Cell::Int(1), Cell::Text("x".into())],
            vec![Cell::Int(2), Cell::Null]
        ]
    );
    let s = summarize(&mut d, None, 0).unwrap();
    assert_eq!(s.columns[1].nulls, 1);

    let p = dir.path().join("t.jsonl");
    std::fs::write(&p, "{\"text\": \"hi\", \"score\": 0.5}\n\n{\"text\": \"yo\", \"score\": 2, \"extra\": [1,2]}\n").unwrap();
    let mut d = data::open(&p).unwrap();
    let names: Vec<_> = d.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["score", "text", "extra"]);
    let rows = d.page(0, 10).unwrap();
    assert_eq!(
        rows[1],
        vec![
            Cell::Float(2.0),
            Cell::Text("yo".into()),
            Cell::Text("[1,2]".into())
        ]
    );
}

#[test]
fn damaged_text_files_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ragged.csv");
    std::fs::write(&p, "a,b\n1,2\n3,4,5\n").unwrap();
    let e = err(&p);
    assert!(
        e.contains("ragged.csv: line 3: the row has 3 fields but the header has 2"),
        "{e}"
    );

    let p = dir.path().join("bad.csv");
    std::fs::write(&p, b"a,b\n1,\xff\xfe\n").unwrap();
    let e = err(&p);
    assert!(e.contains("bad.csv: line 2: invalid UTF-8"), "{e}");

    let p = dir.path().join("empty.csv");
    std::fs::write(&p, "").unwrap();
    assert!(err(&p).contains("empty.csv: the file is empty"));

    let p = dir.path().join("bad.jsonl");
    std::fs::write(&p, "{\"a\": 1}\n{\"a\": \n").unwrap();
    let e = err(&p);
    assert!(e.contains("bad.jsonl: line 2: not JSON"), "{e}");
}

fn write_parquet(p: &Path, n: usize, group: usize) {
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Float64, true),
        Field::new("label", DataType::Utf8, false),
    ]));
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let f = std::fs::File::create(p).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, schema.clone(), Some(props)).unwrap();
    let ids: Vec<i64> = (0..n as i64).collect();
    let vals: Vec<Option<f64>> = (0..n).map(|i| (i % 10 != 0).then_some(i as f64)).collect();
    let labels: Vec<String> = (0..n).map(|i| ["cat", "dog"][i % 2].to_string()).collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Float64Array::from(vals)),
            Arc::new(StringArray::from(labels)),
        ],
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_with_several_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.parquet");
    write_parquet(&p, 1000, 128);
    let mut d = data::open(&p).unwrap();
    assert_eq!(d.rows(), RowCount::Exact(1000));
    let cols: Vec<_> = d.columns().iter().map(|c| c.dtype.as_str()).collect();
    assert_eq!(cols, ["int", "float", "text"]);
    // Rows 250..254 start inside the second row group and cross nothing; 126..130 cross groups.
    let page = d.page(126, 4).unwrap();
    let ids: Vec<_> = page.iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        ids,
        [
            Cell::Int(126),
            Cell::Int(127),
            Cell::Int(128),
            Cell::Int(129)
        ]
    );
    assert_eq!(d.page(130, 1).unwrap()[0][1], Cell::Null);
    assert_eq!(d.page(999, 10).unwrap().len(), 1);
    let s = summarize(&mut d, None, 0).unwrap();
    assert_eq!(s.columns[1].nulls, 100);
    assert_eq!(s.classes, [("cat".to_string(), 500), ("dog".into(), 500)]);

    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 12..n - 4].fill(0xAB); // the footer's metadata length and its tail
    std::fs::write(&p, &bytes).unwrap();
    let e = err(&p);
    assert!(e.contains("t.parquet: footer:"), "{e}");
}

#[test]
fn idx_pairs_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("train-images-idx3-ubyte");
    let pixels: Vec<u8> = (0..3 * 4 * 4).map(|i| (i * 5) as u8).collect();
    data::write_idx_u8(&imgs, &[3, 4, 4], &pixels).unwrap();
    data::write_idx_u8(
        &dir.path().join("train-labels-idx1-ubyte"),
        &[3],
        &[7, 1, 7],
    )
    .unwrap();
    let mut d = data::open(&imgs).unwrap();
    let s = summarize(&mut d, None, 8).unwrap();
    assert_eq!(s.rows, RowCount::Exact(3));
    assert_eq!(s.classes, [("7".to_string(), 2), ("1".into(), 1)]);
    assert_eq!(s.images.len(), 3);
    assert_eq!(
        (
            s.images[0].width,
            s.images[0].height,
            s.images[0].label.as_str()
        ),
        (4, 4, "7")
    );

    let gz = dir.path().join("t10k-labels-idx1-ubyte.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &[0, 0, 8, 1, 0, 0, 0, 2, 4, 5]).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let mut d = data::open(&gz).unwrap();
    assert_eq!(
        d.page(0, 5).unwrap(),
        vec![vec![Cell::Int(4)], vec![Cell::Int(5)]]
    );

    std::fs::write(&imgs, &std::fs::read(&imgs).unwrap()[..30]).unwrap();
    let e = err(&imgs);
    assert!(e.contains("train-images-idx3-ubyte: data: dimensions [3, 4, 4] need 48 bytes but the file holds 14"), "{e}");
}

#[test]
fn image_folders_skip_non_images() {
    let dir = tempfile::tempdir().unwrap();
    for (class, shade) in [("cat", 40u8), ("dog", 200)] {
        let c = dir.path().join(class);
        std::fs::create_dir_all(&c).unwrap();
        for i in 0..3 {
            let img = image::RgbImage::from_pixel(10, 6, image::Rgb([shade, i * 10, 0]));
            img.save(c.join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(dir.path().join("dog/readme.txt"), "not an image").unwrap();
    std::fs::write(dir.path().join("cat/broken.png"), "not a png").unwrap();
    let mut d = data::open(dir.path()).unwrap();
    let s = summarize(&mut d, None, 4).unwrap();
    assert_eq!(s.rows, RowCount::Exact(7));
    assert_eq!(s.label.as_deref(), Some("class"));
    assert_eq!(s.classes, [("cat".to_string(), 4), ("dog".into(), 3)]);
    assert_eq!(s.images.len(), 4);
    let labels: Vec<_> = s.images.iter().map(|i| i.label.as_str()).collect();
    assert_eq!(
        labels,
        ["cat", "dog", "cat", "dog"],
        "round robin over classes"
    );
    assert_eq!(s.images[1].rgb[0], 200);
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("1 non-image files skipped")),
        "{:?}",
        s.notes
    );

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("a.txt"), "x").unwrap();
    assert!(err(empty.path()).contains("not an image folder"));
}

#[test]
fn a_million_classes_are_capped_not_exhausting() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("many.csv");
    let mut text = String::from("label,x\n");
    for i in 0..150_000 {
        text.push_str(&format!("c{i},1\n"));
    }
    std::fs::write(&p, text).unwrap();
    let mut d = data::open(&p).unwrap();
    let s = summarize(&mut d, None, 0).unwrap();
    assert!(s.classes_capped);
    assert_eq!(s.classes.len(), data::DISTINCT_CAP);
}

#[test]
fn safetensors_tensors_are_columns() {
    use descent_io::dtype::DType;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.safetensors");
    let x: Vec<u8> = (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let y: Vec<u8> = [0i64, 1, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
    descent_io::safetensors::write(
        &p,
        &[("x", DType::F32, &[3, 4], &x), ("y", DType::I64, &[3], &y)],
    )
    .unwrap();
    let mut d = data::open(&p).unwrap();
    assert_eq!(d.rows(), RowCount::Exact(3));
    let row = &d.page(1, 1).unwrap()[0];
    assert_eq!(
        row[0],
        Cell::Text("[4.000, 5.000, 6.000, 7.000] (4 values)".into())
    );
    assert_eq!(row[1], Cell::Int(1));
    let s = summarize(&mut d, Some("y"), 0).unwrap();
    assert_eq!(s.classes, [("1".to_string(), 2), ("0".into(), 1)]);
}
