//! Every pane drawn with ratatui's TestBackend at 120×40, 80×24 and 20×5, asserting what a
//! user would read on the screen.

use descent_panes::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SIZES: [(u16, u16); 3] = [(120, 40), (80, 24), (20, 5)];

fn screen(view: &AppView, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut ui = UiState::default();
    term.draw(|f| draw(f, view, &mut ui)).unwrap();
    let buf = term.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

fn experiment(name: &str, kind: &str) -> ExperimentRow {
    ExperimentRow {
        name: name.into(),
        kind: kind.into(),
        file: format!("experiments/{name}.toml"),
        summary: format!("{kind} · builtin:digits · mlp · adamw lr 0.001 · 2000 steps"),
        details: vec![("kind".into(), kind.into()), ("seed".into(), "0".into())],
        errors: vec![],
        in_force: true,
    }
}

fn populated() -> AppView {
    let mut broken = experiment("broken", "");
    broken.in_force = false;
    broken.errors = vec!["experiments/broken.toml:7:9: extra `=`, expected nothing".into()];
    AppView {
        status: StatusView {
            workspace: "/home/me/ws".into(),
            device: "cpu (auto)".into(),
            active_runs: 0,
            config_errors: 1,
            watch_mode: "watching".into(),
            alert: None,
        },
        workspace: WorkspaceView {
            experiments: vec![
                experiment("digits-mlp", "supervised"),
                broken,
                experiment("sd-tiny", "diffusion"),
                experiment("qwen-grpo", "grpo"),
            ],
            errors: vec!["experiments/broken.toml:7:9: extra `=`, expected nothing".into()],
            runs_dir: "runs".into(),
            runs: vec![
                RunRow {
                    experiment: "digits-mlp".into(),
                    id: "20261128-101500".into(),
                    state: "running".into(),
                    live: true,
                    step: 120,
                    total: 2000,
                    loss: Some(0.5),
                    eval_loss: Some(0.25),
                    accuracy: Some(0.9),
                    examples_per_s: Some(5000.0),
                    tokens_per_s: None,
                    eta: Some("3m12s".into()),
                    device: "cpu".into(),
                    message: None,
                    ..RunRow::default()
                },
                RunRow {
                    experiment: "digits-mlp".into(),
                    id: "20261128-101400".into(),
                    state: "queued".into(),
                    total: 2000,
                    message: Some("queued, 1 in line: waiting for 2 free cores".into()),
                    sweep: Some("digits-mlp-20261128-101400".into()),
                    member: Some(3),
                    overrides: "optim.lr=0.03 seed=1".into(),
                    job: Some("slurm 12_2 PENDING (Priority)".into()),
                    ..RunRow::default()
                },
                RunRow {
                    experiment: "qwen-grpo".into(),
                    id: "20261201-120000".into(),
                    state: "running".into(),
                    live: true,
                    step: 12,
                    total: 200,
                    tokens_per_s: Some(900.0),
                    device: "cpu".into(),
                    ..RunRow::default()
                },
            ],
        },
        rl: RlView {
            charts: vec![descent_panes::chart::ChartView {
                title: "reward".into(),
                series: vec![descent_panes::chart::ChartSeries::from_points(
                    "reward",
                    &[(1.0, 0.2), (2.0, 0.5), (3.0, 0.75)],
                )],
                log_y: false,
                smoothing: 0.6,
                x_label: "step".into(),
                markers: vec![],
            }],
            rollouts: Some(RolloutView {
                step: 12,
                position: (12, 12),
                following: true,
                group: (1, 8),
                prompt: "37+45".into(),
                answer: "82".into(),
                completions: vec![
                    CompletionView {
                        tokens: vec![
                            ("8".into(), 0.1, true),
                            ("2".into(), 0.9, true),
                            ("<|im_end|>".into(), 0.0, false),
                        ],
                        reward: 1.0,
                        advantage: 1.32,
                        kept: true,
                        ..CompletionView::default()
                    },
                    CompletionView {
                        tokens: vec![("8".into(), 0.1, true), ("3".into(), 0.8, true)],
                        reward: 0.0,
                        advantage: -0.76,
                        kept: false,
                        truncated: true,
                        errors: vec!["grader: \"x\" is not a number".into()],
                        ..CompletionView::default()
                    },
                ],
                max_score: 0.9,
            }),
            note: String::new(),
        },
        run_charts: vec![descent_panes::chart::ChartView {
            title: "loss".into(),
            series: vec![descent_panes::chart::ChartSeries::from_points(
                "train",
                &[(1.0, 2.0), (2.0, 1.0), (3.0, f64::NAN), (4.0, 0.5)],
            )],
            log_y: false,
            smoothing: 0.6,
            x_label: "step".into(),
            markers: vec![2.5],
        }],
        datasets: DatasetsView {
            builtins: vec![(
                "digits".into(),
                "8×8 handwritten digits".into(),
                String::new(),
            )],
            data_dir: "data/".into(),
            files: vec![FileRow {
                name: "train.parquet".into(),
                bytes: Some(2048),
            }],
            hub_cache: Some("/home/me/.cache/huggingface/hub".into()),
            hub_datasets: vec!["org/tiny-set".into()],
            opened: vec!["/data/mnist/train-images-idx3-ubyte".into()],
            detail: None,
            pull: None,
        },
        checkpoints: CheckpointsView {
            runs_dir: "runs/".into(),
            hub_cache: Some("/home/me/.cache/huggingface/hub".into()),
            entries: vec![
                CheckpointEntry {
                    origin: "run".into(),
                    label: "step 400 · digits-mlp/20261128-101500".into(),
                    source: "/ws/runs/digits-mlp/20261128-101500/checkpoints/step-400".into(),
                },
                CheckpointEntry {
                    origin: "hub".into(),
                    label: "org/tiny-model".into(),
                    source: "hub:org/tiny-model".into(),
                },
            ],
            detail: None,
            pull: None,
            chat: None,
        },
        system: SystemView {
            host: "gpu-box".into(),
            os: "Linux".into(),
            cpu_brand: "EPYC".into(),
            cpus: 2,
            cpu_usage: Some(12.0),
            mem_used: 1 << 30,
            mem_total: 8 << 30,
            auto_device: "cpu".into(),
            auto_reason: "built without cuda or metal support".into(),
            backends_built: "cpu only".into(),
            threads: "2".into(),
            gpus: GpuView::Unavailable("libnvidia-ml is not installed".into()),
            ..SystemView::default()
        },
        sampler: SamplerView {
            models: vec![SamplerModel {
                label: "toy/20261201-101500".into(),
                detail: "finished run · exported model/ · mlp 2 · 2 classes".into(),
            }],
            settings: vec![
                ("guidance".into(), "cfg,ag".into()),
                ("scale w".into(), "3".into()),
                ("AG γ̄".into(), "0.99".into()),
            ],
            setting_selected: 1,
            jobs: vec![SampleJobRow {
                id: "20261201-102000-toy".into(),
                state: "finished".into(),
                failed: false,
            }],
            job_selected: 0,
            job: Some(SampleJobView {
                id: "20261201-102000-toy".into(),
                state: "finished".into(),
                facts: vec![("sampling".into(), "ddim × 20 steps".into())],
                modes: vec![
                    SampleModeRow {
                        guidance: "cfg".into(),
                        nfe_total: 640,
                        nfe_per_sample: 40.0,
                        nfe_vs_cfg: Some(1.0),
                        seconds: 0.5,
                        distance_to_cfg: Some(0.0),
                        ..Default::default()
                    },
                    SampleModeRow {
                        guidance: "ag".into(),
                        nfe_total: 480,
                        nfe_per_sample: 30.0,
                        nfe_vs_cfg: Some(0.75),
                        seconds: 0.4,
                        distance_to_cfg: Some(0.0123),
                        stopped: Some((10.0, 16)),
                        ..Default::default()
                    },
                ],
                points: vec![PointsView {
                    label: "cfg".into(),
                    points: vec![(0.0, 0.0, 0), (1.0, 1.0, 1)],
                    bounds: ((-1.0, 2.0), (-1.0, 2.0)),
                }],
                ..Default::default()
            }),
            samples_dir: "/home/me/ws/samples".into(),
            runs_dir: "runs".into(),
        },
        log: vec![LogLine {
            time: "12:00:00".into(),
            level: LogLevel::Warn,
            message: "experiments/broken.toml:7:9: extra `=`".into(),
        }],
        ..AppView::default()
    }
}

/// The populated view with every list emptied, as in a fresh workspace.
fn emptied() -> AppView {
    let mut v = populated();
    v.workspace.experiments.clear();
    v.workspace.errors.clear();
    v.workspace.runs.clear();
    v.run_charts.clear();
    v.datasets.files.clear();
    v.datasets.builtins.clear();
    v.datasets.hub_datasets.clear();
    v.datasets.opened.clear();
    v.checkpoints.entries.clear();
    v.sampler.models.clear();
    v.sampler.jobs.clear();
    v.sampler.job = None;
    v.system.gpus = GpuView::Probing;
    v.log.clear();
    v
}

fn with_pane(mut v: AppView, pane: Pane) -> AppView {
    v.pane = pane;
    v
}

/// What each pane must show, populated and empty, at the two usable sizes.
fn expectations(pane: Pane) -> (&'static [&'static str], &'static [&'static str]) {
    match pane {
        Pane::Runs => (
            &[
                "Experiments (4)",
                "digits-mlp",
                "Runs (2)",
                "20261128-101500",
                "120/2000",
                "loss",
                "1 NaN/Inf",
                "Config errors (1)",
                "broken.toml:7:9",
            ],
            &["No experiments in this workspace", "experiments/"],
        ),
        Pane::Datasets => (
            &[
                "digits",
                "built in",
                "/data/mnist/train-images-idx3-ubyte",
                "train.parquet",
                "2.0 KiB",
                "org/tiny-set",
                "train-images-idx3-ubyte",
            ],
            &["No datasets in data/", "Parquet"],
        ),
        Pane::Checkpoints => (
            &["org/tiny-model", "Checkpoints (2)", "step 400", "reading"],
            &["No checkpoints yet"],
        ),
        Pane::Sampler => (
            &[
                "toy/20261201-101500",
                "480",
                "-25%",
                "0.0123",
                "Jobs",
                "scale w",
            ],
            &["No diffusion models to sample yet"],
        ),
        Pane::Rl => (
            &[
                "qwen-grpo",
                "GRPO experiments (1)",
                "Rollouts · step 12 (12/12, live) · prompt 1/8",
                "prompt 37+45",
                "answer 82",
                " 1 ●   1.00  +1.32  8 2 <|im_end|>",
                " 2 ○   0.00  -0.76  8 3",
                "reward",
            ],
            &["No GRPO experiments"],
        ),
        Pane::System => (
            &[
                "gpu-box",
                "2 × EPYC",
                "auto picks",
                "No NVIDIA GPU found",
                "1.0 GiB / 8.0 GiB",
            ],
            &["Asking NVML"],
        ),
        Pane::Log => (&["WARN", "broken.toml:7:9"], &["Nothing logged yet"]),
    }
}

