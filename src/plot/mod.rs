//! Figures as SVG and PNG, drawn in memory and written atomically
//! ([`crate::system::files::write_atomically`]: never half-written, never through a link).
//!
//! After the paper: bars with one-standard-deviation error bars per estimator (Figure 2), a
//! line with error bars against a logarithmic axis (Figure 3c), curves with bands (the
//! learning curves of `compare`); and in [`pictures`], what a run learned (`show`).

pub mod pictures;

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::system::files::write_atomically;

/// One bar: its label, height and error (one standard deviation).
#[derive(Debug, Clone)]
pub struct Bar {
    /// Label under the bar group.
    pub label: String,
    /// Heights of the bars of the group, one per series.
    pub values: Vec<(f64, f64)>,
}

/// A panel of grouped bars.
#[derive(Debug, Clone)]
pub struct BarPanel {
    /// Panel title.
    pub title: String,
    /// Label of the vertical axis (with its unit).
    pub y_label: String,
    /// Names of the series (the legend).
    pub series: Vec<String>,
    /// The groups.
    pub groups: Vec<Bar>,
}

/// A line with error bars, plus optional horizontal reference lines.
#[derive(Debug, Clone)]
pub struct LinePanel {
    /// Panel title.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Name of the line in the legend.
    pub name: String,
    /// `(x, mean, std)`, `x > 0` (drawn on a log₂ axis).
    pub points: Vec<(f64, f64, f64)>,
    /// Horizontal references: `(name, value, std)`.
    pub references: Vec<(String, f64, f64)>,
}

const SIZE: (u32, u32) = (1000, 420);
const PALETTE: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40)];

/// Writes `stem.svg` and `stem.png` with `draw`: each drawn in memory, then written
/// atomically; an error names the file.
fn write_both(
    stem: &Path,
    size: (u32, u32),
    draw_svg: impl Fn(DrawingArea<SVGBackend, Shift>) -> anyhow::Result<()>,
    draw_png: impl Fn(DrawingArea<BitMapBackend, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<PathBuf>> {
    let (svg_path, png_path) = (stem.with_extension("svg"), stem.with_extension("png"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_svg(root.clone())?;
        root.present().map_err(|e| anyhow!("{e}")).with_context(|| format!("drawing {}", svg_path.display()))?;
    }
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw_png(root.clone())?;
        root.present().map_err(|e| anyhow!("{e}")).with_context(|| format!("drawing {}", png_path.display()))?;
    }
    let png = encode_png(&pixels, size).with_context(|| format!("encoding {}", png_path.display()))?;
    write_atomically(&svg_path, svg.as_bytes())?;
    write_atomically(&png_path, &png)?;
    Ok(vec![svg_path, png_path])
}

/// RGB pixels, row by row, as a PNG file's bytes.
fn encode_png(pixels: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, png::EncodingError> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(bytes)
}

/// Panels of grouped bars side by side, as `stem.svg` and `stem.png`.
///
/// # Errors
/// The figure cannot be drawn or written.
pub fn bars(stem: &Path, panels: &[BarPanel]) -> anyhow::Result<Vec<PathBuf>> {
    write_both(stem, SIZE, |root| draw_bars(root, panels), |root| draw_bars(root, panels))
}

/// A line against a log₂ axis, as `stem.svg` and `stem.png`.
///
/// # Errors
/// The figure cannot be drawn or written.
pub fn line(stem: &Path, panel: &LinePanel) -> anyhow::Result<Vec<PathBuf>> {
    write_both(stem, (700, 420), |root| draw_line(root, panel), |root| draw_line(root, panel))
}

/// The legend of every figure: framed, on a translucent white box, at `position`.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(position)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(plot_error)
}

/// Curves with at most this many points have each point marked.
const MARKED_POINTS: usize = 25;

/// The caption's font on `area`: sans-serif at `size`, or at the largest smaller size (down to
/// 10) at which `title` fits the area's width inside the chart's margins, so that a long title
/// is never cut at the figure's edges. Sizes the backend cannot measure keep `size`.
pub(crate) fn caption_font<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    size: u32,
) -> (&'static str, u32) {
    let room = area.dim_in_pixel().0.saturating_sub(2 * 12 + 8);
    let width = |size: u32| area.estimate_text_size(title, &TextStyle::from(("sans-serif", size).into_font())).ok();
    let fitted = match width(size) {
        None => size,
        Some((w, _)) if w <= room => size,
        Some(_) => (10..size).rev().find(|&smaller| width(smaller).is_some_and(|(w, _)| w <= room)).unwrap_or(10),
    };
    ("sans-serif", fitted)
}

