//! The figures of what a run learned (`sfess-agent show`): the environments' pictures
//! ([`sfess_envs::pictures`]: scatter plots and grids of images) and the heat map of the
//! marginals over training. Pixel images are drawn as bitmaps (embedded as PNG in the SVG).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use sfess_envs::pictures::{ImageRow, Panel, Picture, PictureBody, Scale};

use super::{TAB10, caption_font, plot_error, write_both};

/// The width of the scatter plot's legend, at its right.
const LEGEND_WIDTH: u32 = 150;

/// The colour of pixels a masked input does not show.
const HIDDEN: RGBColor = RGBColor(70, 110, 160);
/// The circles around sensors.
const MARK: RGBColor = RGBColor(230, 20, 20);

/// Draws `picture` as `dir/NAME.svg` and `dir/NAME.png`.
///
/// # Errors
/// A picture whose data do not fit (a panel's values not `width × height`, a class out of
/// range); the figure cannot be written.
pub fn picture(dir: &Path, picture: &Picture) -> anyhow::Result<Vec<PathBuf>> {
    let stem = dir.join(&picture.name);
    match &picture.body {
        PictureBody::Scatter { points, classes, class_names, x_label, y_label } => {
            anyhow::ensure!(
                points.len() == classes.len(),
                "{}: {} points but {} classes",
                picture.name,
                points.len(),
                classes.len()
            );
            if let Some(class) = classes.iter().find(|&&c| c >= class_names.len()) {
                bail!("{}: class {class} has no name ({} names)", picture.name, class_names.len());
            }
            let scatter = Scatter { title: &picture.title, points, classes, class_names, x_label, y_label };
            write_both(&stem, (900, 720), |root| scatter.draw(root), |root| scatter.draw(root))
        }
        PictureBody::Images { rows } => {
            for panel in rows.iter().flat_map(|row| &row.panels) {
                check_panel(&picture.name, panel)?;
            }
            let grid = Grid::new(&picture.title, rows);
            write_both(&stem, grid.size(), |root| grid.draw(root), |root| grid.draw(root))
        }
    }
}

fn check_panel(name: &str, panel: &Panel) -> anyhow::Result<()> {
    let pixels = panel.width * panel.height;
    anyhow::ensure!(pixels > 0, "{name}: an image of {} × {} pixels", panel.width, panel.height);
    anyhow::ensure!(
        panel.values.len() == pixels,
        "{name}: an image of {} × {} pixels has {} values",
        panel.width,
        panel.height,
        panel.values.len()
    );
    anyhow::ensure!(panel.hidden.is_empty() || panel.hidden.len() == pixels, "{name}: a mask of the wrong size");
    if let Some(mark) = panel.marks.iter().find(|&&m| m >= pixels) {
        bail!("{name}: mark {mark} is outside the {pixels} pixels");
    }
    Ok(())
}

struct Scatter<'a> {
    title: &'a str,
    points: &'a [[f64; 2]],
    classes: &'a [usize],
    class_names: &'a [String],
    x_label: &'a str,
    y_label: &'a str,
}

impl Scatter<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(plot_error)?;
        let range = |axis: usize| {
            let (lo, hi) = self
                .points
                .iter()
                .map(|p| p[axis])
                .filter(|v| v.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            if lo > hi {
                return -1.0..1.0;
            }
            let pad = ((hi - lo) * 0.04).max(1e-9);
            (lo - pad)..(hi + pad)
        };
        let (plot, legend_area) = root.split_horizontally(root.dim_in_pixel().0 - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .caption(self.title, caption_font(&plot, self.title, 22))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(range(0), range(1))
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .label_style(("sans-serif", 17))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(plot_error)?;
        let style = text_style(18);
        let top = plot.dim_in_pixel().1 as i32 / 2 - 14 * self.class_names.len() as i32;
        for (class, name) in self.class_names.iter().enumerate() {
            let color = TAB10[class % TAB10.len()];
            let points = self.points.iter().zip(self.classes).filter(|(_, c)| **c == class);
            chart
                .draw_series(points.map(|(p, _)| Circle::new((p[0], p[1]), 2, color.mix(0.6).filled())))
                .map_err(plot_error)?;
            let y = top + 28 * class as i32;
            legend_area.draw(&Circle::new((12, y), 6, color.filled())).map_err(plot_error)?;
            legend_area.draw(&Text::new(name.clone(), (26, y - 8), style.clone())).map_err(plot_error)?;
        }
        Ok(())
    }
}

