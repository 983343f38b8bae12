//! A small YAML tree that remembers the line of every node, so that errors in answers files can
//! name the line. Built from yaml-rust2's event parser (serde-based YAML crates drop positions).

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A scalar; `plain` is false for quoted and block scalars (so `"null"` stays a string).
    Scalar {
        value: String,
        plain: bool,
        line: usize,
    },
    Seq {
        items: Vec<Node>,
        line: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        line: usize,
    },
    /// Aliases are not supported in answers files and are reported as such.
    Alias {
        line: usize,
    },
}

impl Node {
    pub fn line(&self) -> usize {
        match self {
            Node::Scalar { line, .. }
            | Node::Seq { line, .. }
            | Node::Map { line, .. }
            | Node::Alias { line } => *line,
        }
    }

    /// A plain `~`, `null` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { value, plain: true, .. }
            if value.is_empty() || value == "~" || value == "null" || value == "Null" || value == "NULL")
    }

    /// The scalar text, if this is a non-null scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar { value, .. } if !self.is_null() => Some(value),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<Node>,
    /// Pending keys of open mappings (parallel to `stack` entries that are maps).
    keys: Vec<Option<Node>>,
    root: Option<Node>,
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Node::Seq { items, .. }) => items.push(node),
            Some(Node::Map { entries, .. }) => {
                let slot = self.keys.last_mut();
                match slot {
                    Some(pending @ Some(_)) => {
                        if let Some(key) = pending.take() {
                            entries.push((key, node));
                        }
                    }
                    Some(pending) => *pending = Some(node),
                    None => {}
                }
            }
            Some(_) => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(value, style, _, _) => self.push_value(Node::Scalar {
                value,
                plain: style == TScalarStyle::Plain,
                line,
            }),
            Event::Alias(_) => self.push_value(Node::Alias { line }),
            Event::SequenceStart(..) => self.stack.push(Node::Seq {
                items: Vec::new(),
                line,
            }),
            Event::MappingStart(..) => {
                self.stack.push(Node::Map {
                    entries: Vec::new(),
                    line,
                });
                self.keys.push(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if matches!(ev, Event::MappingEnd) {
                    self.keys.pop();
                }
                if let Some(node) = self.stack.pop() {
                    self.push_value(node);
                }
            }
            _ => {}
        }
    }
}

/// Parses one YAML document; the error is `(line, message)`.
pub fn parse(text: &str) -> Result<Option<Node>, (usize, String)> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, false)
        .map_err(|e| (e.marker().line(), e.info().to_string()))?;
    Ok(builder.root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_and_styles() {
        let text = "a: 1\nb:\n  - x\n  - \"null\"\nc: ~\n";
        let Ok(Some(Node::Map { entries, .. })) = parse(text) else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0.as_str(), Some("a"));
        assert_eq!(entries[1].1.line(), 3);
        let Node::Seq { items, .. } = &entries[1].1 else {
            panic!("not a seq")
        };
        assert_eq!(items[1].as_str(), Some("null"), "quoted null is a string");
        assert!(entries[2].1.is_null());
    }

    #[test]
    fn reports_syntax_errors_with_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").err();
        assert!(matches!(err, Some((line, _)) if line >= 2), "{err:?}");
    }
}
