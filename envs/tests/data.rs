//! The IDX reader and the MNIST loader on tiny fixtures written with `write_idx`, and
//! (ignored) on the real data sets of `scripts/fetch-data.sh`.

use std::path::{Path, PathBuf};

use sfess_envs::data::{DataError, DataSet, Mnist, Split, default_data_dir, read_idx, write_idx};
use tch::{Kind, Tensor};

const PIXELS: usize = 28 * 28;
const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// The contents of the four files of a fixture data set.
struct Fixture {
    train_images: Vec<u8>,
    train_labels: Vec<u8>,
    test_images: Vec<u8>,
    test_labels: Vec<u8>,
}

impl Fixture {
    /// `train` + `test` images whose bytes cover 0..=255 and differ from image to image.
    fn new(train: usize, test: usize) -> Fixture {
        let images = |n: usize, salt: usize| -> Vec<u8> {
            (0..n * PIXELS).map(|i| ((i * 7 + (i / PIXELS) * 31 + salt) % 256) as u8).collect()
        };
        let labels = |n: usize, salt: usize| -> Vec<u8> { (0..n).map(|i| ((i * 3 + salt) % 10) as u8).collect() };
        Fixture {
            train_images: images(train, 0),
            train_labels: labels(train, 5),
            test_images: images(test, 101),
            test_labels: labels(test, 7),
        }
    }

    /// Writes the four files into `dir`, gzip-compressed (`NAME.gz`) where `gzip[i]`, raw
    /// (`NAME`) otherwise, in the order train images, train labels, test images, test labels.
    fn write(&self, dir: &Path, gzip: [bool; 4]) {
        std::fs::create_dir_all(dir).unwrap();
        let files: [(&str, Vec<usize>, &[u8]); 4] = [
            (TRAIN_IMAGES, vec![self.train_labels.len(), 28, 28], &self.train_images),
            (TRAIN_LABELS, vec![self.train_labels.len()], &self.train_labels),
            (TEST_IMAGES, vec![self.test_labels.len(), 28, 28], &self.test_images),
            (TEST_LABELS, vec![self.test_labels.len()], &self.test_labels),
        ];
        for ((name, dims, data), gz) in files.into_iter().zip(gzip) {
            write_idx(&file(dir, name, gz), &dims, data, gz).unwrap();
        }
    }
}

fn file(dir: &Path, name: &str, gzip: bool) -> PathBuf {
    dir.join(if gzip { format!("{name}.gz") } else { name.to_owned() })
}

fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.reshape([-1])).unwrap()
}

fn longs(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(&t.reshape([-1])).unwrap()
}

/// `split` holds exactly `images` (as byte / 255) and `labels`.
fn assert_split(split: &Split, images: &[u8], labels: &[u8]) {
    let n = labels.len();
    assert_eq!(split.len(), n);
    assert_eq!(split.is_empty(), n == 0);
    assert_eq!(split.images.size(), [n as i64, PIXELS as i64]);
    assert_eq!(split.images.kind(), Kind::Float);
    assert_eq!(split.labels.size(), [n as i64]);
    assert_eq!(split.labels.kind(), Kind::Int64);
    let want: Vec<f32> = images.iter().map(|&b| f32::from(b) / 255.0).collect();
    assert_eq!(floats(&split.images), want);
    assert_eq!(longs(&split.labels), labels.iter().map(|&l| i64::from(l)).collect::<Vec<_>>());
}

/// Loads `dir`, expecting an error; checks that its message is one line naming `path`.
fn load_err(dir: &Path, path: &Path) -> DataError {
    let err = Mnist::load_dir(dir).expect_err("the load should fail");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message:?} does not name {}", path.display());
    assert!(!message.contains('\n'), "{message:?} is not one line");
    err
}