#[test]
fn every_pane_renders_its_data_at_usable_sizes() {
    for pane in Pane::ALL {
        let (full, _) = expectations(pane);
        for (w, h) in SIZES.into_iter().filter(|&(w, _)| w >= MIN_WIDTH) {
            let s = screen(&with_pane(populated(), pane), w, h);
            assert!(s.contains(pane.title()), "{pane:?} {w}×{h}: tab bar\n{s}");
            for text in full {
                assert!(s.contains(text), "{pane:?} {w}×{h}: missing {text:?}\n{s}");
            }
        }
    }
}

#[test]
fn every_pane_says_what_will_appear_when_it_is_empty() {
    for pane in Pane::ALL {
        let (_, empty) = expectations(pane);
        for (w, h) in SIZES.into_iter().filter(|&(w, _)| w >= MIN_WIDTH) {
            let s = screen(&with_pane(emptied(), pane), w, h);
            for text in empty {
                let squashed: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(
                    squashed.contains(text),
                    "{pane:?} {w}×{h}: missing {text:?}\n{s}"
                );
            }
        }
    }
}

#[test]
fn a_tiny_terminal_gets_a_message_not_a_panic() {
    for pane in Pane::ALL {
        let s = screen(&with_pane(populated(), pane), 20, 5);
        assert!(s.contains("Terminal too"), "{pane:?}\n{s}");
        assert!(s.contains("20×5"), "{pane:?}\n{s}");
    }
    // Every size down to 1×1 draws without panicking.
    for w in 1..60 {
        for h in 1..14 {
            screen(&populated(), w, h);
        }
    }
}

