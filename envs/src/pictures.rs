//! What an environment shows of a trained policy: the data of its figures, which the
//! command line draws (`sfess-agent show`). An environment returns them from
//! [`Environment::pictures`](crate::Environment::pictures), computed on held-out data only.

/// One figure: its file name, its title and what it draws.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// The file's stem in the run's `figures/` folder (`embedding`, `mask`, ...).
    pub name: String,
    /// The title drawn above it.
    pub title: String,
    /// What it draws.
    pub body: PictureBody,
}

/// The kinds of figures environments make.
#[derive(Debug, Clone, PartialEq)]
pub enum PictureBody {
    /// Points in the plane, one class each, drawn in the class's colour with a legend (the
    /// k-NN embedding of the paper's Figure 6).
    Scatter {
        /// `(x, y)` per point.
        points: Vec<[f64; 2]>,
        /// The class of each point, an index into `class_names`.
        classes: Vec<usize>,
        /// The legend's names of the classes.
        class_names: Vec<String>,
        /// Horizontal axis label.
        x_label: String,
        /// Vertical axis label.
        y_label: String,
    },
    /// A grid of small images, a label for each row and a caption under each image.
    Images {
        /// The rows, top to bottom.
        rows: Vec<ImageRow>,
    },
}

/// A row of images.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    /// Written left of the row (lines split at `\n`).
    pub label: String,
    /// The images, left to right.
    pub panels: Vec<Panel>,
}

/// One image of `width × height` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Columns of pixels.
    pub width: usize,
    /// Rows of pixels.
    pub height: usize,
    /// `width · height` values, row-major, drawn with `scale`.
    pub values: Vec<f64>,
    /// How values become colours.
    pub scale: Scale,
    /// Pixels not observed (a masked input's unselected pixels), drawn in a colour of their
    /// own; empty for none.
    pub hidden: Vec<bool>,
    /// Pixels to circle (sensors), by index `row · width + column`.
    pub marks: Vec<usize>,
    /// Written under the image (lines split at `\n`).
    pub caption: String,
}

/// How a panel's values become colours.
#[derive(Debug, Clone, PartialEq)]
pub enum Scale {
    /// Grey levels: 0 black, 1 white (images with pixels in `[0, 1]`).
    Grey,
    /// A colour map from `min` to `max` (viridis), with a colour bar labelled `label`.
    Heat {
        /// The value of the darkest colour.
        min: f64,
        /// The value of the brightest colour.
        max: f64,
        /// What the colour bar measures.
        label: String,
    },
}

impl Panel {
    /// A square image of `values` (its side is `√len`) in `scale`, captioned `caption`.
    ///
    /// # Errors
    /// [`EnvError::Policy`](crate::EnvError::Policy) when `values.len()` is not a square.
    pub fn square(values: Vec<f64>, scale: Scale, caption: impl Into<String>) -> Result<Self, crate::EnvError> {
        let side = square_side(values.len())
            .ok_or_else(|| crate::EnvError::Policy(format!("{} values do not make a square image", values.len())))?;
        Ok(Self {
            width: side,
            height: side,
            values,
            scale,
            hidden: Vec::new(),
            marks: Vec::new(),
            caption: caption.into(),
        })
    }

    /// The panel with `marks` circled.
    pub fn with_marks(mut self, marks: Vec<usize>) -> Self {
        self.marks = marks;
        self
    }

    /// The panel with the pixels where `shown` is false drawn as not observed.
    pub fn with_shown(mut self, shown: &[bool]) -> Self {
        self.hidden = shown.iter().map(|&s| !s).collect();
        self
    }
}

/// The side of a square image of `pixels` pixels, if it is one.
pub fn square_side(pixels: usize) -> Option<usize> {
    let side = (pixels as f64).sqrt().round() as usize;
    (side * side == pixels && side > 0).then_some(side)
}

/// The ten classes' names of MNIST (`digit 0` … `digit 9`) or Fashion-MNIST.
pub fn class_names(set: crate::data::DataSet) -> Vec<String> {
    match set {
        crate::data::DataSet::Mnist => (0..10).map(|d| format!("digit {d}")).collect(),
        crate::data::DataSet::FashionMnist => {
            ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
                .map(str::to_owned)
                .to_vec()
        }
    }
}

