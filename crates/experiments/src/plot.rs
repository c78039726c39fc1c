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