/// The layout of a grid of images, in pixels.
struct Grid<'a> {
    title: &'a str,
    rows: &'a [ImageRow],
    /// Side of each drawn image.
    cell: u32,
    /// Width of the row labels' column.
    label_width: u32,
    /// The heat scales, one colour bar each, at the right.
    bars: Vec<(f64, f64, String)>,
    /// Height of the captions under each row (their longest, in lines).
    caption_height: u32,
}

const TITLE_HEIGHT: u32 = 50;
/// Height of a line of a caption (16 px type).
const LINE_HEIGHT: u32 = 20;
const GAP: u32 = 14;
const BAR_WIDTH: u32 = 130;
/// Widths of a character, about: of the row labels (18 px type) and of the title (24 px).
const LABEL_CHAR: u32 = 10;
const TITLE_CHAR: u32 = 13;

impl<'a> Grid<'a> {
    fn new(title: &'a str, rows: &'a [ImageRow]) -> Self {
        let columns = rows.iter().map(|r| r.panels.len()).max().unwrap_or(1);
        let cell = match columns {
            0..=2 => 280,
            3..=4 => 180,
            _ => 112,
        };
        let longest = rows.iter().flat_map(|r| r.label.lines()).map(|l| l.chars().count()).max().unwrap_or(0) as u32;
        let label_width = if longest == 0 { GAP } else { longest * LABEL_CHAR + 2 * GAP };
        let lines = rows.iter().flat_map(|r| &r.panels).map(|p| p.caption.lines().count()).max().unwrap_or(0) as u32;
        let caption_height = lines * LINE_HEIGHT + 6;
        let mut bars: Vec<(f64, f64, String)> = Vec::new();
        for panel in rows.iter().flat_map(|r| &r.panels) {
            if let Scale::Heat { min, max, label } = &panel.scale
                && !bars.iter().any(|(lo, hi, l)| lo == min && hi == max && l == label)
            {
                bars.push((*min, *max, label.clone()));
            }
        }
        Self { title, rows, cell, label_width, bars, caption_height }
    }

    fn columns(&self) -> u32 {
        self.rows.iter().map(|r| r.panels.len()).max().unwrap_or(1).max(1) as u32
    }

    fn size(&self) -> (u32, u32) {
        let width = self.label_width + self.columns() * (self.cell + GAP) + GAP + BAR_WIDTH * self.bars.len() as u32;
        let title_width = self.title.chars().count() as u32 * TITLE_CHAR + 2 * GAP;
        let height = TITLE_HEIGHT + self.rows.len() as u32 * self.row_height() + GAP;
        (width.max(title_width).max(400), height)
    }

