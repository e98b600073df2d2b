//! `${NAME}` in file paths: every `*_file` key (and the PostgreSQL TLS files) may name an
//! environment variable, so a unit with `LoadCredential=` can write
//! `token_file = "${CREDENTIALS_DIRECTORY}/ntfy-token"`. Expanded once, while parsing, so an
//! unset variable is an error at its line and column, before anything starts.

use super::error::Collector;
use super::values::expand_env;
use std::borrow::Cow;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Keys that hold a path but do not end in `_file`.
const OTHER_PATH_KEYS: &[&str] = &["sslrootcert", "sslcert", "sslkey"];

/// Whether a key's value is a path that may hold `${NAME}`.
pub fn is_path_key(key: &str) -> bool {
    key.ends_with("_file") || OTHER_PATH_KEYS.contains(&key)
}

/// Expands `${NAME}` in every path value of the document; an unset variable is an error at the
/// value (the value is left as written, so the file does not load).
pub fn expand(doc: &mut DeTable<'_>, errors: &mut Collector<'_>) {
    for (key, value) in doc.iter_mut() {
        let section = key.get_ref().to_string();
        match value.get_mut() {
            DeValue::Table(t) => expand_table(t, &format!("[{section}]"), errors),
            DeValue::Array(entries) => {
                for entry in entries.iter_mut() {
                    if let DeValue::Table(t) = entry.get_mut() {
                        let component = match entry_name(t) {
                            Some(name) => format!("{section} {name:?}"),
                            None => format!("[[{section}]]"),
                        };
                        expand_table(t, &component, errors);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The `id` (or `name`) of a `[[section]]` entry, for error messages.
fn entry_name(t: &DeTable<'_>) -> Option<String> {
    ["id", "name"]
        .iter()
        .find_map(|k| match t.get(*k)?.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => None,
        })
}

fn expand_table(t: &mut DeTable<'_>, component: &str, errors: &mut Collector<'_>) {
    for (key, value) in t.iter_mut() {
        let key = key.get_ref().as_ref();
        match value.get_mut() {
            DeValue::Table(inner) => expand_table(inner, component, errors),
            DeValue::Array(items) => {
                for item in items.iter_mut() {
                    if let DeValue::Table(inner) = item.get_mut() {
                        expand_table(inner, component, errors);
                    }
                }
            }
            DeValue::String(_) if is_path_key(key) => expand_value(key, value, component, errors),
            _ => {}
        }
    }
}

fn expand_value(
    key: &str,
    value: &mut Spanned<DeValue<'_>>,
    component: &str,
    errors: &mut Collector<'_>,
) {
    let span = value.span();
    let DeValue::String(s) = value.get_mut() else {
        return;
    };
    if !s.contains("${") {
        return;
    }
    match expand_env(s) {
        Ok(expanded) => *s = Cow::Owned(expanded),
        Err(e) => {
            let hint = if s.contains("${CREDENTIALS_DIRECTORY}") {
                "systemd sets CREDENTIALS_DIRECTORY for a unit with LoadCredential=; to check the \
                 file outside the service, set it yourself, e.g. \
                 CREDENTIALS_DIRECTORY=/etc/lookout/credentials lookout config check"
                    .to_string()
            } else {
                "set the variable in the daemon's environment, or write the path out".to_string()
            };
            errors.push(
                Some(span),
                Some(component),
                format!("`{key}`: {e}"),
                Some(hint),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn run(src: &str) -> (String, Vec<super::super::ConfigError>) {
        let mut errors = Collector::new(Path::new("t.toml"), src);
        let (mut doc, syntax) = DeTable::parse_recoverable(src);
        assert!(syntax.is_empty());
        expand(doc.get_mut(), &mut errors);
        let shown = format!("{:?}", doc.get_ref());
        (shown, errors.into_sorted())
    }

    #[test]
    fn paths_expand_and_other_values_do_not() {
        // SAFETY: no other test reads or writes this variable.
        unsafe { std::env::set_var("LOOKOUT_PATHS_TEST_DIR", "/run/credentials/lookout.service") };
        let (shown, errors) = run(concat!(
            "[api]\ntoken_file = \"${LOOKOUT_PATHS_TEST_DIR}/api\"\n",
            "[[probe]]\nid = \"pg\"\nkind = \"postgres\"\nsslkey = \"${LOOKOUT_PATHS_TEST_DIR}/k\"\n",
            "[[notifier]]\nid = \"n\"\ntopic = \"${LOOKOUT_PATHS_TEST_DIR}\"\n",
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(
            shown.contains("/run/credentials/lookout.service/api"),
            "{shown}"
        );
        assert!(
            shown.contains("/run/credentials/lookout.service/k"),
            "{shown}"
        );
        // Not a path key: left for the field's own handling.
        assert!(shown.contains("${LOOKOUT_PATHS_TEST_DIR}\""), "{shown}");
    }

    #[test]
    fn an_unset_variable_is_an_error_at_its_value_naming_the_entry() {
        let (_, errors) = run(concat!(
            "[[notifier]]\nid = \"phone\"\nkind = \"ntfy\"\n",
            "token_file = \"${LOOKOUT_SURELY_UNSET_CREDS}/ntfy\"\n",
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!((e.line, e.column), (4, 14));
        assert_eq!(e.component.as_deref(), Some("notifier \"phone\""));
        assert!(
            e.message.contains(
                "`token_file`: environment variable LOOKOUT_SURELY_UNSET_CREDS is not set"
            ),
            "{}",
            e.message
        );
    }
}
