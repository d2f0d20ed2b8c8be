//! The System pane: the machine, the compute device descent would use, and NVIDIA GPUs.

use crate::widgets::{bar, block, key_values};
use crate::{AppView, GpuView, human_bytes};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Paragraph, Wrap};

pub fn draw(frame: &mut Frame, area: Rect, view: &AppView) {
    let t = &view.theme;
    let s = &view.system;
    let [top, gpus] = Layout::vertical([Constraint::Length(9), Constraint::Min(3)]).areas(area);
    let [machine, compute] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);

    let frac = |used: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            used as f64 / total as f64
        }
    };
    let mut m = key_values(
        t,
        &[
            ("host".into(), s.host.clone()),
            ("os".into(), s.os.clone()),
            ("cpu".into(), format!("{} × {}", s.cpus, s.cpu_brand)),
            (
                "load".into(),
                format!(
                    "{:.2} {:.2} {:.2}",
                    s.load_avg[0], s.load_avg[1], s.load_avg[2]
                ),
            ),
        ],
        machine.width.saturating_sub(2),
    );
    m.push(Line::from(vec![
        Span::styled("cpu use  ", t.dim()),
        bar(s.cpu_usage.unwrap_or(0.0) as f64 / 100.0, 10, t.ok()),
        Span::raw(
            s.cpu_usage
                .map_or(" measuring…".into(), |u| format!(" {u:.0}%")),
        ),
    ]));
    m.push(Line::from(vec![
        Span::styled("memory   ", t.dim()),
        bar(frac(s.mem_used, s.mem_total), 10, t.ok()),
        Span::raw(format!(
            " {} / {}",
            human_bytes(s.mem_used),
            human_bytes(s.mem_total)
        )),
    ]));
    m.push(Line::from(vec![
        Span::styled("swap     ", t.dim()),
        bar(frac(s.swap_used, s.swap_total), 10, t.ok()),
        Span::raw(format!(
            " {} / {}",
            human_bytes(s.swap_used),
            human_bytes(s.swap_total)
        )),
    ]));
    frame.render_widget(Paragraph::new(m).block(block(t, " Machine ")), machine);

    let c = key_values(
        t,
        &[
            ("auto picks".into(), s.auto_device.clone()),
            ("because".into(), s.auto_reason.clone()),
            ("built with".into(), s.backends_built.clone()),
            ("cpu threads".into(), s.threads.clone()),
        ],
        compute.width.saturating_sub(2),
    );
    frame.render_widget(
        Paragraph::new(c)
            .wrap(Wrap { trim: false })
            .block(block(t, " Compute (candle) ")),
        compute,
    );

    let mut g = Text::default();
    let title = match &s.gpus {
        GpuView::Probing => {
            g.lines
                .push(Line::styled("Asking NVML for NVIDIA GPUs…", t.dim()));
            " GPUs ".to_string()
        }
        GpuView::Unavailable(why) => {
            g.lines.push(Line::raw("No NVIDIA GPU found."));
            g.lines.push(Line::styled(why.clone(), t.dim()));
            " GPUs ".to_string()
        }
        GpuView::Gpus { driver, gpus } => {
            for gpu in gpus {
                let mem = frac(gpu.mem_used, gpu.mem_total);
                g.lines.push(Line::from(vec![
                    Span::styled(format!("{} ", gpu.index), t.key()),
                    Span::raw(gpu.name.clone()),
                    Span::styled(
                        format!(
                            "  {}  {}",
                            gpu.temperature_c
                                .map_or(String::new(), |c| format!("{c}°C")),
                            gpu.power_w.map_or(String::new(), |w| format!("{w:.0} W"))
                        ),
                        t.dim(),
                    ),
                ]));
                g.lines.push(Line::from(vec![
                    Span::styled("  util   ", t.dim()),
                    bar(gpu.util_percent.unwrap_or(0) as f64 / 100.0, 12, t.ok()),
                    Span::raw(gpu.util_percent.map_or(" n/a".into(), |u| format!(" {u}%"))),
                ]));
                g.lines.push(Line::from(vec![
                    Span::styled("  memory ", t.dim()),
                    bar(mem, 12, t.ok()),
                    Span::raw(format!(
                        " {} / {}",
                        human_bytes(gpu.mem_used),
                        human_bytes(gpu.mem_total)
                    )),
                ]));
                for p in &gpu.processes {
                    g.lines.push(Line::styled(
                        format!(
                            "    pid {:>7}  {}  {}",
                            p.pid,
                            p.name,
                            p.mem_used.map_or(String::new(), human_bytes)
                        ),
                        t.dim(),
                    ));
                }
            }
            format!(" GPUs (driver {driver}) ")
        }
    };
    frame.render_widget(
        Paragraph::new(g)
            .wrap(Wrap { trim: false })
            .block(block(t, title)),
        gpus,
    );
}
