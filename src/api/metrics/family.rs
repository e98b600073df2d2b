//! One metric family and how it is written in the Prometheus text format (0.0.4, what
//! `promtool check metrics` reads) or in OpenMetrics 1.0 (what Prometheus asks for).

use super::catalog::Type;
use std::fmt::Write;

/// The exposition format, chosen from the request's `Accept` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: `# TYPE` and `# HELP` name the sample (`…_total`).
    Text,
    /// `application/openmetrics-text; version=1.0.0`: they name the family (without `_total`).
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the client asks for it (Prometheus does), else the text format.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A family: name, type, HELP and its series (labels, value).
pub struct Family {
    name: String,
    kind: Type,
    help: String,
    series: Vec<(String, f64)>,
}

impl Family {
    /// An empty family; a counter's `name` ends in `_total`.
    pub fn new(name: impl Into<String>, kind: Type, help: impl Into<String>) -> Family {
        Family {
            name: name.into(),
            kind,
            help: help.into(),
            series: Vec::new(),
        }
    }

    /// A gauge.
    pub fn gauge(name: &str, help: &str) -> Family {
        Family::new(name, Type::Gauge, help)
    }

    /// A counter (`name` ends in `_total`).
    pub fn counter(name: &str, help: &str) -> Family {
        Family::new(name, Type::Counter, help)
    }

    /// Adds a series.
    pub fn push<'a>(&mut self, labels: impl IntoIterator<Item = (&'a str, &'a str)>, value: f64) {
        let parts: Vec<String> = labels
            .into_iter()
            .map(|(k, v)| format!("{}=\"{}\"", label_name(k), escape_value(v)))
            .collect();
        let labels = if parts.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", parts.join(","))
        };
        self.series.push((labels, value));
    }

    /// Writes `# HELP`, `# TYPE` and the series.
    pub fn write(&self, out: &mut String, format: Format) {
        let head = match (format, self.kind) {
            (Format::OpenMetrics, Type::Counter) => {
                self.name.strip_suffix("_total").unwrap_or(&self.name)
            }
            _ => &self.name,
        };
        let kind = match self.kind {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
        };
        let _ = writeln!(out, "# HELP {head} {}", escape_help(&self.help));
        let _ = writeln!(out, "# TYPE {head} {kind}");
        for (labels, value) in &self.series {
            let _ = writeln!(out, "{}{labels} {}", self.name, number(*value));
        }
    }
}

/// A label name made valid: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn label_name(k: &str) -> String {
    let mut s: String = k
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as both formats spell it (`+Inf`, `-Inf`, `NaN`).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_typed_by_sample_name_in_text_and_by_family_in_openmetrics() {
        let mut f = Family::counter("lookout_x_total", "Xs.\nmore");
        f.push([("probe", "a\"b")], 3.0);
        let mut text = String::new();
        f.write(&mut text, Format::Text);
        assert_eq!(
            text,
            "# HELP lookout_x_total Xs.\\nmore\n# TYPE lookout_x_total counter\nlookout_x_total{probe=\"a\\\"b\"} 3\n"
        );
        let mut om = String::new();
        f.write(&mut om, Format::OpenMetrics);
        assert!(om.starts_with("# HELP lookout_x Xs."), "{om}");
        assert!(
            om.contains("# TYPE lookout_x counter\nlookout_x_total{"),
            "{om}"
        );
    }

    #[test]
    fn infinities_and_odd_label_names_are_spelled_validly() {
        let mut f = Family::gauge("lookout_y", "Y.");
        f.push([("9to5", "v"), ("a-b", "w")], f64::INFINITY);
        f.push([], f64::NEG_INFINITY);
        f.push([], f64::NAN);
        let mut out = String::new();
        f.write(&mut out, Format::Text);
        assert!(
            out.contains("lookout_y{_9to5=\"v\",a_b=\"w\"} +Inf\n"),
            "{out}"
        );
        assert!(out.contains("lookout_y -Inf\nlookout_y NaN\n"), "{out}");
    }

    #[test]
    fn the_format_follows_the_accept_header() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Text);
        assert_eq!(Format::from_accept(None), Format::Text);
    }
}
