//! A small S-expression reader (with line numbers) for VNN-LIB text.

use crate::error::{Result, SpecError};

/// An atom or a list, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sexpr<'a> {
    Atom(&'a str, usize),
    List(Vec<Sexpr<'a>>, usize),
}

impl Sexpr<'_> {
    pub(crate) fn line(&self) -> usize {
        match self {
            Sexpr::Atom(_, l) | Sexpr::List(_, l) => *l,
        }
    }
}

/// Parses every top-level expression of `text`; `;` starts a comment to the end of the line.
pub(crate) fn parse(text: &str) -> Result<Vec<Sexpr<'_>>> {
    let bytes = text.as_bytes();
    let mut stack: Vec<(Vec<Sexpr>, usize)> = Vec::new();
    let mut top = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                stack.push((Vec::new(), line));
                i += 1;
            }
            b')' => {
                let (items, start) = stack.pop().ok_or(SpecError::Syntax {
                    line,
                    reason: "unmatched ')'".into(),
                })?;
                let e = Sexpr::List(items, start);
                match stack.last_mut() {
                    Some((parent, _)) => parent.push(e),
                    None => top.push(e),
                }
                i += 1;
            }
            _ => {
                let start = i;
                while i < bytes.len()
                    && !matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b';')
                {
                    i += 1;
                }
                let atom = Sexpr::Atom(&text[start..i], line);
                match stack.last_mut() {
                    Some((parent, _)) => parent.push(atom),
                    None => top.push(atom),
                }
            }
        }
    }
    if let Some((_, start)) = stack.last() {
        return Err(SpecError::Syntax {
            line: *start,
            reason: "'(' is never closed".into(),
        });
    }
    Ok(top)
}
