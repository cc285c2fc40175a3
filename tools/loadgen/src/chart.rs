//! SVG charts of latency against offered rate, written by the load
//! generators themselves, so every run leaves a picture in which the knee
//! (where queueing starts) shows at a glance. A log-scale latency axis keeps
//! a 5 ms p50 and a 5 s max readable on one chart.

use anyhow::anyhow;
use plotters::prelude::*;
use std::path::Path;

/// One line of the chart: a name and its (rate, latency ms) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Colours of the series in order (p50, p99, max, ...).
const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Writes `series` as an SVG line chart (x: rate, y: latency ms, log scale)
/// to `path`.
pub fn latency_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let x_max = points().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    // Log scale: clamp to a floor so a 0 ms sample stays drawable.
    let y_min = points()
        .map(|p| p.1.max(0.1))
        .fold(f64::MAX, f64::min)
        .min(1.0);
    let y_max = points().map(|p| p.1).fold(10.0, f64::max) * 1.5;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    let failed = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("latency ms (log scale)")
        .draw()
        .map_err(|e| failed(&e))?;
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (x, y.max(0.1))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(|e| failed(&e))?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, colour.filled())),
            )
            .map_err(|e| failed(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))
}
