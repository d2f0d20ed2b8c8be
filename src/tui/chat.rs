//! The Checkpoints pane's talk box: a message to a language-model folder, answered by a
//! `descent generate` process of its own (the model is not loaded into the TUI), its reply
//! streamed into the pane as the process prints it.

use descent_panes::ChatView;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Reply {
    text: String,
    done: bool,
    error: Option<String>,
}

struct Job {
    model: String,
    prompt: String,
    chat: bool,
    reply: Arc<Mutex<Reply>>,
    child: Child,
}

#[derive(Default)]
pub struct Chat {
    job: Option<Job>,
    waker: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// Whether `dir` is a language-model folder descent can talk to: a `config.json` of a family
/// it supports and a `tokenizer.json`.
pub fn is_language_model(dir: &Path) -> bool {
    dir.join("tokenizer.json").is_file() && descent_models::lm::read_config(dir).is_ok()
}

impl Chat {
    /// Lets the reader threads wake the event loop as text arrives.
    pub fn set_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.waker = Some(wake);
    }

    /// Sends `prompt` to the model in `dir` (through its chat template when it has one),
    /// ending any reply still being written.
    pub fn start(&mut self, dir: &Path, label: &str, prompt: &str) -> Result<(), String> {
        self.stop();
        let chat = descent_models::lm::chat::ChatTemplate::from_folder(dir)
            .map_err(|e| e.to_string())?
            .is_some();
        let exe = std::env::current_exe().map_err(|e| format!("cannot find descent: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("generate")
            .arg(dir)
            .args(["--prompt", prompt])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if chat {
            cmd.arg("--chat");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start descent generate: {e}"))?;
        let reply = Arc::new(Mutex::new(Reply::default()));
        let (mut out, mut err) = (
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let errors = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        {
            let reply = reply.clone();
            let wake = self.waker.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                let mut pending = Vec::new();
                loop {
                    match out.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            pending.extend_from_slice(&buf[..n]);
                            // Keep a character cut between two reads for the next one.
                            let valid = match std::str::from_utf8(&pending) {
                                Ok(_) => pending.len(),
                                Err(e) => e.valid_up_to(),
                            };
                            let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
                            pending.drain(..valid);
                            reply.lock().expect("reply").text.push_str(&text);
                            if let Some(w) = &wake {
                                w();
                            }
                        }
                    }
                }
                // stderr closes with the process too.
                let e = errors.join().unwrap_or_default().trim().to_string();
                let mut r = reply.lock().expect("reply");
                r.done = true;
                if !e.is_empty() {
                    r.error = Some(e);
                }
                if let Some(w) = &wake {
                    w();
                }
            });
        }
        self.job = Some(Job {
            model: label.to_string(),
            prompt: prompt.to_string(),
            chat,
            reply,
            child,
        });
        Ok(())
    }

    /// Ends the reply being written, if any.
    pub fn stop(&mut self) {
        if let Some(mut j) = self.job.take() {
            let _ = j.child.kill();
            let _ = j.child.wait();
        }
    }

    pub fn view(&mut self) -> Option<ChatView> {
        let j = self.job.as_mut()?;
        let r = j.reply.lock().expect("reply");
        let exit = if r.done {
            j.child.try_wait().ok().flatten()
        } else {
            None
        };
        let failed = exit.is_some_and(|s| !s.success());
        let state = match exit {
            None => "writing…",
            Some(_) if failed => "failed",
            Some(_) => "done",
        }
        .to_string();
        Some(ChatView {
            model: j.model.clone(),
            prompt: j.prompt.clone(),
            templated: j.chat,
            reply: r.text.trim_start().to_string(),
            state,
            error: if failed { r.error.clone() } else { None },
        })
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        self.stop();
    }
}
