//! Loaders on small files written by the tests themselves (no ../shared needed).

use std::io::Write;
use std::path::Path;

use netrepair_data::{
    load, load_adult, load_cifar10_folder, load_eran_csv, load_german, load_mnist, make_moons,
    resolve_data_dir, split_fractions, split_indices, DataError, DatasetName, CIFAR10_CLASSES,
};

fn gz(path: &Path, bytes: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

fn idx_images(n: u32, pixels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [2051u32, n, 2, 2] {
        b.extend(v.to_be_bytes());
    }
    b.extend(pixels);
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [2049u32, labels.len() as u32] {
        b.extend(v.to_be_bytes());
    }
    b.extend(labels);
    b
}

#[test]
fn mnist_idx_files_are_read_and_scaled() {
    let dir = tempfile::tempdir().unwrap();
    gz(
        &dir.path().join("t10k-images-idx3-ubyte.gz"),
        &idx_images(2, &[0, 255, 51, 102, 1, 2, 3, 4]),
    );
    gz(
        &dir.path().join("t10k-labels-idx1-ubyte.gz"),
        &idx_labels(&[7, 3]),
    );
    let d = load_mnist(dir.path(), false).unwrap();
    assert_eq!(
        (d.len(), d.sample_shape.clone(), d.labels.clone()),
        (2, vec![1, 2, 2], vec![7, 3])
    );
    assert_eq!(d.sample(0), &[0.0, 1.0, 0.2, 0.4]);
    // Truncated pixel data is a format error naming the file.
    gz(
        &dir.path().join("t10k-images-idx3-ubyte.gz"),
        &idx_images(2, &[0, 255, 51]),
    );
    let err = load_mnist(dir.path(), false).unwrap_err().to_string();
    assert!(
        err.contains("t10k-images-idx3-ubyte.gz") && err.contains("2 images"),
        "{err}"
    );
    // Missing training files.
    assert!(matches!(
        load_mnist(dir.path(), true),
        Err(DataError::Missing { .. })
    ));
}

#[test]
fn eran_csv_mnist_and_cifar_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.csv");
    let row: Vec<String> = std::iter::once("4".to_string())
        .chain((0..784).map(|i| (i % 256).to_string()))
        .collect();
    std::fs::write(&p, format!("{}\n", row.join(","))).unwrap();
    let d = load_eran_csv(&p).unwrap();
    assert_eq!(
        (d.sample_shape.clone(), d.labels.clone()),
        (vec![1, 28, 28], vec![4])
    );
    assert_eq!(d.sample(0)[255], 1.0);
    // CIFAR rows are H x W x C: pixel (0, 0) = (10, 20, 30) lands at channel offsets 0, 1024, 2048.
    let mut px = vec![0u32; 3072];
    px[0] = 10;
    px[1] = 20;
    px[2] = 30;
    let p = dir.path().join("c.csv");
    let row: Vec<String> = std::iter::once("9".to_string())
        .chain(px.iter().map(|v| v.to_string()))
        .collect();
    std::fs::write(&p, row.join(",")).unwrap();
    let d = load_eran_csv(&p).unwrap();
    let s = d.sample(0);
    assert_eq!(
        (s[0], s[1024], s[2048]),
        (10.0 / 255.0, 20.0 / 255.0, 30.0 / 255.0)
    );
    std::fs::write(&p, "1,2,x\n").unwrap();
    assert!(load_eran_csv(&p)
        .unwrap_err()
        .to_string()
        .contains("line 1"));
}

#[test]
fn cifar_image_folder() {
    let dir = tempfile::tempdir().unwrap();
    for (k, class) in CIFAR10_CLASSES.iter().enumerate() {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        if k < 2 {
            // PNG is lossless, so the values are exact.
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                image::Rgb([x as u8, y as u8, 100 + k as u8])
            });
            img.save(dir.path().join(class).join("0001.png")).unwrap();
        }
    }
    let d = load_cifar10_folder(dir.path()).unwrap();
    assert_eq!((d.len(), d.labels.clone()), (2, vec![0, 1]));
    let s = d.sample(1);
    // [3, 32, 32]: red = x, green = y, blue = 101 at (y = 2, x = 5).
    assert_eq!(
        (s[2 * 32 + 5], s[1024 + 2 * 32 + 5], s[2048 + 2 * 32 + 5]),
        (5.0 / 255.0, 2.0 / 255.0, 101.0 / 255.0)
    );
    std::fs::remove_dir(dir.path().join("truck")).unwrap();
    assert!(matches!(
        load_cifar10_folder(dir.path()),
        Err(DataError::Missing { .. })
    ));
}

