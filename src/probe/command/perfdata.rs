//! Nagios plugin output: the status line, long text and performance data
//! (`'label'=value[UOM];[warn];[crit];[min];[max]`), per the Monitoring Plugins guidelines.

/// One parsed performance value, its unit normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct PerfValue {
    /// The label as the plugin wrote it (quotes removed, `''` unescaped).
    pub label: String,
    /// The value in base units: seconds, bytes; `%`, counters and unknown units as written.
    pub value: f64,
    /// The unit after normalisation: `seconds`, `bytes`, `percent`, `counter`, or the raw
    /// unit of measure (empty for none).
    pub unit: String,
}

/// A plugin's output taken apart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PluginOutput {
    /// The first line up to `|`, trimmed.
    pub text: String,
    /// The long text lines (second line on, perfdata removed).
    pub long_text: Vec<String>,
    /// The performance values that parsed.
    pub perf: Vec<PerfValue>,
    /// What could not be parsed, in words.
    pub problems: Vec<String>,
}

/// Splits plugin output into text, long text and performance data. Perfdata is what follows
/// `|` on the first line, plus everything after the first `|` of a later line (including all
/// lines after it).
pub fn parse_output(stdout: &str) -> PluginOutput {
    let mut out = PluginOutput::default();
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or("");
    let mut perf_text = String::new();
    match first.split_once('|') {
        Some((text, perf)) => {
            out.text = text.trim().to_string();
            perf_text.push_str(perf);
        }
        None => out.text = first.trim().to_string(),
    }
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf_text.push(' ');
            perf_text.push_str(line);
        } else if let Some((text, perf)) = line.split_once('|') {
            in_perf = true;
            if !text.trim().is_empty() {
                out.long_text.push(text.trim_end().to_string());
            }
            perf_text.push(' ');
            perf_text.push_str(perf);
        } else {
            out.long_text.push(line.trim_end().to_string());
        }
    }
    let (perf, problems) = parse_perfdata(&perf_text);
    out.perf = perf;
    out.problems = problems;
    out
}

/// Parses performance data. Never panics: what does not parse is named in the problems.
pub fn parse_perfdata(text: &str) -> (Vec<PerfValue>, Vec<String>) {
    let mut values = Vec::new();
    let mut problems = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        // The label: quoted (spaces allowed, '' is a quote) or up to '='.
        let mut label = String::new();
        let start = i;
        if chars[i] == '\'' {
            i += 1;
            let mut closed = false;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        label.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    closed = true;
                    break;
                }
                label.push(chars[i]);
                i += 1;
            }
            if !closed {
                problems.push(format!(
                    "unclosed quote in label {:?}",
                    snippet(&chars[start..])
                ));
                break;
            }
        } else {
            while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
                label.push(chars[i]);
                i += 1;
            }
        }
        // The value token: '=' then everything up to whitespace.
        if chars.get(i) != Some(&'=') {
            let end = token_end(&chars, i);
            problems.push(format!(
                "{:?} is not label=value",
                snippet(&chars[start..end])
            ));
            i = end;
            continue;
        }
        i += 1;
        let end = token_end(&chars, i);
        let token: String = chars[i..end].iter().collect();
        i = end;
        if label.is_empty() {
            problems.push(format!("empty label before ={token}"));
            continue;
        }
        match parse_value(&token) {
            Ok(Some((value, unit))) => values.push(PerfValue { label, value, unit }),
            Ok(None) => {} // "U": the plugin could not determine the value.
            Err(e) => problems.push(format!("{label}: {e}")),
        }
    }
    (values, problems)
}

fn token_end(chars: &[char], from: usize) -> usize {
    let mut end = from;
    while end < chars.len() && !chars[end].is_whitespace() {
        end += 1;
    }
    end.max(from + 1).min(chars.len())
}

fn snippet(chars: &[char]) -> String {
    let s: String = chars.iter().take(40).collect();
    s.trim_end().to_string()
}

/// Parses `value[UOM];warn;crit;min;max`, keeping the value only (thresholds and bounds are
/// ignored). `Ok(None)` for the value `U` (undetermined).
fn parse_value(token: &str) -> Result<Option<(f64, String)>, String> {
    let first = token.split(';').next().unwrap_or("");
    if first == "U" {
        return Ok(None);
    }
    let num_end = first
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || c == '.'
                || c == ','
                || ((c == '-' || c == '+')
                    && (i == 0 || matches!(first.as_bytes()[i - 1], b'e' | b'E')))
                || ((c == 'e' || c == 'E')
                    && first[i + 1..]
                        .chars()
                        .next()
                        .is_some_and(|n| n.is_ascii_digit() || n == '-' || n == '+')))
        })
        .map(|(i, _)| i)
        .unwrap_or(first.len());
    let (num, uom) = first.split_at(num_end);
    if num.is_empty() {
        return Err(format!("value {first:?} is not a number"));
    }
    let value: f64 = num
        .replace(',', ".")
        .parse()
        .map_err(|_| format!("value {first:?} is not a number"))?;
    if !value.is_finite() {
        return Err(format!("value {first:?} is not a finite number"));
    }
    let (factor, unit) = match uom {
        "" => (1.0, ""),
        "s" => (1.0, "seconds"),
        "ms" => (1e-3, "seconds"),
        "us" | "µs" => (1e-6, "seconds"),
        "ns" => (1e-9, "seconds"),
        "%" => (1.0, "percent"),
        "B" => (1.0, "bytes"),
        "KB" | "kB" | "KiB" => (1024.0, "bytes"),
        "MB" | "MiB" => (1024.0 * 1024.0, "bytes"),
        "GB" | "GiB" => (1024.0 * 1024.0 * 1024.0, "bytes"),
        "TB" | "TiB" => (1024.0f64.powi(4), "bytes"),
        "c" => (1.0, "counter"),
        other => (1.0, other),
    };
    Ok(Some((value * factor, unit.to_string())))
}

