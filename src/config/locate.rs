//! Maps between byte spans and key paths in TOML text, so errors can name a key and a place.

use std::ops::Range;
use toml::de::{DeTable, DeValue};

/// The span of the value at `path`, or of its deepest present ancestor (a rule about a key the
/// file leaves at its default points at the table that should hold it).
pub fn span_of(text: &str, path: &[&str]) -> Option<Range<usize>> {
    let (root, _) = DeTable::parse_recoverable(text);
    let mut table = root.get_ref();
    let mut best = None;
    for (depth, part) in path.iter().enumerate() {
        let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref() == part) else {
            break;
        };
        best = Some(if depth + 1 == path.len() {
            value.span()
        } else {
            key.span()
        });
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    best
}

/// The dotted key path whose key or value contains `span`, the deepest one that does.
///
/// Tables are searched whole rather than by their own span, because the span of a `[table]`
/// covers only its header line. An empty span (serde's "somewhere in the document") names no key.
pub fn key_path_at(text: &str, span: Range<usize>) -> Option<String> {
    if span.is_empty() {
        return None;
    }
    let (root, _) = DeTable::parse_recoverable(text);
    find(root.get_ref(), &span).map(|p| p.join("."))
}

fn find(table: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<String>> {
    let contains = |r: Range<usize>| r.start <= span.start && span.end <= r.end;
    for (key, value) in table.iter() {
        let name = key.get_ref().to_string();
        if let DeValue::Table(inner) = value.get_ref()
            && let Some(mut deeper) = find(inner, span)
        {
            deeper.insert(0, name);
            return Some(deeper);
        }
        if contains(key.span()) || contains(value.span()) {
            return Some(vec![name]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name = \"x\"\n[optim]\nlr = 0.1\n[train]\nsteps = 5\n";

    #[test]
    fn finds_the_span_of_a_nested_value() {
        let s = span_of(TEXT, &["optim", "lr"]).unwrap();
        assert_eq!(&TEXT[s], "0.1");
    }

    #[test]
    fn falls_back_to_the_table_when_the_key_is_absent() {
        let s = span_of(TEXT, &["train", "eval_every"]).unwrap();
        assert_eq!(&TEXT[s], "train");
    }

    #[test]
    fn an_empty_span_names_no_key() {
        assert_eq!(key_path_at(TEXT, 0..0), None);
    }

    #[test]
    fn names_the_key_at_a_span() {
        let at = TEXT.find("0.1").unwrap();
        assert_eq!(key_path_at(TEXT, at..at + 3).as_deref(), Some("optim.lr"));
        let at = TEXT.find("name").unwrap();
        assert_eq!(key_path_at(TEXT, at..at + 4).as_deref(), Some("name"));
    }
}