#[test]
fn a_language_model_run_shows_tokens_per_second() {
    let mut v = populated();
    assert!(screen(&v, 120, 40).contains("5000/s"));
    v.workspace.runs[0].tokens_per_s = Some(24_970.0);
    let s = screen(&v, 120, 40);
    assert!(s.contains("25k tok/s") && !s.contains("5000/s"), "{s}");
}

#[test]
fn an_experiment_without_runs_says_how_to_start_one() {
    let mut v = populated();
    v.workspace.runs.clear();
    let s = screen(&v, 120, 40);
    assert!(s.contains("No runs of digits-mlp yet — press r"), "{s}");
}

#[test]
fn the_status_bar_counts_errors_and_names_the_device() {
    let s = screen(&populated(), 120, 40);
    let last = s.lines().last().unwrap();
    assert!(last.contains("/home/me/ws"), "{last}");
    assert!(last.contains("cpu (auto)"), "{last}");
    assert!(last.contains("1 config error"), "{last}");
    assert!(last.contains("no active runs"), "{last}");
    let mut ok = populated();
    ok.status.config_errors = 0;
    assert!(
        screen(&ok, 120, 40)
            .lines()
            .last()
            .unwrap()
            .contains("configs ok")
    );
    ok.status.alert = Some("workspace folder missing".into());
    assert!(screen(&ok, 120, 40).contains("workspace folder missing"));
}

