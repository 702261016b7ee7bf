//! MNIST and Fashion-MNIST: 28x28 grey-scale images in 10 classes, loaded from the four
//! standard IDX files into tensors, with a fixed validation split.

use std::fmt;
use std::path::{Path, PathBuf};

use tch::{Device, Tensor};

use super::DataError;
use super::idx::{IdxArray, read_idx};

/// Image side, in pixels.
const SIDE: usize = 28;

/// Pixels per image.
const PIXELS: usize = SIDE * SIDE;

/// Classes (labels are `0..=9`).
const CLASSES: u8 = 10;

/// The most training images held out for validation (MNIST's own size: 60,000 - 50,000).
const MAX_VALIDATION: usize = 10_000;

/// Standard file names, without `.gz`.
const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// A data set in the MNIST IDX layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataSet {
    /// Handwritten digits (LeCun, Cortes and Burges).
    Mnist,
    /// Zalando's article images (Xiao, Rasul and Vollgraf), a drop-in replacement for MNIST.
    FashionMnist,
}

impl DataSet {
    /// The folder holding this data set under the data folder: `mnist` or `fashion-mnist`
    /// (the layout `scripts/fetch-data.sh` makes).
    #[must_use]
    pub fn dir_name(&self) -> &'static str {
        match self {
            DataSet::Mnist => "mnist",
            DataSet::FashionMnist => "fashion-mnist",
        }
    }

    /// The data set's usual name: `MNIST` or `Fashion-MNIST`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            DataSet::Mnist => "MNIST",
            DataSet::FashionMnist => "Fashion-MNIST",
        }
    }
}

impl fmt::Display for DataSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The default data folder, by the same rule as `scripts/fetch-data.sh`: `$SFESS_DATA_DIR`
/// if set and non-empty, else `${XDG_CACHE_HOME:-$HOME/.cache}/sfess-agent/data` (an empty
/// `XDG_CACHE_HOME` counts as unset; without `HOME`, relative to the current folder).
#[must_use]
pub fn default_data_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = non_empty("SFESS_DATA_DIR") {
        return dir;
    }
    let cache = non_empty("XDG_CACHE_HOME")
        .unwrap_or_else(|| non_empty("HOME").unwrap_or_else(|| PathBuf::from(".")).join(".cache"));
    cache.join("sfess-agent").join("data")
}

/// Images with their labels.
#[derive(Debug)]
pub struct Split {
    /// `[N, 784]` `f32` pixels in `[0, 1]`: the stored byte divided by 255, rows of the
    /// 28x28 image one after the other.
    pub images: Tensor,
    /// `[N]` `i64` class labels in `0..=9`.
    pub labels: Tensor,
}

impl Split {
    /// The number of images, N.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    /// Whether there are no images.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same split on `device`.
    #[must_use]
    pub fn to_device(self, device: Device) -> Split {
        Split { images: self.images.to_device(device), labels: self.labels.to_device(device) }
    }

    /// A split from validated bytes: `n * 784` image bytes and `n` labels.
    fn from_bytes(images: &[u8], labels: &[u8]) -> Split {
        debug_assert_eq!(images.len(), labels.len() * PIXELS);
        // byte / 255 computed here, in f32, so that the values are exactly that.
        let scale: Vec<f32> = (0..=255u8).map(|b| f32::from(b) / 255.0).collect();
        let pixels: Vec<f32> = images.iter().map(|&b| scale[usize::from(b)]).collect();
        let labels: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
        Split {
            images: Tensor::from_slice(&pixels).view([labels.len() as i64, PIXELS as i64]),
            labels: Tensor::from_slice(&labels),
        }
    }
}

/// MNIST or Fashion-MNIST, split into training, validation and test sets.
///
/// The validation set is held out from the end of the canonical training set, so it is the
/// same for every seed: with the standard 60,000 training images, `train` is the first
/// 50,000 and `validation` the last 10,000. In general (e.g. for small test fixtures) the
/// last `min(10_000, N / 6)` of the N training images are held out (so N must be at least
/// 6). `test` is the canonical test set (10,000 images for MNIST and Fashion-MNIST). No
/// split is empty.
#[derive(Debug)]
pub struct Mnist {
    /// The training images, less the validation images.
    pub train: Split,
    /// The held-out end of the canonical training set.
    pub validation: Split,
    /// The canonical test set.
    pub test: Split,
}

