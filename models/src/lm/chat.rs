//! Hugging Face chat templates, rendered as transformers' `apply_chat_template` does: Jinja
//! with `trim_blocks` and `lstrip_blocks`, Python's string methods (minijinja-contrib's
//! pycompat), `raise_exception` and `strftime_now`, and `messages`, `add_generation_prompt`,
//! `bos_token` and `eos_token` in the context.

use minijinja::{Environment, Error, ErrorKind, Value, context};
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

pub struct ChatTemplate {
    source: String,
    /// Where it came from, for messages.
    origin: String,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    pub fn new(source: &str, origin: &str, bos: &str, eos: &str) -> ChatTemplate {
        ChatTemplate {
            source: source.into(),
            origin: origin.into(),
            bos: bos.into(),
            eos: eos.into(),
        }
    }

    /// The template of a model folder: `chat_template.jinja` (transformers 5), else
    /// `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates of
    /// which `default` is taken). `None` when the folder has none.
    pub fn from_folder(dir: &Path) -> Result<Option<ChatTemplate>, String> {
        let cfg_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = match std::fs::read_to_string(&cfg_path) {
            Ok(t) => {
                serde_json::from_str(&t).map_err(|e| format!("{}: {e}", cfg_path.display()))?
            }
            Err(_) => serde_json::Value::Null,
        };
        let token = |key| crate::hf_json::special_token(&config, key).unwrap_or_default();
        let (bos, eos) = (token("bos_token"), token("eos_token"));
        let file = dir.join("chat_template.jinja");
        if let Ok(source) = std::fs::read_to_string(&file) {
            return Ok(Some(ChatTemplate::new(
                &source,
                &file.display().to_string(),
                &bos,
                &eos,
            )));
        }
        let origin = format!("{} (chat_template)", cfg_path.display());
        let source = match &config["chat_template"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(list) => {
                let pick = list
                    .iter()
                    .find(|t| t["name"] == "default")
                    .or_else(|| list.first());
                match pick.and_then(|t| t["template"].as_str()) {
                    Some(s) => s.to_string(),
                    None => return Err(format!("{origin}: a list without a template")),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(ChatTemplate::new(&source, &origin, &bos, &eos)))
    }

    /// The conversation as the model reads it.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("default delimiters");
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |fmt: String| -> String {
            strftime_now(&fmt)
        });
        let where_ = |e: &Error| {
            let line = e.line().map_or(String::new(), |l| format!(" (line {l})"));
            format!("{}: the chat template{line}: {e}", self.origin)
        };
        let tmpl = env
            .template_from_str(&self.source)
            .map_err(|e| where_(&e))?;
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| context! { role => m.role.clone(), content => m.content.clone() })
            .collect();
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.clone(),
            eos_token => self.eos.clone(),
            tools => Value::from(()),
        })
        .map_err(|e| where_(&e))
    }
}

/// `strftime_now`, as transformers gives templates (Llama 3 writes "%d %b %Y"); local time.
fn strftime_now(fmt: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    // A format chrono cannot read renders as the format itself rather than failing.
    if write!(out, "{}", chrono::Local::now().format(fmt)).is_err() {
        return fmt.to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_error_names_the_origin_and_line() {
        let t = ChatTemplate::new(
            "hello\n{% for m in messages %}{{ m.role }",
            "tok.json",
            "",
            "",
        );
        let e = t.render(&[Message::new("user", "hi")], true).unwrap_err();
        assert!(e.starts_with("tok.json: the chat template (line 2)"), "{e}");
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'system' %}{{ raise_exception('a system message first') }}{% endif %}",
            "t",
            "",
            "",
        );
        let e = t.render(&[Message::new("user", "hi")], true).unwrap_err();
        assert!(e.contains("a system message first"), "{e}");
    }

    #[test]
    fn dates_are_civil() {
        let s = strftime_now("%Y-%m-%d");
        assert_eq!(s.len(), 10);
        assert!(s.starts_with("20"), "{s}");
    }
}
