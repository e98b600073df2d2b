//! Configuration errors that point at file, line and column, with the component and a hint.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a configuration file.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, 0 when the problem has no position (e.g. the file cannot be read).
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The component, e.g. `probe "disks"`.
    pub component: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, where a hint helps.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        if let Some(c) = &self.component {
            write!(f, "{c}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Displays a [`ConfigError`] as a warning: `FILE:LINE:COL: warning: COMPONENT: MESSAGE`.
pub struct AsWarning<'a>(pub &'a ConfigError);

impl fmt::Display for AsWarning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.0;
        write!(f, "{}", w.file.display())?;
        if w.line > 0 {
            write!(f, ":{}:{}", w.line, w.column)?;
        }
        f.write_str(": warning: ")?;
        if let Some(c) = &w.component {
            write!(f, "{c}: ")?;
        }
        f.write_str(&w.message)?;
        if let Some(h) = &w.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found in one file.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors for one source text, turning byte spans into lines and columns.
pub struct Collector<'a> {
    file: &'a Path,
    src: &'a str,
    /// The errors so far.
    pub errors: Vec<ConfigError>,
}

impl<'a> Collector<'a> {
    /// A collector for a file's text.
    pub fn new(file: &'a Path, src: &'a str) -> Collector<'a> {
        Collector {
            file,
            src,
            errors: Vec::new(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let before = &self.src[..self.src.floor_char_boundary(offset)];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        (line, col)
    }

    /// Records a problem at a span.
    pub fn push(
        &mut self,
        span: Option<Range<usize>>,
        component: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let (line, column) = span.map(|s| self.line_col(s.start)).unwrap_or((0, 0));
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            component: component.map(str::to_string),
            message: message.into(),
            hint,
        });
    }

    /// Records a problem at `key = …` of the table that starts at byte `table` (at the table
    /// when the key is not written there plainly).
    pub fn push_key(
        &mut self,
        table: usize,
        key: &str,
        component: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let at = super::caps::key_span(self.src, table, key).unwrap_or(table..table);
        self.push(Some(at), Some(component), message, hint);
    }

    /// Warns at `key` when the file a probe will read at run time (a password, a token, a CA)
    /// is missing, unreadable or empty on this host.
    pub fn warn_unreadable(&mut self, table: usize, key: &str, component: &str, path: &Path) {
        let why = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => "is empty".to_string(),
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_string(),
            Err(e) => format!("cannot be read ({e})"),
        };
        self.push_key(
            table,
            key,
            component,
            format!(
                "`{key}` {} {why} on this host: the probe will read unknown until it does",
                path.display()
            ),
            Some("the file must exist and be readable by the user lookout runs as".into()),
        );
    }

    /// Records a deserialization error; an unknown field gets a "did you mean" hint drawn from
    /// the kind's fields and `extra_fields` (the fields every entry has).
    pub fn push_toml(
        &mut self,
        err: &toml::de::Error,
        component: Option<&str>,
        fallback_span: Range<usize>,
        extra_fields: &[&str],
    ) {
        let raw = err.message().trim().to_string();
        let (message, hint) = match unknown_field(&raw, extra_fields) {
            Some((field, candidates)) => {
                let hint = match suggest(&field, &candidates) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("valid fields: {}", candidates.join(", ")),
                };
                (format!("unknown field `{field}`"), Some(hint))
            }
            None => (raw, None),
        };
        self.push(
            Some(err.span().unwrap_or(fallback_span)),
            component,
            message,
            hint,
        );
    }

    /// The errors, those with a position in file order after those without.
    pub fn into_sorted(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|e| (e.line, e.column));
        self.errors
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" messages: the field and every
/// valid name.
fn unknown_field<'a>(message: &'a str, extra: &[&'a str]) -> Option<(String, Vec<&'a str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let mut candidates: Vec<&str> = extra
        .iter()
        .copied()
        .filter(|f| *f != "id" && *f != "kind")
        .collect();
    candidates.extend(rest.split('`').skip(1).step_by(2));
    Some((field.to_string(), candidates))
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(
            suggest("intervl", &["interval", "timeout"]),
            Some("interval")
        );
        assert_eq!(suggest("colour", &["interval", "timeout"]), None);
    }

    #[test]
    fn line_and_column_count_characters() {
        let c = Collector::new(Path::new("f"), "a = 1\nbé = \"x\"\n");
        assert_eq!(c.line_col(0), (1, 1));
        assert_eq!(c.line_col(6), (2, 1));
        assert_eq!(c.line_col(10), (2, 4));
    }
}