    fn row_height(&self) -> u32 {
        self.cell + self.caption_height + GAP
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(plot_error)?;
        let (width, height) = self.size();
        root.draw(&Text::new(self.title.to_owned(), (GAP as i32, 14), text_style(24))).map_err(plot_error)?;
        for (r, row) in self.rows.iter().enumerate() {
            let top = (TITLE_HEIGHT + r as u32 * self.row_height()) as i32;
            let lines = row.label.lines().count() as i32;
            let label_y = top + self.cell as i32 / 2 - 11 * lines;
            draw_lines(&root, &row.label, (GAP as i32, label_y), 18, 22)?;
            for (c, panel) in row.panels.iter().enumerate() {
                let left = (self.label_width + c as u32 * (self.cell + GAP)) as i32;
                self.draw_panel(&root, panel, (left, top))?;
                draw_lines(&root, &panel.caption, (left, top + self.cell as i32 + 5), 16, LINE_HEIGHT as i32)?;
            }
        }
        let bar_top = TITLE_HEIGHT as i32;
        let bar_height = (height - TITLE_HEIGHT - GAP).min(self.cell * 2 + self.caption_height) as i32;
        for (i, (min, max, label)) in self.bars.iter().enumerate() {
            let left = (width - BAR_WIDTH * (self.bars.len() - i) as u32) as i32 + GAP as i32;
            colour_bar(&root, (left, bar_top), bar_height, *min, *max, label)?;
        }
        Ok(())
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        panel: &Panel,
        (left, top): (i32, i32),
    ) -> anyhow::Result<()> {
        let scale = (self.cell / panel.width.max(panel.height) as u32).max(1);
        let (w, h) = (panel.width as u32 * scale, panel.height as u32 * scale);
        let mut buffer = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let pixel = (y / scale) as usize * panel.width + (x / scale) as usize;
                let colour = if panel.hidden.get(pixel).copied().unwrap_or(false) {
                    HIDDEN
                } else {
                    colour_of(&panel.scale, panel.values[pixel])
                };
                buffer.extend([colour.0, colour.1, colour.2]);
            }
        }
        let image = BitMapElement::with_owned_buffer((left, top), (w, h), buffer)
            .context("an image buffer of the wrong size")?;
        root.draw(&image).map_err(plot_error)?;
        root.draw(&Rectangle::new([(left - 1, top - 1), (left + w as i32, top + h as i32)], BLACK.stroke_width(1)))
            .map_err(plot_error)?;
        let radius = (scale as i32 * 3 / 4).max(3);
        for &mark in &panel.marks {
            let (x, y) = ((mark % panel.width) as u32 * scale, (mark / panel.width) as u32 * scale);
            let centre = (left + (x + scale / 2) as i32, top + (y + scale / 2) as i32);
            root.draw(&Circle::new(centre, radius, MARK.stroke_width(2))).map_err(plot_error)?;
        }
        Ok(())
    }
}

/// Black text of `size` pixels.
fn text_style(size: u32) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size).into_font()).color(&BLACK)
}

/// The lines of `text` from `(left, top)` down, `spacing` pixels apart.
fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    text: &str,
    (left, top): (i32, i32),
    size: u32,
    spacing: i32,
) -> anyhow::Result<()> {
    for (i, line) in text.lines().enumerate() {
        root.draw(&Text::new(line.to_owned(), (left, top + spacing * i as i32), text_style(size)))
            .map_err(plot_error)?;
    }
    Ok(())
}

fn colour_of(scale: &Scale, value: f64) -> RGBColor {
    match scale {
        Scale::Grey => {
            let level = (value.clamp(0.0, 1.0) * 255.0).round() as u8;
            RGBColor(level, level, level)
        }
        Scale::Heat { min, max, .. } => heat(value, *min, *max),
    }
}

/// Viridis, from `min` (dark purple) to `max` (yellow); NaN is white.
fn heat(value: f64, min: f64, max: f64) -> RGBColor {
    if value.is_nan() {
        return WHITE;
    }
    let span = if max > min { max - min } else { 1.0 };
    ViridisRGB::get_color((((value - min) / span).clamp(0.0, 1.0)) as f32)
}

/// A vertical colour bar from `min` (bottom) to `max` (top) with five labelled ticks and
/// `label` beside it.
fn colour_bar<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (left, top): (i32, i32),
    height: i32,
    min: f64,
    max: f64,
    label: &str,
) -> anyhow::Result<()> {
    let (w, h) = (16u32, height.max(20) as u32);
    let mut buffer = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        let value = max - (max - min) * f64::from(y) / f64::from(h - 1);
        let colour = heat(value, min, max);
        for _ in 0..w {
            buffer.extend([colour.0, colour.1, colour.2]);
        }
    }
    let image = BitMapElement::with_owned_buffer((left, top), (w, h), buffer).context("a colour bar buffer")?;
    root.draw(&image).map_err(plot_error)?;
    root.draw(&Rectangle::new([(left, top), (left + w as i32, top + h as i32)], BLACK.stroke_width(1)))
        .map_err(plot_error)?;
    let style = text_style(15);
    for i in 0..5 {
        let fraction = f64::from(i) / 4.0;
        let y = top + ((1.0 - fraction) * f64::from(h)) as i32;
        let value = min + (max - min) * fraction;
        root.draw(&Text::new(short_number(value), (left + w as i32 + 5, y - 8), style.clone())).map_err(plot_error)?;
    }
    let vertical = TextStyle::from(("sans-serif", 16).into_font().transform(FontTransform::Rotate270)).color(&BLACK);
    let half = (label.chars().count() * 4) as i32;
    root.draw(&Text::new(label.to_owned(), (left + w as i32 + 66, top + h as i32 / 2 + half), vertical))
        .map_err(plot_error)?;
    Ok(())
}