fn plot_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the figure: {e}")
}

fn draw_bars<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, panels: &[BarPanel]) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(plot_error)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        let top = panel.groups.iter().flat_map(|g| g.values.iter().map(|(m, s)| m + s)).fold(0.0f64, f64::max);
        let top = if top > 0.0 { top * 1.15 } else { 1.0 };
        let groups = panel.groups.len();
        let series = panel.series.len().max(1);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, caption_font(area, &panel.title, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..groups as f64 - 0.5, 0f64..top)
            .map_err(plot_error)?;
        let labels: Vec<String> = panel.groups.iter().map(|g| g.label.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups)
            .x_label_formatter(&|x| {
                // Group g is centred on x = g.
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(&panel.y_label)
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(plot_error)?;
        let width = 0.8 / series as f64;
        for (s, name) in panel.series.iter().enumerate() {
            let color = PALETTE[s % PALETTE.len()];
            let rects = panel.groups.iter().enumerate().map(|(g, bar)| {
                let x0 = g as f64 - 0.4 + s as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.9, bar.values[s].0)], color.filled())
            });
            chart
                .draw_series(rects)
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled()));
            let errors = panel.groups.iter().enumerate().map(|(g, bar)| {
                let x = g as f64 - 0.4 + (s as f64 + 0.45) * width;
                let (mean, std) = bar.values[s];
                ErrorBar::new_vertical(x, (mean - std).max(0.0), mean, mean + std, BLACK.stroke_width(1), 8)
            });
            chart.draw_series(errors).map_err(plot_error)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}