#[test]
fn a_long_notice_is_shown_whole_in_place_of_the_status_bar_s_routine_parts() {
    // As the trash asks, with an experiment name as long as the demo's longest.
    let question = "X again trashes decay-linear-decay/20261204-190913-16 (1023.9 KiB)";
    let mut v = populated();
    v.status.config_errors = 0;
    v.notice = Some(question.into());
    let s = screen(&v, 120, 40);
    let last = s.lines().last().unwrap();
    assert!(last.contains(question), "{last}");
    assert!(last.contains("? help"), "{last}");
    // A config error is never given up for a notice; the question is cut instead.
    v.status.config_errors = 1;
    let s = screen(&v, 120, 40);
    let last = s.lines().last().unwrap();
    assert!(last.contains("1 config error"), "{last}");
    assert!(last.contains("X again trashes decay-linear"), "{last}");
    // A short notice leaves the bar as it is.
    v.notice = Some("saved".into());
    let s = screen(&v, 120, 40);
    let last = s.lines().last().unwrap();
    assert!(
        last.contains("saved") && last.contains("cpu (auto)"),
        "{last}"
    );
    assert!(
        last.contains("no active runs") && last.contains("watching"),
        "{last}"
    );
}

#[test]
fn help_overlay_lists_its_rows() {
    let mut v = populated();
    v.help = Some(vec![HelpRow {
        context: "global".into(),
        keys: "q, Ctrl-c".into(),
        description: "quit (runs keep running)".into(),
    }]);
    for (w, h) in [(120, 40), (80, 24)] {
        let s = screen(&v, w, h);
        assert!(s.contains("Keys") && s.contains("q, Ctrl-c") && s.contains("quit (runs keep"));
    }
}

#[test]
fn help_taller_than_the_screen_scrolls_to_its_last_row() {
    let mut v = populated();
    v.help = Some(
        (0..40)
            .map(|i| HelpRow {
                context: "global".into(),
                keys: format!("k{i}"),
                description: format!("action {i}"),
            })
            .collect(),
    );
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut ui = UiState::default();
    term.draw(|f| draw(f, &v, &mut ui)).unwrap();
    let text = |t: &Terminal<TestBackend>| format!("{:?}", t.backend().buffer());
    assert!(text(&term).contains("more ↓/j"));
    assert!(!text(&term).contains("action 39"));
    ui.help_scroll = 1000;
    term.draw(|f| draw(f, &v, &mut ui)).unwrap();
    assert!(text(&term).contains("action 39"));
    assert_eq!(
        ui.help_scroll,
        41 - 20,
        "clamped to the rows that were hidden"
    );
}