/// A tick label: three significant digits.
fn short_number(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let magnitude = value.abs().log10().floor();
    if !(-3.0..4.0).contains(&magnitude) {
        return format!("{value:.2e}");
    }
    let decimals = (2.0 - magnitude).max(0.0) as usize;
    format!("{value:.decimals$}")
}

/// The marginals of a run over training: one column per validation.
#[derive(Debug, Clone)]
pub struct MarginalsMap {
    /// Title.
    pub title: String,
    /// Vertical axis label (what a row is).
    pub y_label: String,
    /// The validations' steps, increasing.
    pub steps: Vec<u64>,
    /// `rows[i][j]`: the value of row `i` at validation `j`.
    pub rows: Vec<Vec<f64>>,
    /// Tick labels of the rows, when there are few enough to name: `(row, label)`.
    pub row_labels: Vec<(usize, String)>,
}

/// Draws `map` as a heat map, `stem.svg` and `stem.png`.
///
/// # Errors
/// No validation or no row; rows of different lengths; the figure cannot be written.
pub fn marginals_map(stem: &Path, map: &MarginalsMap) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(!map.steps.is_empty() && !map.rows.is_empty(), "no marginals were recorded");
    anyhow::ensure!(map.rows.iter().all(|r| r.len() == map.steps.len()), "rows of marginals of different lengths");
    write_both(stem, (900, 560), |root| draw_map(root, map), |root| draw_map(root, map))
}

fn draw_map<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, map: &MarginalsMap) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(plot_error)?;
    let (main, bar) = root.split_horizontally(root.dim_in_pixel().0 - BAR_WIDTH);
    let rows = map.rows.len();
    let last = *map.steps.last().unwrap_or(&1) as f64;
    // Column j covers the steps between the midpoints to its neighbours.
    let edges: Vec<f64> = {
        let s: Vec<f64> = map.steps.iter().map(|&s| s as f64).collect();
        let mut edges = vec![s[0] - if s.len() > 1 { (s[1] - s[0]) / 2.0 } else { 0.5 }];
        edges.extend(s.windows(2).map(|w| (w[0] + w[1]) / 2.0));
        edges.push(s[s.len() - 1] + if s.len() > 1 { (s[s.len() - 1] - s[s.len() - 2]) / 2.0 } else { 0.5 });
        edges
    };
    // The axis spans the recorded steps, from the first to the last (the run's end): the
    // first and last columns are half as wide as the others, never past the run. One
    // record gets a column of one step.
    let first = map.steps[0] as f64;
    let x_range = if map.steps.len() > 1 { first..last } else { first - 0.5..first + 0.5 };
    let mut chart = ChartBuilder::on(&main)
        .caption(&map.title, caption_font(&main, &map.title, 21))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(if map.row_labels.is_empty() { 60 } else { 90 })
        // Row i spans −(i + 1) .. −i: row 0 at the top, and ticks at round counts from it.
        .build_cartesian_2d(x_range.clone(), -(rows as f64)..0f64)
        .map_err(plot_error)?;
    let labels = &map.row_labels;
    let named = |y: &f64| {
        let row = -y - 0.5;
        labels.iter().find(|(i, _)| (*i as f64 - row).abs() < 0.25).map(|(_, l)| l.clone()).unwrap_or_default()
    };
    let counted = |y: &f64| format!("{:.0}", (-y).max(0.0));
    let x_formatter = |x: &f64| format!("{x:.0}");
    let mut mesh = chart.configure_mesh();
    mesh.disable_mesh()
        .x_desc("training step")
        .y_desc(&map.y_label)
        .x_label_formatter(&x_formatter)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 16));
    if labels.is_empty() {
        mesh.y_label_formatter(&counted);
    } else {
        // Ticks at the rows' centres: 2·rows ticks over the axis put one on each.
        mesh.y_labels(2 * rows + 1).y_label_formatter(&named);
    }
    mesh.draw().map_err(plot_error)?;
    let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
    let (w, h) = ((x_pixels.end - x_pixels.start).max(1) as u32, (y_pixels.end - y_pixels.start).max(1) as u32);
    let mut buffer = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        let row = ((f64::from(y) + 0.5) / f64::from(h) * rows as f64) as usize;
        for x in 0..w {
            let step = x_range.start + (f64::from(x) + 0.5) / f64::from(w) * (x_range.end - x_range.start);
            let column = edges.partition_point(|&e| e <= step).saturating_sub(1).min(map.steps.len() - 1);
            let colour = heat(map.rows[row.min(rows - 1)][column], 0.0, 1.0);
            buffer.extend([colour.0, colour.1, colour.2]);
        }
    }
    let image = BitMapElement::with_owned_buffer((x_pixels.start, y_pixels.start), (w, h), buffer)
        .context("a heat map buffer")?;
    main.draw(&image).map_err(plot_error)?;
    let bar_height = (h as i32 - 20).max(40);
    colour_bar(&bar, (8, y_pixels.start), bar_height, 0.0, 1.0, "inclusion probability")?;
    Ok(())
}

