//! Chart render time: 4 series × 1,000,000 points drawn at 200×50 cells, for BENCHMARKS.md.
//! Run with `cargo run --release -p descent-panes --example chart_render`.

use descent_panes::Theme;
use descent_panes::chart::{ChartSeries, ChartView, draw_chart};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::time::Instant;

fn main() {
    let n = 1_000_000;
    let series: Vec<ChartSeries> = (0..4)
        .map(|k| ChartSeries {
            name: format!("run {k}"),
            points: (0..n)
                .map(|i| {
                    let x = i as f64;
                    let noise = ((i * 2654435761usize + k) % 1000) as f64 / 1000.0 - 0.5;
                    (x, (2.0 + k as f64) * (-x / 2e5).exp() + 0.1 * noise)
                })
                .collect(),
        })
        .collect();
    let theme = Theme { color: true };
    let mut term = Terminal::new(TestBackend::new(200, 50)).unwrap();
    for (label, smoothing, log_y) in [
        ("raw", 0.0, false),
        ("EMA 0.9 over raw", 0.9, false),
        ("log-y, EMA", 0.9, true),
    ] {
        let view = ChartView {
            title: "loss".into(),
            series: series.clone(),
            log_y,
            smoothing,
            x_label: "step".into(),
            markers: vec![],
        };
        let mut times = Vec::new();
        for _ in 0..15 {
            let t = Instant::now();
            term.draw(|f| draw_chart(f, f.area(), &theme, &view))
                .unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "chart 4 × 1M points at 200×50, {label}: median {:.1} ms per frame",
            times[times.len() / 2]
        );
    }
}
