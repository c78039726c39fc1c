//! Plots (PNG, plotters' bitmap backend). Labels use a system TrueType font when one of the
//! usual ones is installed (`fonts-dejavu-core`); without it the plots are drawn unlabelled.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use candle_core::{Device, Tensor};
use netrepair_nn::Network;
use plotters::prelude::*;

const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a sans-serif font once; whether one was found.
pub fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        FONT_PATHS.iter().any(|p| {
            std::fs::read(p).ok().is_some_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

/// One panel of [`decision_boundaries`]: a title and a two-input classifier.
pub struct Panel<'a> {
    /// Shown above the panel (when a font is available).
    pub title: String,
    /// The classifier (2 inputs, 2 or more classes).
    pub net: &'a Network,
}

/// A labelled 2-D point; `marked` points (e.g. the repair set) are drawn larger and outlined.
#[derive(Debug, Clone, Copy)]
pub struct LabelledPoint {
    /// Coordinates.
    pub xy: (f64, f64),
    /// True class.
    pub label: u32,
    /// Highlight it.
    pub marked: bool,
}

const REGION: [RGBColor; 3] = [
    RGBColor(198, 219, 239),
    RGBColor(253, 208, 162),
    RGBColor(199, 233, 192),
];
const POINT: [RGBColor; 3] = [
    RGBColor(33, 102, 172),
    RGBColor(217, 72, 1),
    RGBColor(35, 139, 69),
];

/// Draws the decision regions of each network side by side, with the data points on top.
pub fn decision_boundaries(
    path: &Path,
    panels: &[Panel],
    points: &[LabelledPoint],
    x_range: (f64, f64),
    y_range: (f64, f64),
) -> Result<()> {
    let labels = font_available();
    let (w, h) = (420u32, 420u32);
    let root = BitMapBackend::new(path, (w * panels.len() as u32, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let areas = root.split_evenly((1, panels.len()));
    let grid = 160usize;
    for (panel, area) in panels.iter().zip(&areas) {
        let mut b = ChartBuilder::on(area);
        b.margin(12);
        if labels {
            b.caption(&panel.title, ("sans-serif", 18))
                .x_label_area_size(28)
                .y_label_area_size(36);
        }
        let mut chart = b
            .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
            .map_err(|e| anyhow!("{e}"))?;
        if labels {
            chart
                .configure_mesh()
                .disable_mesh()
                .draw()
                .map_err(|e| anyhow!("{e}"))?;
        }
        let (dx, dy) = (
            (x_range.1 - x_range.0) / grid as f64,
            (y_range.1 - y_range.0) / grid as f64,
        );
        let mut xs = Vec::with_capacity(grid * grid * 2);
        for i in 0..grid {
            for j in 0..grid {
                xs.push((x_range.0 + (j as f64 + 0.5) * dx) as f32);
                xs.push((y_range.0 + (i as f64 + 0.5) * dy) as f32);
            }
        }
        let batch = Tensor::from_vec(xs, (grid * grid, 2), &Device::Cpu)?;
        let pred = panel.net.predict(&batch).context("evaluating the grid")?;
        chart
            .draw_series((0..grid * grid).map(|k| {
                let (i, j) = (k / grid, k % grid);
                let x0 = x_range.0 + j as f64 * dx;
                let y0 = y_range.0 + i as f64 * dy;
                Rectangle::new(
                    [(x0, y0), (x0 + dx, y0 + dy)],
                    REGION[pred[k] as usize % REGION.len()].filled(),
                )
            }))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| !p.marked)
                    .map(|p| Circle::new(p.xy, 3, POINT[p.label as usize % POINT.len()].filled())),
            )
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(points.iter().filter(|p| p.marked).flat_map(|p| {
                [
                    Circle::new(p.xy, 6, POINT[p.label as usize % POINT.len()].filled()),
                    Circle::new(p.xy, 7, BLACK.stroke_width(2)),
                ]
            }))
            .map_err(|e| anyhow!("{e}"))?;
    }
    root.present()
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// One line of [`line_chart`]: points `(x, y, error)` (error: half-height of an error bar, 0
/// for none).
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// The points, in x order.
    pub points: Vec<(f64, f64, f64)>,
}

const LINE: [RGBColor; 10] = [
    RGBColor(33, 102, 172),
    RGBColor(217, 72, 1),
    RGBColor(35, 139, 69),
    RGBColor(117, 107, 177),
    RGBColor(206, 18, 86),
    RGBColor(140, 81, 10),
    RGBColor(1, 133, 113),
    RGBColor(99, 99, 99),
    RGBColor(230, 171, 2),
    RGBColor(0, 0, 0),
];

/// A line chart with error bars and a legend (labels only when a font is available).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    let labels = font_available();
    let all: Vec<(f64, f64, f64)> = series.iter().flat_map(|s| s.points.clone()).collect();
    if all.is_empty() {
        return Err(anyhow!("nothing to plot"));
    }
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y, e) in &all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y - e);
        y1 = y1.max(y + e);
    }
    let pad_x = ((x1 - x0) * 0.05).max(1e-3);
    let pad_y = ((y1 - y0) * 0.08).max(1e-3);
    let root = BitMapBackend::new(path, (760, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut b = ChartBuilder::on(&root);
    b.margin(14);
    if labels {
        b.caption(title, ("sans-serif", 20))
            .x_label_area_size(40)
            .y_label_area_size(56);
    }
    let mut chart = b
        .build_cartesian_2d(x0 - pad_x..x1 + pad_x, y0 - pad_y..y1 + pad_y)
        .map_err(|e| anyhow!("{e}"))?;
    if labels {
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }
    for (k, s) in series.iter().enumerate() {
        let color = LINE[k % LINE.len()];
        let line = chart
            .draw_series(LineSeries::new(
                s.points.iter().map(|&(x, y, _)| (x, y)),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow!("{e}"))?;
        if labels {
            line.label(s.name.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|&(x, y, _)| Circle::new((x, y), 3, color.filled())),
            )
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(s.points.iter().filter(|p| p.2 > 0.0).map(|&(x, y, e)| {
                ErrorBar::new_vertical(x, y - e, y, y + e, color.stroke_width(1), 6)
            }))
            .map_err(|e| anyhow!("{e}"))?;
    }
    if labels {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }
    root.present()
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}