/// Images shown per figure row (test images, their reconstructions, ...).
pub const IMAGES_PER_ROW: usize = 8;

/// The first `count` rows of `images` (`[N, P]`, any real kind, any device) as host vectors.
///
/// # Errors
/// libtorch errors.
pub fn first_rows(images: &tch::Tensor, count: usize) -> Result<Vec<Vec<f64>>, crate::EnvError> {
    let count = count.min(images.size()[0].max(0) as usize);
    let rows = images.f_narrow(0, 0, count as i64)?.f_to_kind(tch::Kind::Double)?.f_to_device(tch::Device::Cpu)?;
    let width = rows.size().get(1).copied().unwrap_or(0) as usize;
    let flat = Vec::<f64>::try_from(rows.f_flatten(0, -1)?)?;
    Ok(flat.chunks(width.max(1)).take(count).map(<[f64]>::to_vec).collect())
}

/// What a policy of one global subset (an observation without inputs) selects: its top-k
/// items and, when the policy is a law, its inclusion probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalSelection {
    /// Whether each item is among the top k.
    pub chosen: Vec<bool>,
    /// `P(z_i = 1)` of each item.
    pub marginals: Option<Vec<f64>>,
}

impl GlobalSelection {
    /// The selection of `policy`.
    ///
    /// # Errors
    /// Policy and libtorch errors.
    pub fn of(policy: &dyn crate::EvalPolicy) -> Result<Self, crate::EnvError> {
        let observation = crate::Observation { inputs: Vec::new() };
        let action = policy.act(&observation)?.f_to_kind(tch::Kind::Double)?.f_to_device(tch::Device::Cpu)?;
        let chosen = Vec::<f64>::try_from(action.f_flatten(0, -1)?)?.into_iter().map(|v| v == 1.0).collect();
        let marginals = match policy.marginals(&observation)? {
            Some(marginals) => Some(Vec::<f64>::try_from(marginals.f_narrow(0, 0, 1)?.f_flatten(0, -1)?)?),
            None => None,
        };
        Ok(Self { chosen, marginals })
    }

    /// The top-k items, ascending.
    pub fn items(&self) -> Vec<usize> {
        self.chosen.iter().enumerate().filter(|(_, c)| **c).map(|(i, _)| i).collect()
    }

    /// The top-k as a k-hot row `[1, n]` (f32, on the CPU).
    ///
    /// # Errors
    /// libtorch errors.
    pub fn k_hot(&self) -> Result<tch::Tensor, crate::EnvError> {
        crate::env::k_hot_rows(&[self.items()], self.chosen.len())
    }

    /// `mask`: a global subset of the pixels of a square image, the inclusion probability
    /// of each pixel beside the top-k pixels.
    ///
    /// # Errors
    /// `n` is not a square.
    pub fn pixel_mask(&self, env: &str) -> Result<Picture, crate::EnvError> {
        let k = self.items().len();
        let mut panels = Vec::new();
        if let Some(marginals) = self.marginals.clone() {
            let heat = Scale::Heat { min: 0.0, max: 1.0, label: "inclusion probability".to_owned() };
            panels.push(Panel::square(marginals, heat, "each pixel's inclusion\nprobability P(z_i = 1)")?);
        }
        let top_k = self.chosen.iter().map(|&c| f64::from(u8::from(c))).collect();
        panels.push(Panel::square(top_k, Scale::Grey, format!("the top-{k} pixels\n(white)"))?);
        Ok(Picture {
            name: "mask".to_owned(),
            title: format!("{env}: which of the pixels the policy selects"),
            body: PictureBody::Images { rows: vec![ImageRow { label: String::new(), panels }] },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_sides() {
        assert_eq!(square_side(784), Some(28));
        assert_eq!(square_side(256), Some(16));
        assert_eq!(square_side(100), Some(10));
        assert_eq!(square_side(99), None);
        assert_eq!(square_side(0), None);
    }
}
