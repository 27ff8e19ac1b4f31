//! JSON paths for problem reports (`homecore.permissions.states_write[2]`).

use std::fmt::Write as _;

use super::error::cap;

/// A JSON path, built on the stack as the walk descends and rendered only for a problem.
#[derive(Debug, Clone, Copy)]
pub(super) enum Path<'a> {
    /// The manifest itself.
    Root,
    /// A key of the parent object.
    Key(&'a Path<'a>, &'a str),
    /// An element of the parent array.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    pub(super) fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path::Key(self, key)
    }

    pub(super) fn index(&self, index: usize) -> Path<'_> {
        Path::Index(self, index)
    }

    pub(super) fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match *self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.write(out);
                let plain = !key.is_empty()
                    && key.len() <= 64
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if plain {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                } else {
                    write!(out, "[{:?}]", cap(key)).expect("writing to a String cannot fail");
                }
            }
            Path::Index(parent, index) => {
                parent.write(out);
                write!(out, "[{index}]").expect("writing to a String cannot fail");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_dotted_indexed_and_quote_odd_keys() {
        let root = Path::Root;
        let a = root.key("homecore");
        let b = a.key("permissions");
        let c = b.key("states_write");
        assert_eq!(c.index(2).render(), "homecore.permissions.states_write[2]");
        assert_eq!(root.index(0).render(), "[0]");
        assert_eq!(a.key("bad key\n").render(), r#"homecore["bad key\n"]"#);
        assert_eq!(root.key("").render(), r#"[""]"#);
    }
}
