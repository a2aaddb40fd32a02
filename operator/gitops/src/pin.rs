//! A ModelDeployment's pinned version (`spec.model.version`) found in the YAML text of a file
//! and edited in place: only the number's characters change, so the team's comments, key
//! order, flow or block style and the file's other documents stay as they were.

use std::ops::Range;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where the pin of one document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The version the file pins.
    pub version: i64,
    /// The number's bytes in the text (inside the quotes, if quoted).
    span: Range<usize>,
    /// 1-based line of the number.
    pub line: usize,
}

/// Why the pin could not be found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PinError {
    #[error("line {line}, column {col}: not YAML: {message}")]
    Yaml {
        line: usize,
        col: usize,
        message: String,
    },
    #[error("no {kind} named {name:?} in it")]
    NoDocument { kind: String, name: String },
    #[error(
        "{count} documents are a {kind} named {name:?} (lines {lines}): which one is ciclo's is ambiguous"
    )]
    Ambiguous {
        kind: String,
        name: String,
        count: usize,
        lines: String,
    },
    #[error(
        "the {kind} {name:?} (line {line}) does not pin spec.model.version: write-back edits a pinned version, so pin the one serving now"
    )]
    NotPinned {
        kind: String,
        name: String,
        line: usize,
    },
    #[error("line {line}: spec.model.version is {value:?}, not a plain integer ciclo can edit")]
    NotAnInteger { line: usize, value: String },
}

/// One document's facts that matter here.
#[derive(Default)]
struct Document {
    kind: Option<String>,
    name: Option<String>,
    /// The version scalar: its text, style and place.
    version: Option<Result<(String, TScalarStyle, Marker), usize>>,
    line: usize,
}

/// A node being read: a mapping (with the key whose value comes next, if a key was read) or
/// a sequence; and the key it is the value of in its parent mapping.
enum Frame {
    Mapping {
        under: Option<String>,
        key: Option<String>,
    },
    Sequence,
}

