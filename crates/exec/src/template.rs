//! `${name}` references in script arguments, commands, file paths, targets and messages.
//!
//! Syntax: `${NAME}` where NAME matches `[A-Za-z_][A-Za-z0-9_]*` is a reference; `$$` is a
//! literal `$`. Anything else that starts with `$` — `$HOME`, `${x:-y}`, `${#a}` — is left
//! as written, so shell text passes through. Consequence for inline shell commands: a shell
//! `${HOME}` must be written `$${HOME}` (or `$HOME`), and the shell's `$$` must be written `$$$$`.

use crate::error::ExecError;
use crate::params::{ParamDef, Resolved, is_valid_name};

enum Piece<'a> {
    Text(&'a str),
    Dollar,
    Ref { name: &'a str, offset: usize },
}

fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push(Piece::Text(s.get(text_start..i).unwrap_or("")));
                out.push(Piece::Dollar);
                i += 2;
                text_start = i;
            }
            Some(b'{') => {
                let name_start = i + 2;
                let close = s
                    .get(name_start..)
                    .and_then(|rest| rest.find('}'))
                    .map(|p| name_start + p);
                match close.and_then(|c| s.get(name_start..c).map(|n| (c, n))) {
                    Some((c, name)) if is_valid_name(name) => {
                        out.push(Piece::Text(s.get(text_start..i).unwrap_or("")));
                        out.push(Piece::Ref { name, offset: i });
                        i = c + 1;
                        text_start = i;
                    }
                    _ => i += 2,
                }
            }
            _ => i += 1,
        }
    }
    out.push(Piece::Text(s.get(text_start..).unwrap_or("")));
    out
}

/// Every `${name}` reference with the byte offset of its `$`, in order of appearance.
pub fn references(s: &str) -> Vec<(String, usize)> {
    pieces(s)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Ref { name, offset } => Some((name.to_string(), offset)),
            _ => None,
        })
        .collect()
}

/// Replaces references with their values and `$$` with `$`. An unknown variable is an error
/// naming it (the first one found).
pub fn render(s: &str, values: &Resolved) -> Result<String, ExecError> {
    let mut out = String::with_capacity(s.len());
    for piece in pieces(s) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Dollar => out.push('$'),
            Piece::Ref { name, offset } => match values.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    return Err(ExecError::TemplateUnknownVariable {
                        name: name.to_string(),
                        offset,
                    });
                }
            },
        }
    }
    Ok(out)
}

/// An order in which variable defaults can be rendered (indices into `defs`, each variable after
/// the ones its default refers to), or the first cycle found as a path `a → b → a`.
/// References to undeclared names are ignored here (reported elsewhere).
pub fn default_order(defs: &[ParamDef]) -> Result<Vec<usize>, Vec<String>> {
    let index_of = |name: &str| defs.iter().position(|d| d.name == name);
    let edges: Vec<Vec<usize>> = defs
        .iter()
        .map(|d| {
            d.default
                .as_deref()
                .map(|def| {
                    references(def)
                        .iter()
                        .filter_map(|(n, _)| index_of(n))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; defs.len()];
    let mut order = Vec::with_capacity(defs.len());
    // Iterative depth-first search: (node, next edge to look at).
    for root in 0..defs.len() {
        if mark[root] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let targets = edges.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(&to) = targets.get(*next) {
                *next += 1;
                match mark[to] {
                    Mark::New => {
                        mark[to] = Mark::Active;
                        stack.push((to, 0));
                    }
                    Mark::Active => {
                        let start = stack.iter().position(|&(n, _)| n == to).unwrap_or(0);
                        let mut path: Vec<String> = stack[start..]
                            .iter()
                            .filter_map(|&(n, _)| defs.get(n).map(|d| d.name.clone()))
                            .collect();
                        path.push(defs.get(to).map(|d| d.name.clone()).unwrap_or_default());
                        return Err(path);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

/// [`default_order`] as an [`ExecError`].
pub fn check_default_cycles(defs: &[ParamDef]) -> Result<(), ExecError> {
    default_order(defs)
        .map(|_| ())
        .map_err(|path| ExecError::VariableCycle { path })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::params::{ParamType, ResolvedValue};

    fn values(pairs: &[(&str, &str)]) -> Resolved {
        Resolved::from_values(
            pairs
                .iter()
                .map(|(n, v)| ResolvedValue {
                    name: n.to_string(),
                    value: v.to_string(),
                    secret: false,
                })
                .collect(),
        )
    }

    #[test]
    fn finds_references_with_offsets() {
        assert_eq!(
            references("deploy ${app} to ${dir}/x $$ ${app}"),
            vec![("app".into(), 7), ("dir".into(), 17), ("app".into(), 29)]
        );
        assert!(references("echo $HOME ${x:-y} ${#a} ${ unterminated ${1x}").is_empty());
        assert!(references("$${app}").is_empty());
        assert_eq!(
            references("${a}${b}"),
            vec![("a".into(), 0), ("b".into(), 4)]
        );
    }

    #[test]
    fn renders() {
        let v = values(&[("app", "web"), ("dir", "/srv")]);
        assert_eq!(
            render(
                "cp ${app}.tgz ${dir}/ && echo $$PATH $HOME ${x:-y} 价${app}",
                &v
            )
            .unwrap(),
            "cp web.tgz /srv/ && echo $PATH $HOME ${x:-y} 价web"
        );
        assert_eq!(render("$$${app}", &v).unwrap(), "$web");
        assert_eq!(render("trailing $", &v).unwrap(), "trailing $");
        let err = render("a ${missing} b", &v).unwrap_err();
        assert_eq!(
            err,
            ExecError::TemplateUnknownVariable {
                name: "missing".into(),
                offset: 2
            }
        );
        assert_eq!(err.code(), "exec.variable_unknown");
    }

    #[test]
    fn cycle_paths() {
        let d = |n: &str, def: &str| ParamDef::new(n, ParamType::String).with_default(def);
        let defs = vec![d("a", "${b}"), d("b", "${c}"), d("c", "${a}"), d("x", "1")];
        assert_eq!(default_order(&defs).unwrap_err(), vec!["a", "b", "c", "a"]);
        let err = check_default_cycles(&defs).unwrap_err();
        assert!(
            err.message_en().contains("a → b → c → a"),
            "{}",
            err.message_en()
        );
        let self_ref = vec![d("a", "x${a}")];
        assert_eq!(default_order(&self_ref).unwrap_err(), vec!["a", "a"]);
        let chain = vec![d("a", "${b}/${c}"), d("b", "${c}"), d("c", "z")];
        assert_eq!(default_order(&chain).unwrap(), vec![2, 1, 0]);
    }
}
