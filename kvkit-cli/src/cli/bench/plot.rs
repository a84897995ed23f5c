//! `--plot FILE.svg`: latency distributions, one line per operation and side.
//!
//! The x axis is the percentile on a "nines" scale (0 = p0, 1 = p90, 2 = p99, 3 = p99.9,
//! 4 = p99.99), the usual way to show a latency distribution so the tail gets as much room as
//! the median; the y axis is the latency, logarithmic. With `--raw` the raw client's lines
//! are dashed beside the adapter's, in the same colour per operation.

use std::path::Path;

use plotters::prelude::*;

use super::report::Measured;
use super::stats::{OpStats, Side};

/// How far right the x axis goes: p99.99.
const MAX_NINES: f64 = 4.0;
const STEPS: u32 = 200;
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One line of the chart.
struct Line {
    label: String,
    colour: RGBColor,
    dashed: bool,
    /// (nines, latency in µs)
    points: Vec<(f64, f64)>,
}

/// Draws the chart for `measured` into the SVG file at `path`.
pub(crate) fn draw(measured: &Measured, path: &Path) -> Result<(), String> {
    let lines = lines(measured);
    let (low, high) = lines
        .iter()
        .flat_map(|line| line.points.iter().map(|&(_, micros)| micros))
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lines.is_empty() {
        return Err("nothing was measured".into());
    }
    let y_range = (low * 0.8).max(0.01)..(high * 1.25);
    let title = format!(
        "{} on {}: latency by percentile",
        measured.settings.workload.name(),
        measured.target
    );
    let root = SVGBackend::new(path, (1000, 620)).into_drawing_area();
    let drawn = (|| -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..MAX_NINES, y_range.log_scale())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (µs)")
            .x_labels(5)
            .x_label_formatter(&|nines| percentile_label(*nines))
            .y_label_formatter(&|micros| match *micros {
                m if m >= 10.0 => format!("{m:.0}"),
                m => format!("{m:.2}"),
            })
            .draw()?;
        for line in lines {
            let style = ShapeStyle::from(line.colour).stroke_width(2);
            let colour = line.colour;
            let series = if line.dashed {
                chart.draw_series(DashedLineSeries::new(line.points, 6, 4, style))?
            } else {
                chart.draw_series(LineSeries::new(line.points, style))?
            };
            // Two strokes in the legend: with a gap for a dashed line, joined for a solid one.
            let gap = if line.dashed { 4 } else { 0 };
            series.label(line.label).legend(move |(x, y)| {
                let style = colour.stroke_width(2);
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (10 - gap, 0)], style)
                    + PathElement::new(vec![(10, 0), (20, 0)], style)
            });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()
    })();
    drawn.map_err(|err| err.to_string())
}

fn lines(measured: &Measured) -> Vec<Line> {
    let mut lines = Vec::new();
    let sides = [
        ("adapter", Some(&measured.adapter)),
        ("raw", measured.raw.as_ref()),
    ];
    for (index, op) in measured.ops().into_iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        for (side_name, side) in sides {
            let Some(stats) = side.and_then(|side: &Side| side.merged(op)) else {
                continue;
            };
            let rate = side.map_or(0.0, |side| side.median_rate(Some(op)));
            lines.push(Line {
                label: format!("{side_name} {op} ({rate:.0} ops/s)"),
                colour,
                dashed: side_name == "raw",
                points: curve(&stats),
            });
        }
    }
    lines
}

/// The latency distribution of `stats` as (nines, µs) points.
fn curve(stats: &OpStats) -> Vec<(f64, f64)> {
    (0..=STEPS)
        .map(|step| {
            let nines = MAX_NINES * f64::from(step) / f64::from(STEPS);
            let quantile = 1.0 - 10f64.powf(-nines);
            let micros = stats.at(quantile).as_secs_f64() * 1e6;
            (nines, micros.max(0.01))
        })
        .collect()
}

/// `2.0` as `p99`, `0.0` as `p0`.
fn percentile_label(nines: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-nines));
    let text = format!("{percent:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("p{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_name_percentiles() {
        assert_eq!(percentile_label(0.0), "p0");
        assert_eq!(percentile_label(1.0), "p90");
        assert_eq!(percentile_label(2.0), "p99");
        assert_eq!(percentile_label(3.0), "p99.9");
        assert_eq!(percentile_label(4.0), "p99.99");
    }
}