/// The sample name of a label: `command.` and the label with every character other than
/// ASCII letters, digits and `_` turned into `_` (`'in use'` → `command.in_use`).
pub fn sample_name(label: &str) -> String {
    let mut s = String::from("command.");
    s.extend(label.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(label: &str, value: f64, unit: &str) -> PerfValue {
        PerfValue {
            label: label.into(),
            value,
            unit: unit.into(),
        }
    }

    #[test]
    fn perfdata_forms() {
        let cases: &[(&str, Vec<PerfValue>)] = &[
            ("time=0.5s", vec![pv("time", 0.5, "seconds")]),
            ("rta=12.5ms;100;500;0", vec![pv("rta", 0.0125, "seconds")]),
            ("t=250us", vec![pv("t", 0.00025, "seconds")]),
            ("pl=0%;20;60;;", vec![pv("pl", 0.0, "percent")]),
            ("size=2KB", vec![pv("size", 2048.0, "bytes")]),
            ("size=1.5MB", vec![pv("size", 1.5 * 1048576.0, "bytes")]),
            ("size=3GB", vec![pv("size", 3.0 * 1073741824.0, "bytes")]),
            ("size=1TB", vec![pv("size", 1099511627776.0, "bytes")]),
            ("b=512B", vec![pv("b", 512.0, "bytes")]),
            ("pkts=1234c", vec![pv("pkts", 1234.0, "counter")]),
            ("load1=0.15;5;10;0", vec![pv("load1", 0.15, "")]),
            ("temp=-4.5degC", vec![pv("temp", -4.5, "degC")]),
            ("big=1e3", vec![pv("big", 1000.0, "")]),
            ("neg=-1.5e-2s", vec![pv("neg", -0.015, "seconds")]),
            ("comma=1,5", vec![pv("comma", 1.5, "")]),
            ("'in use'=42%", vec![pv("in use", 42.0, "percent")]),
            ("'it''s'=1", vec![pv("it's", 1.0, "")]),
            (
                "'/var/lib/a b'=10MB;;;0;100",
                vec![pv("/var/lib/a b", 10485760.0, "bytes")],
            ),
            ("x=U;1;2", vec![]),
            (
                "a=1 b=2s  'c d'=3%",
                vec![
                    pv("a", 1.0, ""),
                    pv("b", 2.0, "seconds"),
                    pv("c d", 3.0, "percent"),
                ],
            ),
        ];
        for (text, want) in cases {
            let (got, problems) = parse_perfdata(text);
            assert!(problems.is_empty(), "{text}: {problems:?}");
            assert_eq!(&got, want, "{text}");
        }
    }

    #[test]
    fn malformed_perfdata_is_named_never_a_panic() {
        let cases: &[(&str, usize, &str)] = &[
            ("novalue", 0, "not label=value"),
            ("x=abc", 0, "not a number"),
            ("x=", 0, "not a number"),
            ("'unclosed=1", 0, "unclosed quote"),
            ("=5", 0, "empty label"),
            ("good=1 bad=zz good2=2", 2, "bad: value"),
            ("x=inf", 0, "not a number"),
            ("'a'b=1", 0, "not label=value"),
            ("x=1e", 1, ""),
            ("ü=😀", 0, "not a number"),
        ];
        for (text, n_ok, problem) in cases {
            let (got, problems) = parse_perfdata(text);
            assert_eq!(got.len(), *n_ok, "{text}: {got:?}");
            if !problem.is_empty() {
                assert!(
                    problems.iter().any(|p| p.contains(problem)),
                    "{text}: {problems:?}"
                );
            }
        }
    }

    #[test]
    fn output_lines_and_multiline_perfdata() {
        let o = parse_output(
            "DISK OK - free space: / 3326 MB (56%) | /=2643MB;5948;5958;0;5968\n/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n/home=69357MB;253404;253409;0;253414\n/var/log=818MB;970;975;0;980\n",
        );
        assert_eq!(o.text, "DISK OK - free space: / 3326 MB (56%)");
        assert_eq!(o.long_text.len(), 4);
        let labels: Vec<&str> = o.perf.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, vec!["/", "/boot", "/home", "/var/log"]);
        assert_eq!(o.perf[0].value, 2643.0 * 1048576.0);
        assert!(o.problems.is_empty(), "{:?}", o.problems);

        let o = parse_output("PING OK\n");
        assert_eq!(o.text, "PING OK");
        assert!(o.perf.is_empty());
        let o = parse_output("");
        assert_eq!(o.text, "");
    }

    #[test]
    fn sample_names_are_safe() {
        assert_eq!(sample_name("time"), "command.time");
        assert_eq!(sample_name("in use"), "command.in_use");
        assert_eq!(sample_name("/var/log"), "command._var_log");
    }
}