/// Panels of curves side by side (the learning curve: training loss, validation metric).
///
/// # Errors
/// The figure cannot be written.
pub fn curve_panels(stem: &Path, panels: &[super::CurvePanel]) -> anyhow::Result<Vec<PathBuf>> {
    let width = 560 * panels.len().max(1) as u32;
    write_both(stem, (width, 440), |root| draw_curve_panels(root, panels), |root| draw_curve_panels(root, panels))
}

fn draw_curve_panels<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &[super::CurvePanel],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(plot_error)?;
    for (area, panel) in root.split_evenly((1, panels.len().max(1))).into_iter().zip(panels) {
        super::draw_curves(area, panel)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::{Curve, CurvePanel};

    /// A curve drawn exactly under another says so in its legend, and a long title is drawn
    /// smaller rather than cut (its text is whole in the SVG, at a size below the default).
    #[test]
    fn a_hidden_curve_is_named_and_a_long_title_fits() {
        let tmp = tempfile::tempdir().unwrap();
        let points = vec![(0.0, 1.0, 0.0), (100.0, 2.0, 0.0)];
        let title = "feature-selection-knn-fashion with sfess-vr, seed 12345: validation accuracy (higher is better)";
        let panel = CurvePanel {
            title: title.to_owned(),
            x_label: "step".to_owned(),
            y_label: "accuracy".to_owned(),
            curves: vec![
                Curve { name: "gs".to_owned(), points: points.clone() },
                Curve { name: "stgs".to_owned(), points },
                Curve { name: "sfess".to_owned(), points: vec![(0.0, 1.0, 0.0), (100.0, 3.0, 0.0)] },
            ],
            baselines: Vec::new(),
            log_y: false,
        };
        let short = CurvePanel { title: "short".to_owned(), ..panel.clone() };
        curve_panels(&tmp.path().join("curves"), &[panel]).unwrap();
        curve_panels(&tmp.path().join("short"), &[short]).unwrap();
        let svg = std::fs::read_to_string(tmp.path().join("curves.svg")).unwrap();
        assert!(svg.contains("stgs (the same as gs)"), "the hidden curve is named");
        assert!(!svg.contains("sfess (the same as"), "a different curve is not");
        // The caption's size: the `font-size` of the <text> element that holds `text`.
        let font_size = |svg: &str, text: &str| -> f64 {
            let lines: Vec<&str> = svg.lines().collect();
            let at = lines.iter().position(|line| line.trim() == text).expect("the whole title, uncut");
            let element = lines[at - 1];
            let size = element.split("font-size=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
            size.parse().unwrap()
        };
        let default = font_size(&std::fs::read_to_string(tmp.path().join("short.svg")).unwrap(), "short");
        let fitted = font_size(&svg, title);
        assert!(fitted < default, "the long title is drawn smaller: {fitted} against {default}");
    }
}