impl Mnist {
    /// The same data set with every split on `device`.
    #[must_use]
    pub fn to_device(self, device: Device) -> Mnist {
        Mnist {
            train: self.train.to_device(device),
            validation: self.validation.to_device(device),
            test: self.test.to_device(device),
        }
    }

    /// Loads `set` from `root/<set.dir_name()>/` (the layout of `scripts/fetch-data.sh`,
    /// whose default `root` is [`default_data_dir`]).
    ///
    /// # Errors
    /// As [`Mnist::load_dir`].
    pub fn load(root: &Path, set: DataSet) -> Result<Mnist, DataError> {
        Mnist::load_dir(&root.join(set.dir_name()))
    }

    /// Loads a data set from a folder that directly holds the four standard IDX files,
    /// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
    /// `t10k-labels-idx1-ubyte`, each either gzip-compressed with a `.gz` suffix or raw
    /// without one (`.gz` is preferred when both exist).
    ///
    /// # Errors
    /// [`DataError::Missing`] if a file is in neither form; the errors of
    /// [`read_idx`] for an unreadable or malformed file;
    /// [`DataError::Shape`] unless the images are `[N, 28, 28]` and the labels `[N]`;
    /// [`DataError::Empty`] if a file holds no images or labels, or the training set fewer
    /// than 6 images (none would be held out for validation);
    /// [`DataError::CountMismatch`] if the two N differ; [`DataError::LabelOutOfRange`]
    /// for a label above 9.
    pub fn load_dir(dir: &Path) -> Result<Mnist, DataError> {
        let (train_path, train_images, train_labels) = load_pair(dir, TRAIN_IMAGES, TRAIN_LABELS)?;
        let (_, test_images, test_labels) = load_pair(dir, TEST_IMAGES, TEST_LABELS)?;
        let n = train_labels.len();
        let held_out = MAX_VALIDATION.min(n / 6);
        if held_out == 0 {
            let problem =
                format!("holds {n} images, too few to hold out a validation split (the last N / 6; at least 6 needed)");
            return Err(DataError::Empty { path: train_path, problem });
        }
        let cut = n - held_out;
        Ok(Mnist {
            train: Split::from_bytes(&train_images[..cut * PIXELS], &train_labels[..cut]),
            validation: Split::from_bytes(&train_images[cut * PIXELS..], &train_labels[cut..]),
            test: Split::from_bytes(&test_images, &test_labels),
        })
    }
}

/// Finds `name.gz` or `name` in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    [format!("{name}.gz"), name.to_owned()]
        .into_iter()
        .map(|file| dir.join(file))
        .find(|path| path.is_file())
        .ok_or_else(|| DataError::Missing { dir: dir.to_owned(), file: name.to_owned() })
}

/// Reads and validates an image file and its label file: returns the image file's path,
/// the image bytes (`N * 784`, N > 0) and the labels (`N`).
fn load_pair(dir: &Path, images: &str, labels: &str) -> Result<(PathBuf, Vec<u8>, Vec<u8>), DataError> {
    let images_path = find(dir, images)?;
    let labels_path = find(dir, labels)?;
    let IdxArray { dims: image_dims, data: image_data } = read_idx(&images_path)?;
    if image_dims.len() != 3 || image_dims[1] != SIDE || image_dims[2] != SIDE {
        return Err(DataError::Shape { path: images_path, expected: "[N, 28, 28]".to_owned(), found: image_dims });
    }
    let IdxArray { dims: label_dims, data: label_data } = read_idx(&labels_path)?;
    if label_dims.len() != 1 {
        return Err(DataError::Shape { path: labels_path, expected: "[N]".to_owned(), found: label_dims });
    }
    for (path, count, what) in [(&images_path, image_dims[0], "images"), (&labels_path, label_dims[0], "labels")] {
        if count == 0 {
            return Err(DataError::Empty { path: path.clone(), problem: format!("holds no {what}") });
        }
    }
    if image_dims[0] != label_dims[0] {
        return Err(DataError::CountMismatch {
            images: images_path,
            labels: labels_path,
            image_count: image_dims[0],
            label_count: label_dims[0],
        });
    }
    if let Some(index) = label_data.iter().position(|&l| l >= CLASSES) {
        return Err(DataError::LabelOutOfRange { path: labels_path, index, label: label_data[index] });
    }
    Ok((images_path, image_data, label_data))
}