#[test]
fn a_filter_narrows_the_list_and_shows_its_text() {
    let mut v = populated();
    v.filter = Some(FilterView {
        text: "MLP".into(),
        editing: true,
    });
    let s = screen(&v, 120, 40);
    assert!(s.contains("Experiments (1)"), "{s}");
    assert!(s.contains("/ MLP"), "{s}");
    assert!(!s.contains("qwen-grpo"), "{s}");
    assert_eq!(list_len(&v, Pane::Runs), 1);
}

#[test]
fn gpus_from_nvml_are_listed_with_memory_and_processes() {
    let mut v = with_pane(populated(), Pane::System);
    v.system.gpus = GpuView::Gpus {
        driver: "570.1".into(),
        gpus: vec![GpuRow {
            index: 0,
            name: "NVIDIA H100".into(),
            util_percent: Some(87),
            mem_used: 40 << 30,
            mem_total: 80 << 30,
            temperature_c: Some(61),
            power_w: Some(350.0),
            processes: vec![GpuProcess {
                pid: 4242,
                name: "descent".into(),
                mem_used: Some(39 << 30),
            }],
        }],
    };
    let s = screen(&v, 120, 40);
    for text in [
        "driver 570.1",
        "NVIDIA H100",
        "87%",
        "40.0 GiB / 80.0 GiB",
        "4242",
        "61°C",
    ] {
        assert!(s.contains(text), "missing {text:?}\n{s}");
    }
}

#[test]
fn no_color_uses_no_colours() {
    let mut v = populated();
    v.theme = Theme { color: false };
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    term.draw(|f| draw(f, &v, &mut UiState::default())).unwrap();
    let buf = term.backend().buffer();
    for cell in buf.content() {
        assert_eq!(cell.fg, ratatui::style::Color::Reset, "{:?}", cell);
        assert_eq!(cell.bg, ratatui::style::Color::Reset, "{:?}", cell);
    }
}

/// A loaded dataset: image samples (half-blocks), the class histogram, column stats and rows.
#[test]
fn a_read_dataset_shows_images_classes_columns_and_rows() {
    let mut v = with_pane(populated(), Pane::Datasets);
    v.datasets.detail = Some(DatasetDetail {
        key: "builtin:digits".into(),
        info: vec![
            ("format".into(), "built in".into()),
            ("rows".into(), "1797".into()),
        ],
        columns: vec![[
            "pixel 0×1".into(),
            "float".into(),
            "0".into(),
            "0.0".into(),
            "8.0".into(),
            "0.3".into(),
            "0.9".into(),
            "9".into(),
        ]],
        label: Some("label".into()),
        classes: vec![("3".into(), 183), ("1".into(), 182)],
        images: vec![ImageView {
            label: "0".into(),
            width: 2,
            height: 2,
            rgb: vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9],
        }],
        header: vec!["pixel 0×1".into(), "label".into()],
        rows: vec![vec!["0".into(), "0".into()]],
        ..Default::default()
    });
    let s = screen(&v, 120, 40);
    for text in [
        "Classes: label (2)",
        "183",
        "Columns (1)",
        "pixel 0×1",
        "Rows 0–0",
        "1797",
        "▀",
    ] {
        assert!(s.contains(text), "missing {text:?}\n{s}");
    }
}

#[test]
fn rows_give_column_names_the_width_they_need() {
    let mut v = with_pane(populated(), Pane::Datasets);
    let names = [
        "sepal length",
        "sepal width",
        "petal length",
        "petal width",
        "species",
    ];
    v.datasets.detail = Some(DatasetDetail {
        key: "builtin:iris".into(),
        header: names.iter().map(|n| n.to_string()).collect(),
        rows: vec![vec![
            "5.1".into(),
            "3.5".into(),
            "1.4".into(),
            "0.2".into(),
            "setosa".into(),
        ]],
        ..Default::default()
    });
    let s = screen(&v, 120, 40);
    for name in names {
        assert!(s.contains(name), "{name:?} cut:\n{s}");
    }
    // On a narrow screen whole columns are left out rather than every name cut.
    let s = screen(&v, 80, 30);
    assert!(
        s.contains("sepal length") && s.contains("sepal width"),
        "{s}"
    );
}

