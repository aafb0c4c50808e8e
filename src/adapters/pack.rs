//! A team template pack: one directory (usually a git checkout the reps pull) holding a
//! `pack.toml` (name, version, where the templates and rules are, what `pack check` holds them to,
//! team follow-up defaults), the reply templates and the classifier rules file. This module reads
//! and validates `pack.toml` and resolves the pack's paths; loading the templates and rules
//! themselves is left to `templates` and `core::classify`, and the `[follow-up]` table to
//! `config`, which merges it under the rep's own.

use crate::config::location;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The manifest's file name inside a pack directory.
pub const MANIFEST: &str = "pack.toml";
/// `templates` when `pack.toml` does not say.
pub const DEFAULT_TEMPLATES: &str = "templates";
/// `rules` when `pack.toml` does not say; a pack without the file uses the built-in rules.
pub const DEFAULT_RULES: &str = "rules.toml";

/// The built-in pack's manifest: the repository's own `pack.toml`, naming `templates/` and
/// `config/rules.toml`, which the binary embeds.
const BUILTIN_MANIFEST: &str = include_str!("../../pack.toml");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read template pack file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", location(file, *line, key))]
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        /// "version", "[check] max-words", or empty for a syntax error.
        key: String,
        message: String,
    },
}

/// Which pack wrote a draft: what `pushback status` shows and every draft records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PackLabel {
    pub name: String,
    pub version: String,
}

impl fmt::Display for PackLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// Which template, of which pack, wrote a draft: recorded with every draft, grouped by in
/// `pushback pack stats`. `pack` is `None` for a `[templates] dir` of the rep's own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TemplateSource {
    /// The template's file name, "rfp.txt".
    pub template: String,
    pub pack: Option<PackLabel>,
}

/// A validated `pack.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub label: PackLabel,
    pub description: Option<String>,
    /// Relative to the pack directory.
    pub templates: PathBuf,
    /// Relative to the pack directory; `None` when the key is absent (then `rules.toml` is used
    /// when the pack has one).
    pub rules: Option<PathBuf>,
    /// `[check] max-words`: the most words a rendered draft may have in `pack check`.
    pub max_words: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    name: Spanned<String>,
    version: Spanned<toml::Value>,
    description: Option<String>,
    templates: Option<Spanned<String>>,
    rules: Option<Spanned<String>>,
    #[serde(default)]
    check: RawCheck,
    /// Validated by `config` (the same keys as the rep's `[follow-up]`), which owns that policy.
    #[serde(rename = "follow-up")]
    _follow_up: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCheck {
    max_words: Option<Spanned<i64>>,
}

impl Manifest {
    /// Validates manifest text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &Path) -> Result<Manifest, Error> {
        let invalid = |span: Range<usize>, key: &str, message: String| Error::Invalid {
            file: file.to_path_buf(),
            line: Some(line_of(text, span.start)),
            key: key.to_string(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| Error::Invalid {
            file: file.to_path_buf(),
            line: e
                .span()
                .filter(|s| s.start > 0)
                .map(|s| line_of(text, s.start)),
            key: String::new(),
            message: e.message().trim().to_string(),
        })?;
        let name = raw.name.get_ref().trim();
        if name.is_empty() {
            return Err(invalid(raw.name.span(), "name", "must not be empty".into()));
        }
        let version = match raw.version.get_ref() {
            toml::Value::String(v) if !v.trim().is_empty() => v.trim().to_string(),
            toml::Value::Integer(v) => v.to_string(),
            _ => {
                return Err(invalid(
                    raw.version.span(),
                    "version",
                    "must be a non-empty string such as \"1.4.0\" (or a whole number)".into(),
                ));
            }
        };
        let relative = |value: Option<Spanned<String>>, key: &str| {
            value
                .map(|v| {
                    let path = PathBuf::from(v.get_ref());
                    if path.is_absolute() || v.get_ref().trim().is_empty() {
                        Err(invalid(
                            v.span(),
                            key,
                            "must be a path inside the pack, relative to pack.toml".into(),
                        ))
                    } else {
                        Ok(path)
                    }
                })
                .transpose()
        };
        let templates =
            relative(raw.templates, "templates")?.unwrap_or_else(|| DEFAULT_TEMPLATES.into());
        let rules = relative(raw.rules, "rules")?;
        let max_words = match raw.check.max_words {
            Some(max) if *max.get_ref() < 1 => {
                return Err(invalid(
                    max.span(),
                    "[check] max-words",
                    "must be 1 or more".into(),
                ));
            }
            Some(max) => Some(usize::try_from(*max.get_ref()).unwrap_or(usize::MAX)),
            None => None,
        };
        Ok(Manifest {
            label: PackLabel {
                name: name.to_string(),
                version,
            },
            description: raw.description,
            templates,
            rules,
            max_words,
        })
    }

    /// The built-in pack's manifest (the repository's `pack.toml`).
    pub fn builtin() -> Manifest {
        Manifest::from_toml(BUILTIN_MANIFEST, Path::new(MANIFEST))
            .expect("the built-in pack.toml is valid (covered by tests)")
    }
}

/// A pack directory with its manifest read and its paths resolved (the files themselves are not
/// read here).
#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The manifest's own text, for `config` to read `[follow-up]` from.
    pub manifest_text: String,
    pub templates_dir: PathBuf,
    /// `None`: the pack has no rules file and the built-in rules apply.
    pub rules: Option<PathBuf>,
}