#[test]
fn loads_gzip_files_and_holds_out_the_end_of_the_training_set() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = Fixture::new(12, 3);
    fx.write(tmp.path(), [true; 4]);
    let data = Mnist::load_dir(tmp.path()).unwrap();
    // 12 training images: the last min(10_000, 12 / 6) = 2 are the validation set.
    assert_split(&data.train, &fx.train_images[..10 * PIXELS], &fx.train_labels[..10]);
    assert_split(&data.validation, &fx.train_images[10 * PIXELS..], &fx.train_labels[10..]);
    assert_split(&data.test, &fx.test_images, &fx.test_labels);
    let pixels = floats(&data.train.images);
    assert!(pixels.contains(&0.0) && pixels.contains(&1.0));
    assert!(pixels.iter().all(|p| (0.0..=1.0).contains(p)));
}

#[test]
fn loads_raw_and_mixed_files() {
    let fx = Fixture::new(13, 2);
    for gzip in [[false; 4], [true, false, false, true], [false, true, true, false]] {
        let tmp = tempfile::tempdir().unwrap();
        fx.write(tmp.path(), gzip);
        let data = Mnist::load_dir(tmp.path()).unwrap();
        // 13 / 6 = 2 held out.
        assert_split(&data.train, &fx.train_images[..11 * PIXELS], &fx.train_labels[..11]);
        assert_split(&data.validation, &fx.train_images[11 * PIXELS..], &fx.train_labels[11..]);
        assert_split(&data.test, &fx.test_images, &fx.test_labels);
    }
}

#[test]
fn prefers_the_gzip_file_when_both_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = Fixture::new(6, 1);
    fx.write(tmp.path(), [true; 4]);
    // A raw test label file with other contents beside the gzip one.
    write_idx(&file(tmp.path(), TEST_LABELS, false), &[1], &[9], false).unwrap();
    let data = Mnist::load_dir(tmp.path()).unwrap();
    assert_eq!(longs(&data.test.labels), [i64::from(fx.test_labels[0])]);
}

#[test]
fn validation_size_follows_the_rule() {
    for (n, held_out) in [(6, 1), (11, 1), (60, 10), (100, 16)] {
        let tmp = tempfile::tempdir().unwrap();
        Fixture::new(n, 1).write(tmp.path(), [false; 4]);
        let data = Mnist::load_dir(tmp.path()).unwrap();
        assert_eq!((data.train.len(), data.validation.len()), (n - held_out, held_out), "n = {n}");
        assert_eq!(data.validation.images.size(), [held_out as i64, PIXELS as i64]);
    }
}

#[test]
fn load_reads_the_data_set_folder_under_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = Fixture::new(6, 2);
    fx.write(&tmp.path().join("fashion-mnist"), [true; 4]);
    let data = Mnist::load(tmp.path(), DataSet::FashionMnist).unwrap();
    assert_split(&data.test, &fx.test_images, &fx.test_labels);
    let err = Mnist::load(tmp.path(), DataSet::Mnist).unwrap_err();
    let DataError::Missing { dir, file } = err else { panic!("expected Missing, got {err:?}") };
    assert_eq!((dir, file.as_str()), (tmp.path().join("mnist"), TRAIN_IMAGES));
}

#[test]
fn data_set_names() {
    assert_eq!((DataSet::Mnist.dir_name(), DataSet::Mnist.name()), ("mnist", "MNIST"));
    assert_eq!((DataSet::FashionMnist.dir_name(), DataSet::FashionMnist.name()), ("fashion-mnist", "Fashion-MNIST"));
    assert_eq!(DataSet::FashionMnist.to_string(), "Fashion-MNIST");
    let dir = default_data_dir();
    match std::env::var_os("SFESS_DATA_DIR").filter(|v| !v.is_empty()) {
        Some(v) => assert_eq!(dir, PathBuf::from(v)),
        None => assert!(dir.ends_with("sfess-agent/data"), "{}", dir.display()),
    }
}