/// A loaded checkpoint: summary, tensor tree and a tensor's statistics.
#[test]
fn a_read_checkpoint_shows_its_tree_and_tensor_statistics() {
    let mut v = with_pane(populated(), Pane::Checkpoints);
    v.checkpoints.detail = Some(CheckpointDetail {
        key: "/ws/runs/digits-mlp/20261128-101500/checkpoints/step-400".into(),
        summary: vec![
            ("format".into(), "descent run checkpoint".into()),
            ("parameters".into(), "8.45K".into()),
        ],
        tree: vec![
            TreeRow {
                depth: 0,
                name: "fc0".into(),
                what: "2 tensors".into(),
                params: "8.32K".into(),
                bytes: "32.5 KiB".into(),
                expanded: Some(true),
            },
            TreeRow {
                depth: 1,
                name: "weight".into(),
                what: "F32 [64, 128]".into(),
                params: "8.19K".into(),
                bytes: "32.0 KiB".into(),
                expanded: None,
            },
        ],
        tree_selected: 1,
        stats: Some(TensorStatsView {
            name: "fc0.weight".into(),
            lines: vec![("L2 norm".into(), "4.2".into())],
            histogram: vec![1, 5, 9, 5, 1],
            range: (-0.5, 0.5),
            error: None,
        }),
        ..Default::default()
    });
    let s = screen(&v, 120, 40);
    for text in [
        "descent run checkpoint",
        "▾ fc0",
        "F32 [64, 128]",
        "8.19K",
        "L2 norm",
        "histogram -0.5000",
    ] {
        assert!(s.contains(text), "missing {text:?}\n{s}");
    }
    // Too long for the title, the path keeps its end.
    let s = screen(&v, 90, 30);
    assert!(
        s.contains("…") && s.contains("checkpoints/step-400 "),
        "{s}"
    );
}

/// Long runs keep their whole step counter on screen.
#[test]
fn a_long_run_shows_its_whole_step_counter() {
    let mut v = with_pane(populated(), Pane::Runs);
    v.workspace.runs[0].step = 123_456;
    v.workspace.runs[0].total = 1_000_000;
    let s = screen(&v, 120, 40);
    assert!(s.contains("123456/1000000"), "{s}");
}

#[test]
fn a_constant_series_is_drawn_mid_chart_with_its_value_on_the_axis() {
    let mut v = populated();
    v.run_charts = vec![descent_panes::chart::ChartView {
        title: "learning rate".into(),
        series: vec![descent_panes::chart::ChartSeries::from_points(
            "lr",
            &[(1.0, 1e-3), (2.0, 1e-3), (3.0, 1e-3)],
        )],
        x_label: "step".into(),
        ..Default::default()
    }];
    let s = screen(&v, 120, 40);
    // The axis spans 0.00095–0.00105 around the value, not 0–0.05.
    assert!(s.contains("9.5e-4") && s.contains("0.001"), "{s}");
    assert!(!s.contains("0.051"), "{s}");
}

#[test]
fn a_failed_run_says_why_in_full_under_the_runs_table() {
    let mut v = populated();
    let why = "the training process was killed (SIGKILL: by a person, or by the kernel when \
               memory ran out — see `dmesg`); `descent run --resume runs/digits-mlp/x` continues";
    v.workspace.runs[0].state = "failed".into();
    v.workspace.runs[0].live = false;
    v.workspace.runs[0].message = Some(why.into());
    let s = screen(&v, 120, 40);
    // Wrapped over two lines beside the experiment list; every word is there.
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    for words in [
        "killed (SIGKILL: by a person",
        "memory ran out",
        "see `dmesg`",
    ] {
        assert!(flat.contains(words), "{words:?} missing:\n{s}");
    }
}

#[test]
fn statistics_give_column_names_the_width_they_need_beside_the_class_histogram() {
    let mut v = with_pane(populated(), Pane::Datasets);
    let names = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)"];
    v.datasets.detail = Some(DatasetDetail {
        key: "builtin:iris".into(),
        columns: names
            .iter()
            .map(|n| [n, "float", "0", "4.30", "7.90", "5.84", "0.825", "35"].map(String::from))
            .collect(),
        label: Some("label".into()),
        classes: vec![("setosa".into(), 50), ("virginica".into(), 50)],
        ..Default::default()
    });
    for (w, h) in [(120, 40), (100, 30)] {
        let s = screen(&v, w, h);
        for name in names {
            assert!(s.contains(name), "{name:?} cut at {w}×{h}:\n{s}");
        }
        assert!(s.contains("min") && s.contains("mean"), "{s}");
    }
}

