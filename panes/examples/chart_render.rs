//! Chart render time: 4 series × 1,000,000 points drawn at 200×50 cells, and a heatmap of 8
//! rows × 1,000,000 points at 200×12, for BENCHMARKS.md. The series' summaries are built once
//! (as the TUI builds them while records arrive); each frame reads only them.
//! Run with `cargo run --release -p descent-panes --example chart_render`.

use descent_panes::Theme;
use descent_panes::chart::{ChartSeries, ChartView, HeatmapView, draw_chart, draw_heatmap};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::time::Instant;

fn median_ms(mut frame: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            frame();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let n = 1_000_000;
    let points = |k: usize| -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let x = i as f64;
                let noise = ((i * 2654435761usize + k) % 1000) as f64 / 1000.0 - 0.5;
                (x, (2.0 + k as f64) * (-x / 2e5).exp() + 0.1 * noise)
            })
            .collect()
    };
    let raw: Vec<Vec<(f64, f64)>> = (0..8).map(points).collect();
    let t = Instant::now();
    let mut series: Vec<ChartSeries> = raw[..4]
        .iter()
        .enumerate()
        .map(|(k, p)| ChartSeries::from_points(&format!("run {k}"), p))
        .collect();
    println!(
        "summaries of 4 × 1M points built in {:.0} ms ({:.0} ns per point)",
        t.elapsed().as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e9 / (4 * n) as f64
    );
    let theme = Theme { color: true };
    let mut term = Terminal::new(TestBackend::new(200, 50)).unwrap();
    for (label, smoothing, log_y) in [
        ("raw", 0.0, false),
        ("EMA 0.9 over raw", 0.9, false),
        ("log-y, EMA", 0.9, true),
    ] {
        // As the TUI does when the smoothing changes: the smoothed column, once.
        let t = Instant::now();
        for s in &mut series {
            std::sync::Arc::make_mut(&mut s.y).set_smoothing(smoothing, log_y);
        }
        let switch = t.elapsed().as_secs_f64() * 1e3;
        let view = ChartView {
            title: "loss".into(),
            series: series.clone(),
            log_y,
            smoothing,
            x_label: "step".into(),
            markers: vec![],
        };
        let ms = median_ms(|| {
            term.draw(|f| draw_chart(f, f.area(), &theme, &view))
                .unwrap();
        });
        println!(
            "chart 4 × 1M points at 200×50, {label}: median {ms:.2} ms per frame \
             (switching to it: {switch:.0} ms, once)"
        );
    }
    let heat = HeatmapView {
        title: "gradient norm per tensor".into(),
        rows: raw
            .iter()
            .enumerate()
            .map(|(k, p)| ChartSeries::from_points(&format!("fc{k}.weight"), p))
            .collect(),
    };
    let mut term = Terminal::new(TestBackend::new(200, 12)).unwrap();
    let ms = median_ms(|| {
        term.draw(|f| draw_heatmap(f, f.area(), &theme, &heat))
            .unwrap();
    });
    println!("heatmap 8 × 1M points at 200×12: median {ms:.2} ms per frame");
}
