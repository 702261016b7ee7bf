//! Data sets on disk: the IDX file format ([`idx`]) and the MNIST / Fashion-MNIST
//! image classification data sets ([`mnist`]).
//!
//! `scripts/fetch-data.sh` downloads both data sets into [`default_data_dir`]; any folder
//! with the four standard IDX files (gzip or raw) works too ([`Mnist::load_dir`]).

pub mod idx;
pub mod mnist;

use std::path::PathBuf;

pub use idx::{IdxArray, read_idx, write_idx};
pub use mnist::{DataSet, Mnist, Split, default_data_dir};

/// A data file that cannot be used. Every variant names the file (or folder) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file cannot be read or written.
    #[error("cannot access {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file starts like a gzip file but does not decompress.
    #[error(
        "{} is not a valid gzip file ({source}); replace it, or delete its folder and run scripts/fetch-data.sh",
        .path.display()
    )]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decompressor said.
        source: std::io::Error,
    },
    /// The (decompressed) contents are not a valid IDX file of unsigned bytes.
    #[error("{} is not a valid IDX file: {problem}", .path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A valid IDX file with dimensions other than the data set needs.
    #[error("{} has dimensions {found:?}, expected {expected}", .path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The dimensions the data set needs, e.g. `[N, 28, 28]`.
        expected: String,
        /// The dimensions the file has.
        found: Vec<usize>,
    },
    /// A class label outside `0..=9`.
    #[error("{} has label {label} at index {index}, outside the classes 0..=9", .path.display())]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// The position of the first bad label.
        index: usize,
        /// Its value.
        label: u8,
    },
    /// The image and label files of one split hold different numbers of items.
    #[error(
        "{} has {image_count} images but {} has {label_count} labels; they must match",
        .images.display(),
        .labels.display()
    )]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// Images in the image file.
        image_count: usize,
        /// Labels in the label file.
        label_count: usize,
    },
    /// A valid file of images or labels that holds none, or a training set too small to
    /// hold out a validation split: an empty split would give NaN metrics.
    #[error("{} {problem}", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// What it holds: `holds no images`, or too few images for a validation split.
        problem: String,
    },
    /// Neither `file.gz` nor `file` exists in the data folder.
    #[error(
        "neither {0}/{file}.gz nor {0}/{file} exists: run scripts/fetch-data.sh or point --data-dir at a folder with the MNIST IDX files",
        .dir.display()
    )]
    Missing {
        /// The data folder.
        dir: PathBuf,
        /// The file's standard name, without `.gz` (e.g. `train-images-idx3-ubyte`).
        file: String,
    },
}
