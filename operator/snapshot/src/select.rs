//! Which files under the prefix belong to the dataset: `include` globs (none: all), minus
//! `exclude` globs, matched against the path relative to the prefix.

use globset::{Glob, GlobSet, GlobSetBuilder};

#[derive(Debug, Clone)]
pub struct Selection {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl Selection {
    /// Compiles the globs; an invalid one is an error naming it.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        let build = |globs: &[String], field: &str| -> Result<GlobSet, String> {
            let mut set = GlobSetBuilder::new();
            for g in globs {
                set.add(Glob::new(g).map_err(|e| format!("{field}: invalid glob {g:?}: {e}"))?);
            }
            set.build().map_err(|e| format!("{field}: {e}"))
        };
        Ok(Self {
            include: if include.is_empty() {
                None
            } else {
                Some(build(include, "include")?)
            },
            exclude: build(exclude, "exclude")?,
        })
    }

    /// Whether the file at `relative` (to the prefix) is part of the dataset.
    pub fn selects(&self, relative: &str) -> bool {
        self.include
            .as_ref()
            .is_none_or(|inc| inc.is_match(relative))
            && !self.exclude.is_match(relative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_then_exclude() {
        let s = Selection::new(&["**/*.csv".into()], &["tmp/**".into()]).unwrap();
        assert!(s.selects("2026/01/batch.csv"));
        assert!(s.selects("batch.csv"));
        assert!(!s.selects("tmp/partial.csv"));
        assert!(!s.selects("notes.txt"));
        let all = Selection::new(&[], &[]).unwrap();
        assert!(all.selects("anything/at/all.bin"));
    }

    #[test]
    fn an_invalid_glob_is_named() {
        let err = Selection::new(&["[".into()], &[]).unwrap_err();
        assert!(err.starts_with("include: invalid glob \"[\""), "{err}");
    }
}