#[test]
fn german_codes_become_ordinals_and_age_stays_a_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("german.data");
    std::fs::write(
        &p,
        "A11 6 A34 A43 1169 A65 A75 4 A93 A101 4 A121 67 A143 A152 2 A173 1 A192 A201 1\n\
         A12 48 A32 A410 5951 A61 A73 2 A92 A101 2 A121 22 A143 A152 1 A173 1 A191 A201 2\n",
    )
    .unwrap();
    let d = load_german(&p).unwrap();
    let age = d.feature_index("age").unwrap();
    assert_eq!(age, 12);
    assert_eq!(d.sample(0)[age], 67.0);
    assert_eq!(d.sample(1)[3], 10.0, "A410 is purpose code 10");
    assert_eq!(d.sample(0)[..3], [1.0, 6.0, 4.0]);
    assert_eq!(d.labels, vec![0, 1]);
    std::fs::write(&p, "A11 6\n").unwrap();
    assert!(load_german(&p).unwrap_err().to_string().contains("line 1"));
}

#[test]
fn adult_drops_missing_rows_and_encodes_categories() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("adult.data"),
        "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K\n\
         50, ?, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, <=50K\n\
         38, Private, 215646, HS-grad, 9, Divorced, Handlers-cleaners, Not-in-family, Black, Female, 0, 0, 40, Cuba, >50K\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("adult.test"),
        "|1x3 Cross validator\n25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.\n",
    )
    .unwrap();
    let train = load_adult(dir.path(), true).unwrap();
    assert_eq!(train.len(), 2, "the row with '?' is dropped");
    let sex = train.feature_index("sex").unwrap();
    // Sorted categories of sex: Female = 0, Male = 1.
    assert_eq!((train.sample(0)[sex], train.sample(1)[sex]), (1.0, 0.0));
    assert_eq!(train.labels, vec![0, 1]);
    let test = load_adult(dir.path(), false).unwrap();
    assert_eq!(
        (test.len(), test.labels.clone(), test.sample(0)[0]),
        (1, vec![0], 25.0)
    );
}

#[test]
fn moons_and_splits() {
    let a = make_moons(101, 0.2, 5).unwrap();
    let b = make_moons(101, 0.2, 5).unwrap();
    assert_eq!(a, b, "seeded");
    assert_eq!(a.class_counts(), vec![50, 51]);
    assert_ne!(a, make_moons(101, 0.2, 6).unwrap());
    assert!(make_moons(1, 0.1, 0).is_err() && make_moons(10, -1.0, 0).is_err());

    let parts = split_indices(100, &[45, 5, 5, 5], 1).unwrap();
    let mut all: Vec<usize> = parts.concat();
    assert_eq!(all.len(), 60);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 60, "parts are disjoint");
    assert_eq!(parts, split_indices(100, &[45, 5, 5, 5], 1).unwrap());
    assert!(split_indices(10, &[8, 3], 0).is_err());
    let f = split_fractions(11, &[0.8, 0.2], 0).unwrap();
    assert_eq!((f[0].len(), f[1].len()), (8, 3));
}

#[test]
fn named_loading_and_data_dir_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(DatasetName::Mnist, dir.path(), "test")
        .unwrap_err()
        .to_string();
    assert!(err.contains("mnist"), "{err}");
    assert!(load(DatasetName::Mnist, dir.path(), "nope")
        .unwrap_err()
        .to_string()
        .contains("unknown split"));
    assert!("svhn".parse::<DatasetName>().is_err());
    let missing = dir.path().join("absent");
    assert!(matches!(
        resolve_data_dir(Some(&missing)),
        Err(DataError::Missing { .. })
    ));
    // A shared root (holding data/) resolves to its data/ folder.
    std::fs::create_dir(dir.path().join("data")).unwrap();
    assert_eq!(
        resolve_data_dir(Some(dir.path())).unwrap(),
        dir.path().join("data")
    );
}

#[test]
fn normalise_and_scale() {
    let mut d = netrepair_data::Dataset::new(
        "t",
        vec![0.0, 1.0, 2.0, 4.0],
        vec![2, 1],
        vec![0, 1],
        vec!["a".into(), "b".into()],
    )
    .unwrap();
    d.normalize(&[1.0, 2.0], &[1.0, 2.0]).unwrap();
    assert_eq!(d.inputs, vec![-1.0, -0.5, 1.0, 1.0]);
    let r = d.feature_ranges();
    d.scale_min_max(&r).unwrap();
    assert_eq!(d.inputs, vec![0.0, 0.0, 1.0, 1.0]);
    assert!(d.normalize(&[0.0], &[0.0]).is_err());
}