impl Pack {
    /// Reads `dir/pack.toml` and resolves the templates directory and rules file. A rules file the
    /// manifest names must exist; the default `rules.toml` may be absent.
    pub fn load(dir: &Path) -> Result<Pack, Error> {
        let file = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&file).map_err(|source| Error::Read {
            path: file.clone(),
            source,
        })?;
        let manifest = Manifest::from_toml(&text, &file)?;
        let templates_dir = dir.join(&manifest.templates);
        if !templates_dir.is_dir() {
            return Err(Error::Invalid {
                line: key_line(&text, "templates"),
                file,
                key: "templates".into(),
                message: format!("{} is not a directory", templates_dir.display()),
            });
        }
        let rules = match &manifest.rules {
            Some(rules) => {
                let path = dir.join(rules);
                if !path.is_file() {
                    return Err(Error::Invalid {
                        line: key_line(&text, "rules"),
                        file,
                        key: "rules".into(),
                        message: format!("{} is not a file", path.display()),
                    });
                }
                Some(path)
            }
            None => Some(dir.join(DEFAULT_RULES)).filter(|p| p.is_file()),
        };
        Ok(Pack {
            dir: dir.to_path_buf(),
            manifest,
            manifest_text: text,
            templates_dir,
            rules,
        })
    }

    pub fn manifest_file(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }
}

/// Whether a changed file belongs to a pack (its manifest, templates or rules) rather than to
/// git's own bookkeeping or an editor's swap and backup files.
pub fn is_pack_file(pack_dir: &Path, path: &Path) -> bool {
    let inside = path.strip_prefix(pack_dir).unwrap_or(path);
    let in_git = inside.components().any(|c| c.as_os_str() == ".git");
    !in_git
        && path
            .extension()
            .is_some_and(|ext| ext == "txt" || ext == "toml")
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of a top-level `key = ...` in manifest text.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, Error> {
        Manifest::from_toml(text, Path::new("/p/pack.toml"))
    }

    #[test]
    fn the_builtin_manifest_names_the_shipped_templates_and_rules() {
        let manifest = Manifest::builtin();
        assert_eq!(manifest.label.name, "pushback-default");
        assert_eq!(manifest.templates, PathBuf::from("templates"));
        assert_eq!(manifest.rules, Some(PathBuf::from("config/rules.toml")));
        assert!(manifest.max_words.is_some());
    }

    #[test]
    fn a_minimal_manifest_takes_the_default_paths() {
        let manifest = parse("name = \"sales-emea\"\nversion = 3\n").unwrap();
        assert_eq!(
            manifest.label,
            PackLabel {
                name: "sales-emea".into(),
                version: "3".into()
            }
        );
        assert_eq!(manifest.label.to_string(), "sales-emea 3");
        assert_eq!(manifest.templates, PathBuf::from(DEFAULT_TEMPLATES));
        assert_eq!(manifest.rules, None);
        assert_eq!(manifest.max_words, None);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            ("version = \"1\"\n", None, "", "missing field `name`"),
            (
                "name = \"\"\nversion = \"1\"\n",
                Some(1),
                "name",
                "must not be empty",
            ),
            (
                "name = \"a\"\nversion = \"\"\n",
                Some(2),
                "version",
                "non-empty",
            ),
            (
                "name = \"a\"\nversion = 1.5\n",
                Some(2),
                "version",
                "non-empty",
            ),
            (
                "name = \"a\"\nversion = \"1\"\n[check]\nmax-words = 0\n",
                Some(4),
                "[check] max-words",
                "1 or more",
            ),
            (
                "name = \"a\"\nversion = \"1\"\ntemplates = \"/etc/t\"\n",
                Some(3),
                "templates",
                "inside the pack",
            ),
            (
                "name = \"a\"\nversion = \"1\"\nnmae = \"b\"\n",
                Some(3),
                "",
                "unknown field `nmae`",
            ),
        ];
        for (text, line, key, message) in cases {
            match parse(text) {
                Err(Error::Invalid {
                    file,
                    line: got_line,
                    key: got_key,
                    message: got,
                }) => {
                    assert_eq!(file, PathBuf::from("/p/pack.toml"), "{text}");
                    assert_eq!(got_line, line, "{text}: {got}");
                    assert_eq!(got_key, key, "{text}");
                    assert!(got.contains(message), "{text}: {got}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn load_resolves_paths_and_refuses_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(MANIFEST), "name = \"a\"\nversion = \"1\"\n").unwrap();
        let missing = Pack::load(root).unwrap_err().to_string();
        assert!(
            missing.contains("templates") && missing.contains("not a directory"),
            "{missing}"
        );
        std::fs::create_dir(root.join("templates")).unwrap();
        let pack = Pack::load(root).unwrap();
        assert_eq!(pack.templates_dir, root.join("templates"));
        assert_eq!(pack.rules, None, "no rules.toml: the built-in rules");
        std::fs::write(root.join(DEFAULT_RULES), "version = 1\n").unwrap();
        assert_eq!(
            Pack::load(root).unwrap().rules,
            Some(root.join(DEFAULT_RULES))
        );

        std::fs::write(
            root.join(MANIFEST),
            "name = \"a\"\nversion = \"1\"\nrules = \"classifier.toml\"\n",
        )
        .unwrap();
        let error = Pack::load(root).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{} line 3: rules:", root.join(MANIFEST).display())),
            "{error}"
        );
    }

    #[test]
    fn git_bookkeeping_and_swap_files_are_not_pack_changes() {
        let pack = Path::new("/p");
        assert!(is_pack_file(pack, Path::new("/p/templates/rfp.txt")));
        assert!(is_pack_file(pack, Path::new("/p/pack.toml")));
        assert!(!is_pack_file(pack, Path::new("/p/.git/config.toml")));
        assert!(!is_pack_file(pack, Path::new("/p/templates/.rfp.txt.swp")));
        assert!(!is_pack_file(pack, Path::new("/p/.git/index")));
    }
}