#[test]
fn missing_file_names_both_accepted_names() {
    let tmp = tempfile::tempdir().unwrap();
    Fixture::new(6, 1).write(tmp.path(), [true; 4]);
    std::fs::remove_file(file(tmp.path(), TEST_LABELS, true)).unwrap();
    let path = file(tmp.path(), TEST_LABELS, false);
    let err = load_err(tmp.path(), &path);
    let message = err.to_string();
    assert!(message.contains(&format!("{}.gz", path.display())), "{message}");
    assert!(message.contains("scripts/fetch-data.sh") && message.contains("--data-dir"), "{message}");
    assert!(matches!(err, DataError::Missing { file, .. } if file == TEST_LABELS));
}

/// Writes the fixture, then replaces the raw train image file by `bytes`.
fn with_train_images(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    Fixture::new(6, 1).write(tmp.path(), [false; 4]);
    let path = file(tmp.path(), TRAIN_IMAGES, false);
    std::fs::write(&path, bytes).unwrap();
    (tmp, path)
}

#[test]
fn truncated_image_file_says_expected_and_found() {
    let tmp = tempfile::tempdir().unwrap();
    Fixture::new(6, 1).write(tmp.path(), [false; 4]);
    let path = file(tmp.path(), TRAIN_IMAGES, false);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = load_err(tmp.path(), &path);
    let message = err.to_string();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    assert!(
        message.contains("truncated")
            && message.contains(&format!("need {} data bytes, found {}", 6 * PIXELS, 6 * PIXELS - 100)),
        "{message}"
    );
}

#[test]
fn trailing_bytes_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    Fixture::new(6, 1).write(tmp.path(), [false; 4]);
    let path = file(tmp.path(), TRAIN_LABELS, false);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0, 0, 0]);
    std::fs::write(&path, &bytes).unwrap();
    let err = load_err(tmp.path(), &path);
    assert!(matches!(err, DataError::Format { ref problem, .. } if problem.contains("3 trailing bytes")), "{err:?}");
}

#[test]
fn bad_magic_is_an_error() {
    let mut bytes = vec![0x00, 0x01, 0x08, 0x03, 0, 0, 0, 6, 0, 0, 0, 28, 0, 0, 0, 28];
    bytes.resize(16 + 6 * PIXELS, 0);
    let (tmp, path) = with_train_images(&bytes);
    let err = load_err(tmp.path(), &path);
    assert!(matches!(err, DataError::Format { ref problem, .. } if problem.contains("bad magic")), "{err:?}");
}

#[test]
fn wrong_type_byte_is_an_error() {
    // Type 0x0d (f32) with a consistent f32 payload: still rejected.
    let mut bytes = vec![0x00, 0x00, 0x0d, 0x03, 0, 0, 0, 6, 0, 0, 0, 28, 0, 0, 0, 28];
    bytes.resize(16 + 4 * 6 * PIXELS, 0);
    let (tmp, path) = with_train_images(&bytes);
    let err = load_err(tmp.path(), &path);
    let message = err.to_string();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    assert!(message.contains("0x0d") && message.contains("not supported"), "{message}");
}

#[test]
fn corrupt_gzip_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    Fixture::new(6, 1).write(tmp.path(), [true; 4]);
    let path = file(tmp.path(), TRAIN_IMAGES, true);
    let good = std::fs::read(&path).unwrap();
    // Garbage in the middle of the deflate stream, then a stream cut short.
    let mut garbled = good.clone();
    let mid = garbled.len() / 2;
    garbled[mid..mid + 16].fill(0xff);
    for bytes in [garbled, good[..good.len() / 2].to_vec()] {
        std::fs::write(&path, &bytes).unwrap();
        let err = load_err(tmp.path(), &path);
        assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
        assert!(matches!(read_idx(&path), Err(DataError::Gzip { .. })));
    }
}

