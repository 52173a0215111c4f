//! SVG plots of a run: latency percentiles and loss per second of the measuring window.

use crate::media::SecondReport;
use plotters::prelude::*;
use std::path::Path;

pub fn latency_and_loss(prefix: &Path, timeline: &[SecondReport]) -> anyhow::Result<()> {
    if timeline.is_empty() {
        return Ok(());
    }
    let x_max = timeline.len() as f64;
    let latency = beside(prefix, "latency");
    {
        let root = SVGBackend::new(&latency, (900, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let y_max = timeline.iter().map(|s| s.p99_us).max().unwrap_or(1).max(1) as f64 * 1.2;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "one-way latency through the server (µs)",
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("second of the measuring window")
            .y_desc("µs")
            .draw()?;
        for (label, color, pick) in [
            (
                "p50",
                BLUE,
                (|s: &SecondReport| s.p50_us) as fn(&SecondReport) -> u64,
            ),
            ("p99", RED, |s: &SecondReport| s.p99_us),
        ] {
            chart
                .draw_series(LineSeries::new(
                    timeline.iter().map(|s| (s.second as f64, pick(s) as f64)),
                    color,
                ))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart.configure_series_labels().border_style(BLACK).draw()?;
        root.present()?;
    }
    let loss = beside(prefix, "loss");
    let root = SVGBackend::new(&loss, (900, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let y_max = timeline.iter().map(|s| s.loss_percent).fold(0.1, f64::max) * 1.2;
    let mut chart = ChartBuilder::on(&root)
        .caption("packet loss (%)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("second of the measuring window")
        .y_desc("% lost")
        .draw()?;
    chart.draw_series(LineSeries::new(
        timeline.iter().map(|s| (s.second as f64, s.loss_percent)),
        RED,
    ))?;
    root.present()?;
    Ok(())
}

/// `PREFIX-what.svg` next to `PREFIX`.
fn beside(prefix: &Path, what: &str) -> std::path::PathBuf {
    let stem = prefix
        .file_name()
        .map_or("load".into(), |n| n.to_string_lossy());
    prefix.with_file_name(format!("{stem}-{what}.svg"))
}