#[test]
fn the_talk_box_shows_the_message_and_the_end_of_a_long_reply() {
    let mut v = with_pane(populated(), Pane::Checkpoints);
    let reply: Vec<String> = (1..=40)
        .map(|i| format!("line {i} of the answer"))
        .collect();
    v.checkpoints.chat = Some(descent_panes::ChatView {
        model: "org/tiny-model".into(),
        prompt: "What is 2+3?".into(),
        templated: true,
        reply: reply.join("\n"),
        state: "writing…".into(),
        error: None,
    });
    let s = screen(&v, 120, 40);
    assert!(
        s.contains("org/tiny-model · writing…, chat template"),
        "{s}"
    );
    assert!(
        s.contains("line 40 of the answer"),
        "the reply's end is in view:\n{s}"
    );
    assert!(
        !s.contains("line 1 of the answer"),
        "the start scrolled away:\n{s}"
    );
}

#[test]
fn the_probe_view_draws_its_charts_scores_groups_and_spectrum() {
    use descent_panes::chart::{ChartSeries, ChartView};
    use descent_panes::view::{
        El2nView, ExampleView, ImageView, OpposingView, ProbesView, SpectrumView,
    };
    let chart = |title: &str, name: &str| ChartView {
        title: title.into(),
        series: vec![ChartSeries::from_points(
            name,
            &[(10.0, 3.0), (20.0, 5.0), (30.0, 4.0)],
        )],
        x_label: "step".into(),
        ..Default::default()
    };
    let digit = |row: usize, label: &str, value: f64| ExampleView {
        row,
        label: label.into(),
        value,
        image: Some(ImageView {
            label: label.into(),
            width: 8,
            height: 8,
            rgb: (0..192).map(|i| (i * 7 % 256) as u8).collect(),
        }),
    };
    let mut v = with_pane(populated(), Pane::Runs);
    v.probes = Some(ProbesView {
        charts: vec![
            chart("m-coherence (m = batch)", "m-coherence"),
            chart("noise scale B_noise = trΣ/‖G‖²", "B_noise"),
            chart("sharpness · edge 2/η (SGD)", "λmax"),
            chart("opposing signals: group losses (▾ spike)", "rose most"),
        ],
        note: "probes: coherence, sharpness, EL2N · v: charts · d: Hessian".into(),
        hint: Some("B_noise ≈ 230: batches up to about 230".into()),
        el2n: Some(El2nView {
            step: 500,
            scored: 1438,
            histogram: (0..28).map(|i| (i * 13 % 50) as u64).collect(),
            hardest: vec![digit(17, "3", 1.21), digit(40, "8", 1.1)],
        }),
        opposing: Some(OpposingView {
            step: 450,
            rises: vec![digit(5, "1", 0.7)],
            falls: vec![digit(6, "7", -0.4)],
        }),
        spectrum: Some(SpectrumView {
            step: 500,
            chart: ChartView {
                title: "Hessian spectral density · step 500 (log)".into(),
                series: vec![ChartSeries::from_points(
                    "density",
                    &[(0.0, 10.0), (1.0, 0.01), (5.0, 0.5)],
                )],
                log_y: true,
                x_label: "λ".into(),
                ..Default::default()
            },
            summary: "λmax 5.012 · 9 outliers above λmax/10 (10 classes)".into(),
        }),
        spectrum_note: String::new(),
    });
    let s = screen(&v, 160, 50);
    for want in [
        "m-coherence (m = batch)",
        "noise scale B_noise",
        "sharpness · edge 2/η (SGD)",
        "opposing signals: group losses",
        "hint: B_noise ≈ 230",
        "EL2N · step 500 · 1438 scored",
        "hardest",
        "3:1.21",
        "opposing signals · step 450",
        "loss rose",
        "Hessian spectral density",
        "9 outliers above",
    ] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
    // A short terminal keeps the charts and drops the band below them.
    let small = screen(&v, 100, 24);
    assert!(
        small.contains("m-coherence") && !small.contains("EL2N · step"),
        "{small}"
    );
    // Down to the smallest screen the shell draws, nothing panics.
    for (w, h) in [(50, 12), (60, 16), (80, 30), (200, 60)] {
        screen(&v, w, h);
    }
}