/// Finds the pin of the `kind` document named `name` in `text`.
pub fn find(text: &str, kind: &str, name: &str) -> Result<Pin, PinError> {
    let documents = documents(text)?;
    let matching: Vec<&Document> = documents
        .iter()
        .filter(|d| d.kind.as_deref() == Some(kind) && d.name.as_deref() == Some(name))
        .collect();
    let doc = match matching.as_slice() {
        [] => {
            return Err(PinError::NoDocument {
                kind: kind.into(),
                name: name.into(),
            });
        }
        [one] => *one,
        many => {
            return Err(PinError::Ambiguous {
                kind: kind.into(),
                name: name.into(),
                count: many.len(),
                lines: many
                    .iter()
                    .map(|d| d.line.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    let not_pinned = || PinError::NotPinned {
        kind: kind.into(),
        name: name.into(),
        line: doc.line,
    };
    let (value, style, mark) = match &doc.version {
        None => return Err(not_pinned()),
        Some(Err(line)) => {
            return Err(PinError::NotAnInteger {
                line: *line,
                value: "(not a scalar)".into(),
            });
        }
        Some(Ok(v)) => v,
    };
    let not_integer = || PinError::NotAnInteger {
        line: mark.line(),
        value: value.clone(),
    };
    let version: i64 = value.parse().map_err(|_| not_integer())?;
    // The marker counts characters (whatever its docs say: a test with accents before the
    // pin shows it); the edit needs bytes.
    let at = text
        .char_indices()
        .nth(mark.index())
        .map_or(text.len(), |(byte, _)| byte);
    // The number's own bytes: a plain scalar starts at its marker, a quoted one a byte later.
    let start = match style {
        TScalarStyle::Plain => at,
        TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => at + 1,
        _ => return Err(not_integer()),
    };
    let span = start..start + value.len();
    if text.get(span.clone()) != Some(value.as_str()) {
        return Err(not_integer());
    }
    Ok(Pin {
        version,
        span,
        line: mark.line(),
    })
}

/// `text` with `pin` set to `version`.
pub fn set(text: &str, pin: &Pin, version: i64) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    out.push_str(&text[..pin.span.start]);
    out.push_str(&version.to_string());
    out.push_str(&text[pin.span.end..]);
    out
}

/// Every document of the stream, with its kind, name and version scalar.
fn documents(text: &str) -> Result<Vec<Document>, PinError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut doc = Document::default();
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        let (event, mark) = parser.next_token().map_err(|e| PinError::Yaml {
            line: e.marker().line(),
            col: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                doc = Document {
                    line: mark.line(),
                    ..Document::default()
                };
                stack.clear();
            }
            Event::DocumentEnd => docs.push(std::mem::take(&mut doc)),
            Event::MappingStart(..) => {
                let under = take_key(&mut stack);
                stack.push(Frame::Mapping { under, key: None });
            }
            Event::SequenceStart(..) => {
                take_key(&mut stack);
                stack.push(Frame::Sequence);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::Scalar(value, style, ..) => {
                if let Some(Frame::Mapping {
                    key: key @ None, ..
                }) = stack.last_mut()
                {
                    *key = Some(value);
                    continue;
                }
                let path = path(&mut stack);
                if is(&path, &["kind"]) {
                    doc.kind = Some(value);
                } else if is(&path, &["metadata", "name"]) {
                    doc.name = Some(value);
                } else if is(&path, &["spec", "model", "version"]) {
                    doc.version = Some(Ok((value, style, mark)));
                }
            }
            Event::Alias(_) => {
                if let Some(Frame::Mapping {
                    key: key @ None, ..
                }) = stack.last_mut()
                {
                    *key = Some(String::new());
                    continue;
                }
                if is(&path(&mut stack), &["spec", "model", "version"]) {
                    doc.version = Some(Err(mark.line()));
                }
            }
            Event::StreamStart | Event::Nothing => {}
        }
    }
    Ok(docs)
}

/// The key of the mapping on top of `stack` whose value is starting (taken: the next scalar
/// is a key again).
fn take_key(stack: &mut [Frame]) -> Option<String> {
    match stack.last_mut() {
        Some(Frame::Mapping { key, .. }) => Some(key.take().unwrap_or_default()),
        _ => None,
    }
}

/// The keys from the document's root to the value being read, if it is reached through
/// mappings only; takes the innermost key (the next scalar is a key again).
fn path(stack: &mut [Frame]) -> Option<Vec<String>> {
    let last = take_key(stack)?;
    let mut keys = Vec::with_capacity(stack.len());
    for (i, frame) in stack.iter().enumerate() {
        match frame {
            Frame::Mapping { under: None, .. } if i == 0 => {}
            Frame::Mapping {
                under: Some(under), ..
            } if i > 0 => keys.push(under.clone()),
            _ => return None,
        }
    }
    keys.push(last);
    Some(keys)
}

/// Whether `path` is `expected`.
fn is(path: &Option<Vec<String>>, expected: &[&str]) -> bool {
    path.as_ref()
        .is_some_and(|p| p.iter().map(String::as_str).eq(expected.iter().copied()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: &str = "ModelDeployment";

    fn edit(text: &str, name: &str, version: i64) -> Result<String, PinError> {
        let pin = find(text, KIND, name)?;
        Ok(set(text, &pin, version))
    }

    #[test]
    fn block_style_pin_changes_and_nothing_else() {
        let text = "# serving for the web team\napiVersion: ciclo.dev/v1alpha1\nkind: ModelDeployment\nmetadata:\n  name: web   # the public one\nspec:\n  model:\n    name: iris\n    version: 9  # blessed on Monday\n  replicas: 2\n";
        let pin = find(text, KIND, "web").unwrap();
        assert_eq!((pin.version, pin.line), (9, 9));
        assert_eq!(
            set(text, &pin, 10),
            text.replace("version: 9  #", "version: 10  #")
        );
    }

    #[test]
    fn flow_style_and_quoted_pins_keep_their_style() {
        let flow = "kind: ModelDeployment\nmetadata: {name: web}\nspec:\n  model: {name: iris, version: 3}\n";
        assert_eq!(
            edit(flow, "web", 12).unwrap(),
            flow.replace("version: 3}", "version: 12}")
        );
        let quoted = "kind: ModelDeployment\nmetadata: {name: web}\nspec:\n  model:\n    version: \"3\"\n    name: iris\n";
        assert_eq!(
            edit(quoted, "web", 4).unwrap(),
            quoted.replace("\"3\"", "\"4\"")
        );
    }

    #[test]
    fn the_named_document_of_a_multi_document_file_is_edited() {
        let text = "kind: ModelDeployment\nmetadata: {name: a}\nspec: {model: {name: m, version: 1}}\n---\n# ünïcödé before it moves no byte offset\nkind: ModelDeployment\nmetadata: {name: b}\nspec: {model: {name: m, version: 1}}\n---\nkind: TrainingRun\nmetadata: {name: b}\nspec: {model: {name: m, version: 5}}\n";
        let out = edit(text, "b", 2).unwrap();
        let docs: Vec<&str> = out.split("---\n").collect();
        assert!(docs[0].contains("version: 1"), "{out}");
        assert!(docs[1].contains("version: 2"), "{out}");
        assert!(docs[2].contains("version: 5"), "{out}");
    }

    #[test]
    fn a_version_under_another_key_is_not_the_pin() {
        let text = "kind: ModelDeployment\nmetadata: {name: web, labels: {version: \"7\"}}\nspec:\n  analysis: {version: 3}\n  model: {name: iris}\n";
        assert_eq!(
            find(text, KIND, "web"),
            Err(PinError::NotPinned {
                kind: KIND.into(),
                name: "web".into(),
                line: 1
            })
        );
    }

    #[test]
    fn problems_name_the_line_and_the_document() {
        assert_eq!(
            find("kind: ModelDeployment\nmetadata: {name: x}\n", KIND, "web"),
            Err(PinError::NoDocument {
                kind: KIND.into(),
                name: "web".into()
            })
        );
        let twice = "kind: ModelDeployment\nmetadata: {name: web}\n---\nkind: ModelDeployment\nmetadata: {name: web}\n";
        assert!(matches!(
            find(twice, KIND, "web"),
            Err(PinError::Ambiguous { count: 2, .. })
        ));
        let text = "kind: ModelDeployment\nmetadata: {name: web}\nspec:\n  model: {name: iris, version: latest}\n";
        assert_eq!(
            find(text, KIND, "web"),
            Err(PinError::NotAnInteger {
                line: 4,
                value: "latest".into()
            })
        );
        let Err(PinError::Yaml { line, .. }) = find("kind: [unclosed\nmetadata: x\n", KIND, "web")
        else {
            panic!("not YAML")
        };
        assert!(line >= 1);
    }
}