fn draw_line<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, panel: &LinePanel) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(plot_error)?;
    let (x_min, x_max) = panel.points.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let top =
        panel.points.iter().map(|p| p.1 + p.2).chain(panel.references.iter().map(|r| r.1 + r.2)).fold(0.0f64, f64::max)
            * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(&panel.title, caption_font(&root, &panel.title, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min / 1.3..x_max * 1.3).log_scale(), 0f64..top.max(1e-3))
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(plot_error)?;
    let blue = PALETTE[0];
    chart
        .draw_series(LineSeries::new(panel.points.iter().map(|p| (p.0, p.1)), blue.stroke_width(2)))
        .map_err(plot_error)?
        .label(&panel.name)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], blue.stroke_width(2)));
    chart
        .draw_series(
            panel
                .points
                .iter()
                .map(|&(x, m, s)| ErrorBar::new_vertical(x, (m - s).max(0.0), m, m + s, blue.filled(), 8)),
        )
        .map_err(plot_error)?;
    for (i, (name, value, std)) in panel.references.iter().enumerate() {
        let color = PALETTE[(i + 1) % PALETTE.len()];
        let (lo, hi) = (x_min / 1.3, x_max * 1.3);
        chart
            .draw_series(LineSeries::new([(lo, *value), (hi, *value)], color.stroke_width(2)))
            .map_err(plot_error)?
            .label(format!("{name} ({value:.3} ± {std:.3})"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
    Ok(())
}

/// One line with a band of one standard deviation.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Legend name.
    pub name: String,
    /// `(x, mean, std)`.
    pub points: Vec<(f64, f64, f64)>,
}

/// Curves on linear axes.
#[derive(Debug, Clone)]
pub struct CurvePanel {
    /// Title.
    pub title: String,
    /// Horizontal axis label.
    pub x_label: String,
    /// Vertical axis label.
    pub y_label: String,
    /// The curves.
    pub curves: Vec<Curve>,
    /// Horizontal dashed lines across the whole axis: `(legend name, value)` (methods
    /// that do not train, such as a random subset).
    pub baselines: Vec<(String, f64)>,
    /// A logarithmic vertical axis (every value positive), for values over decades.
    pub log_y: bool,
}

impl CurvePanel {
    /// Whether `values` are positive and span more than two decades: a logarithmic axis
    /// shows them better.
    pub fn spans_decades(values: impl IntoIterator<Item = f64>) -> bool {
        let (lo, hi) = values.into_iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        lo > 0.0 && hi / lo > 100.0
    }
}

/// Lines with one-standard-deviation bands, as `stem.svg` and `stem.png`.
///
/// # Errors
/// The figure cannot be drawn or written.
pub fn curves(stem: &Path, panel: &CurvePanel) -> anyhow::Result<Vec<PathBuf>> {
    write_both(stem, (800, 480), |root| draw_curves(root, panel), |root| draw_curves(root, panel))
}

/// Ten distinguishable colours (matplotlib's tab10): the curves', and the classes' of a
/// scatter plot.
const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Greys and a dark olive for the dashed baselines, apart from the curves' colours.
const BASELINE_PALETTE: [RGBColor; 3] = [RGBColor(90, 90, 90), RGBColor(150, 150, 150), RGBColor(110, 110, 40)];

pub(crate) fn draw_curves<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, panel: &CurvePanel) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(plot_error)?;
    // On a logarithmic axis every value is drawn as its log10, and the ticks say 10^y.
    let y = |v: f64| if panel.log_y { v.max(f64::MIN_POSITIVE).log10() } else { v };
    let transformed: Vec<Curve> = panel
        .curves
        .iter()
        .map(|c| Curve {
            name: c.name.clone(),
            points: c.points.iter().map(|&(x, m, s)| (x, y(m), if panel.log_y { 0.0 } else { s })).collect(),
        })
        .collect();
    let baselines: Vec<(String, f64)> = panel.baselines.iter().map(|(n, v)| (n.clone(), y(*v))).collect();
    let tick = |v: &f64| format!("{:.3}", 10f64.powf(*v));
    let all = transformed.iter().flat_map(|c| c.points.iter());
    let (x_max, lo, hi) = all.fold((1.0f64, f64::INFINITY, f64::NEG_INFINITY), |(x, lo, hi), p| {
        (x.max(p.0), lo.min(p.1 - p.2), hi.max(p.1 + p.2))
    });
    let (lo, hi) = baselines.iter().fold((lo, hi), |(lo, hi), b| (lo.min(b.1), hi.max(b.1)));
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(&root)
        .caption(&panel.title, caption_font(&root, &panel.title, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(0f64..x_max, (lo - pad)..(hi + pad))
        .map_err(plot_error)?;
    let steps = |x: &f64| format!("{x:.0}");
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(&panel.x_label).y_desc(&panel.y_label).x_label_formatter(&steps).label_style(("sans-serif", 15));
    if panel.log_y {
        mesh.y_label_formatter(&tick);
    }
    mesh.draw().map_err(plot_error)?;
    for (i, curve) in transformed.iter().enumerate() {
        let color = TAB10[i % TAB10.len()];
        let band: Vec<(f64, f64)> = curve
            .points
            .iter()
            .map(|p| (p.0, p.1 + p.2))
            .chain(curve.points.iter().rev().map(|p| (p.0, p.1 - p.2)))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.2).filled()))).map_err(plot_error)?;
        // A curve drawn exactly under an earlier one would be invisible: its legend says so.
        let label = match transformed[..i].iter().find(|earlier| earlier.points == curve.points) {
            Some(earlier) => format!("{} (the same as {})", curve.name, earlier.name),
            None => curve.name.clone(),
        };
        chart
            .draw_series(LineSeries::new(curve.points.iter().map(|p| (p.0, p.1)), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        // Few measurements are marked, so that two points do not read as a measured curve.
        if curve.points.len() <= MARKED_POINTS {
            chart
                .draw_series(curve.points.iter().map(|p| Circle::new((p.0, p.1), 3, color.filled())))
                .map_err(plot_error)?;
        }
    }
    for (i, (name, value)) in baselines.iter().enumerate() {
        let color = BASELINE_PALETTE[i % BASELINE_PALETTE.len()];
        chart
            .draw_series(DashedLineSeries::new([(0.0, *value), (x_max, *value)], 8, 5, color.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    // The legend goes where the first curve is not at its end: above a falling curve.
    let falling = transformed.first().is_some_and(|c| match (c.points.first(), c.points.last()) {
        (Some(first), Some(last)) => last.1 < first.1,
        _ => false,
    });
    legend(&mut chart, if falling { SeriesLabelPosition::UpperRight } else { SeriesLabelPosition::LowerRight })?;
    Ok(())
}