#[test]
fn a_queued_sweep_member_shows_its_job_keys_and_why_it_waits() {
    let s = screen(&populated(), 320, 40);
    assert!(s.contains("queued"), "{s}");
    assert!(s.contains("slurm 12_2 PENDING (Priority)"), "{s}");
    assert!(s.contains("[3] optim.lr=0.03 seed=1"), "{s}");
    assert!(s.contains("waiting for 2 free cores"), "{s}");
}

#[test]
fn finished_sweep_members_show_their_keys_in_place_of_speed_and_eta() {
    let mut v = populated();
    v.workspace.runs.retain(|r| r.experiment == "digits-mlp");
    for (i, r) in v.workspace.runs.iter_mut().enumerate() {
        r.id = format!("20261128-101500-{}", i + 2);
        r.state = "finished".into();
        r.live = false;
        r.eta = None;
        r.message = None;
        r.job = None;
        // The demo sweep's 400 steps.
        (r.step, r.total) = (400, 400);
        r.member = Some(i + 2);
        r.overrides = format!("optim.lr=0.{} seed=1", i + 3);
    }
    let s = screen(&v, 120, 40);
    assert!(!s.contains("speed") && !s.contains("eta"), "{s}");
    assert!(s.contains("[2] optim.lr=0.3 seed=1"), "{s}");
    // A live run brings the columns back.
    v.workspace.runs[0].live = true;
    v.workspace.runs[0].examples_per_s = Some(5000.0);
    let s = screen(&v, 120, 40);
    assert!(s.contains("speed") && s.contains("5000/s"), "{s}");
}

#[test]
fn a_setting_with_a_combining_mark_lines_up_with_the_others() {
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let mut ui = UiState::default();
    let v = with_pane(populated(), Pane::Sampler);
    term.draw(|f| draw(f, &v, &mut ui)).unwrap();
    let buf = term.backend().buffer();
    // The cell where each setting's value starts.
    let value_at = |label: &str, value: &str| {
        (0..40u16)
            .find_map(|y| {
                let line: Vec<&str> = (0..120u16).map(|x| buf[(x, y)].symbol()).collect();
                line.concat().contains(label).then(|| {
                    let want: Vec<String> = value.chars().map(String::from).collect();
                    (0..line.len() - want.len())
                        .find(|&x| line[x..x + want.len()] == want[..])
                        .unwrap()
                })
            })
            .unwrap_or_else(|| panic!("no {label} row"))
    };
    assert_eq!(value_at("scale w", "3"), value_at("AG γ̄", "0.99"));
    // The model's detail wraps under its label rather than being cut.
    let s = screen(&v, 120, 40);
    assert!(s.contains("2 classes"), "{s}");
}

#[test]
fn the_sweep_view_ranks_the_members_above_the_charts() {
    let mut v = populated();
    let row = |rank: Option<usize>, member, state: &str, value, overrides: &str| SweepMemberRow {
        rank,
        member,
        run: format!("20261128-10150{member}"),
        state: state.into(),
        value,
        overrides: overrides.into(),
        selected: member == 2,
    };
    v.sweep = Some(SweepView {
        id: "digits-mlp-20261128-101500".into(),
        metric: "eval_accuracy".into(),
        goal: "max".into(),
        summary: "3 members: 2 finished, 0 running, 1 queued, 0 failed".into(),
        rows: vec![
            row(Some(1), 2, "finished", Some(0.97), "optim.lr=0.01"),
            row(Some(2), 1, "finished", Some(0.91), "optim.lr=0.001"),
            row(None, 3, "queued", None, "optim.lr=0.1"),
        ],
    });
    for (w, h) in [(120, 40), (80, 24)] {
        let s = screen(&v, w, h);
        assert!(s.contains("Sweep"), "{s}");
        assert!(s.contains("#1"), "{s}");
        let first = s.lines().position(|l| l.contains("#1")).unwrap();
        let second = s.lines().position(|l| l.contains("#2")).unwrap();
        assert!(first < second, "best first:\n{s}");
        assert!(s.contains("0.97") && s.contains("optim.lr=0.01"), "{s}");
        assert!(
            s.contains("eval_accuracy overrides"),
            "the metric's name whole:\n{s}"
        );
    }
    let s = screen(&v, 120, 40);
    assert!(
        s.contains("╭ loss"),
        "the charts stay below the ranking:\n{s}"
    );
}