#[test]
fn label_ten_is_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fx = Fixture::new(6, 2);
    fx.test_labels[1] = 10;
    fx.write(tmp.path(), [true; 4]);
    let path = file(tmp.path(), TEST_LABELS, true);
    let err = load_err(tmp.path(), &path);
    assert!(matches!(err, DataError::LabelOutOfRange { index: 1, label: 10, .. }), "{err:?}");
}

#[test]
fn count_mismatch_names_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    Fixture::new(6, 1).write(tmp.path(), [true; 4]);
    let labels = file(tmp.path(), TRAIN_LABELS, true);
    write_idx(&labels, &[5], &[1, 2, 3, 4, 5], true).unwrap();
    let images = file(tmp.path(), TRAIN_IMAGES, true);
    let err = load_err(tmp.path(), &labels);
    assert!(err.to_string().contains(&images.display().to_string()));
    assert!(matches!(err, DataError::CountMismatch { image_count: 6, label_count: 5, .. }), "{err:?}");
}

#[test]
fn wrong_image_dims_are_a_shape_error() {
    let tmp = tempfile::tempdir().unwrap();
    Fixture::new(6, 1).write(tmp.path(), [true; 4]);
    let path = file(tmp.path(), TEST_IMAGES, true);
    write_idx(&path, &[1, 27, 28], &[0; 27 * 28], true).unwrap();
    let err = load_err(tmp.path(), &path);
    assert!(matches!(err, DataError::Shape { ref found, .. } if found == &[1, 27, 28]), "{err:?}");
    assert!(err.to_string().contains("[N, 28, 28]"));
    // Labels with two dimensions.
    let labels = file(tmp.path(), TRAIN_LABELS, true);
    write_idx(&labels, &[6, 1], &[0; 6], true).unwrap();
    let err = load_err(tmp.path(), &labels);
    assert!(matches!(err, DataError::Shape { ref found, .. } if found == &[6, 1]), "{err:?}");
}

/// An empty split would give NaN metrics: a file with no images or labels, or a training
/// set too small to hold any out for validation, is refused, naming the file.
#[test]
fn empty_splits_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    Fixture::new(6, 0).write(tmp.path(), [true; 4]);
    let path = file(tmp.path(), TEST_IMAGES, true);
    let err = load_err(tmp.path(), &path);
    assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{} holds no images", path.display()));

    // Labels empty, images not.
    Fixture::new(6, 1).write(tmp.path(), [true; 4]);
    let path = file(tmp.path(), TRAIN_LABELS, true);
    write_idx(&path, &[0], &[], true).unwrap();
    assert_eq!(load_err(tmp.path(), &path).to_string(), format!("{} holds no labels", path.display()));

    // 5 training images: none held out for validation.
    let tmp = tempfile::tempdir().unwrap();
    Fixture::new(5, 1).write(tmp.path(), [false; 4]);
    let path = file(tmp.path(), TRAIN_IMAGES, false);
    let err = load_err(tmp.path(), &path);
    assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
    assert!(err.to_string().contains("holds 5 images, too few to hold out a validation split"), "{err}");
}

/// The real data sets, where `scripts/fetch-data.sh` put them.
#[test]
#[ignore = "needs the data of scripts/fetch-data.sh (about 50 MB)"]
fn real_data_sets_load() {
    let root = default_data_dir();
    for (set, first_label) in [(DataSet::Mnist, 5), (DataSet::FashionMnist, 9)] {
        let data = Mnist::load(&root, set).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((data.train.len(), data.validation.len(), data.test.len()), (50_000, 10_000, 10_000), "{set}");
        assert_eq!(data.train.labels.int64_value(&[0]), first_label, "{set}");
        let mean = data.train.images.mean(Kind::Float).double_value(&[]);
        eprintln!(
            "{set}: train {} validation {} test {}, mean pixel {mean:.4}",
            data.train.len(),
            data.validation.len(),
            data.test.len()
        );
    }
}
