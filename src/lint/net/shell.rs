//! Which programs a shell snippet or script calls, by a deliberately simple heuristic.
//!
//! The command word of each simple command is taken: the first word of a line and the first
//! word after `;`, `&`, `&&`, `||`, `|`, `(`, `$(`, a backtick, and after the keywords `if`,
//! `then`, `else`, `elif`, `while`, `until`, `do`, `!`, `time` and `{`; leading variable
//! assignments and redirections are skipped, and so are the prefixes `sudo`, `exec`, `env`,
//! `nice`, `nohup`, `timeout`, `command` and `builtin` with their options. Not command words:
//! shell builtins and keywords, functions defined in the script, words with `$` or a glob,
//! paths (anything with `/`), `for`/`case`/`select` headers, `case` patterns (a segment that
//! ends in `)` inside `case … esac`), here-document bodies and comments. What it misses
//! (commands inside `case` subshells, `eval` strings, aliases) it misses quietly: it exists to
//! catch the common `ip route add …` in a hook, not to parse shell.

/// A program called by bare name, with its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The program's name.
    pub name: String,
    /// Where (1-based line of the script).
    pub line: usize,
}

/// Shell builtins (POSIX, dash and bash): never looked up on PATH.
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "[[",
    "]]",
    "alias",
    "bg",
    "break",
    "builtin",
    "caller",
    "cd",
    "command",
    "compgen",
    "complete",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];

/// Keywords after which the next word is a command.
const LEADING_KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "while", "until", "do", "!", "time", "{",
];

/// Keywords that end a compound command: nothing follows them in the same segment.
const CLOSING_KEYWORDS: &[&str] = &["fi", "done", "esac", "}", "in"];

/// Segments that are not commands at all.
const HEADER_KEYWORDS: &[&str] = &["for", "case", "select", "function"];

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    /// A separator; `true` when it is a `)` (a `case` pattern ends with one).
    Sep(bool),
}

/// Splits one logical line into words and separators.
fn tokenize(line: &str) -> Vec<Tok> {
    let chars: Vec<char> = line.chars().collect();
    let mut toks = Vec::new();
    let mut word = String::new();
    let (mut sq, mut dq) = (false, false);
    let mut subst_in_dq = 0usize;
    let flush = |word: &mut String, toks: &mut Vec<Tok>| {
        if !word.is_empty() {
            toks.push(Tok::Word(std::mem::take(word)));
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if sq {
            word.push(c);
            if c == '\'' {
                sq = false;
            }
            i += 1;
            continue;
        }
        match c {
            '\\' => {
                word.push(c);
                if let Some(n) = next {
                    word.push(n);
                }
                i += 2;
                continue;
            }
            '\'' if !dq => {
                sq = true;
                word.push(c);
            }
            '"' => {
                dq = !dq;
                word.push(c);
            }
            '$' if next == Some('(') && chars.get(i + 2) == Some(&'(') => {
                // Arithmetic: part of the word up to the closing `))`.
                let mut depth = 0i32;
                while i < chars.len() {
                    word.push(chars[i]);
                    match chars[i] {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            '$' if next == Some('(') => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(false));
                if dq {
                    subst_in_dq += 1;
                    dq = false;
                }
                i += 2;
                continue;
            }
            '`' => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(false));
            }
            ')' if subst_in_dq > 0 && !dq => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(false));
                subst_in_dq -= 1;
                dq = true;
            }
            _ if dq => word.push(c),
            '#' if word.is_empty() => break,
            ' ' | '\t' => flush(&mut word, &mut toks),
            ';' | '|' | '(' | '\n' => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(false));
            }
            ')' => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(true));
            }
            '&' if word.ends_with('>') || word.ends_with('<') || next == Some('>') => word.push(c),
            '&' => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(false));
            }
            _ => word.push(c),
        }
        i += 1;
    }
    flush(&mut word, &mut toks);
    toks
}

fn is_assignment(w: &str) -> bool {
    match w.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

fn is_redirection(w: &str) -> bool {
    let rest = w.trim_start_matches(|c: char| c.is_ascii_digit());
    rest.starts_with('>') || rest.starts_with('<') || rest.starts_with("&>")
}

/// Picks the command word of one simple command's words, or `None`.
fn command_of(words: &[String]) -> Option<String> {
    let mut it = words.iter().map(String::as_str).peekable();
    loop {
        let w = it.next()?;
        if is_assignment(w) || is_redirection(w) {
            continue;
        }
        if LEADING_KEYWORDS.contains(&w) {
            continue;
        }
        if CLOSING_KEYWORDS.contains(&w) || HEADER_KEYWORDS.contains(&w) {
            return None;
        }
        match w {
            "sudo" | "exec" | "env" | "nice" | "nohup" | "timeout" | "builtin" => {
                // Options (and their arguments, for the few that take one) and, for env,
                // assignments; for timeout, the duration.
                let mut duration_pending = w == "timeout";
                while let Some(n) = it.peek() {
                    if n.starts_with('-') {
                        let takes_arg = matches!(
                            (w, *n),
                            ("sudo", "-u" | "-g" | "-C" | "-h" | "-p")
                                | ("nice", "-n")
                                | ("env", "-u")
                                | ("timeout", "-s" | "-k")
                                | ("exec", "-a")
                        );
                        it.next();
                        if takes_arg {
                            it.next();
                        }
                    } else if w == "env" && is_assignment(n) {
                        it.next();
                    } else if duration_pending {
                        duration_pending = false;
                        it.next();
                    } else {
                        break;
                    }
                }
                if w == "builtin" {
                    return None;
                }
                continue;
            }
            "command" => {
                if it.peek().is_some_and(|n| n.starts_with('-')) {
                    return None; // `command -v x` looks x up; it does not run it
                }
                continue;
            }
            _ => {}
        }
        let bare = w.trim_matches(|c| c == '"' || c == '\'');
        let plain = !bare.is_empty()
            && !bare.starts_with('-')
            && !bare.contains(['$', '`', '/', '=', '*', '?', '[', '{', '}', '\\', '"', '\''])
            && !BUILTINS.contains(&bare);
        return plain.then(|| bare.to_string());
    }
}

/// Names of functions the script defines (`name() {` or `function name`).
fn functions(lines: &[(usize, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (_, l) in lines {
        let t = l.trim_start();
        let t = t
            .strip_prefix("function ")
            .map(str::trim_start)
            .unwrap_or(t);
        let name: String = t
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if name.is_empty() {
            continue;
        }
        let rest = t[name.len()..].trim_start();
        if rest.starts_with("()") || l.trim_start().starts_with("function ") {
            out.push(name);
        }
    }
    out
}

/// Logical lines (continuations joined) with their first line number, here-document bodies
/// left out.
fn logical_lines(script: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    let mut heredoc: Option<(String, bool)> = None;
    for (i, raw) in script.lines().enumerate() {
        if let Some((end, strip_tabs)) = &heredoc {
            let l = if *strip_tabs {
                raw.trim_start_matches('\t')
            } else {
                raw
            };
            if l == end {
                heredoc = None;
            }
            continue;
        }
        let (n, mut text) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(cont) = raw.strip_suffix('\\') {
            text.push_str(cont);
            text.push(' ');
            pending = Some((n, text));
            continue;
        }
        text.push_str(raw);
        if let Some(pos) = text.find("<<")
            && !text[..pos].contains('#')
        {
            let after = &text[pos + 2..];
            let strip_tabs = after.starts_with('-');
            let after = after.trim_start_matches('-').trim_start();
            let end: String = after
                .trim_start_matches(['\'', '"'])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !end.is_empty() {
                heredoc = Some((end, strip_tabs));
            }
        }
        out.push((n, text));
    }
    if let Some(p) = pending {
        out.push(p);
    }
    out
}

/// The programs a script calls by bare name, in order, with their lines.
pub fn command_words(script: &str) -> Vec<Word> {
    let lines = logical_lines(script);
    let funcs = functions(&lines);
    let mut out = Vec::new();
    let mut case_depth = 0usize;
    for (n, line) in &lines {
        // Inside `case … esac`, a line that starts with a pattern (`up)`, `down|pre-down)`):
        // drop the pattern.
        let mut line = line.as_str();
        if case_depth > 0 {
            let t = line.trim_start();
            if let Some(p) = t.find(')') {
                let pre = &t[..p];
                if !pre.contains("$(") && !pre.contains('`') && !pre.contains(char::is_whitespace) {
                    line = &t[p + 1..];
                }
            }
        }
        let toks = tokenize(line);
        let mut segment: Vec<String> = Vec::new();
        let mut finish =
            |segment: &mut Vec<String>, ends_with_paren: bool, case_depth: &mut usize| {
                let words = std::mem::take(segment);
                let first = words.iter().find(|w| !is_assignment(w)).map(String::as_str);
                match first {
                    Some("case") => *case_depth += 1,
                    Some("esac") => *case_depth = case_depth.saturating_sub(1),
                    _ => {}
                }
                if words.iter().any(|w| w == "esac") && first != Some("esac") {
                    *case_depth = case_depth.saturating_sub(1);
                }
                if ends_with_paren && *case_depth > 0 {
                    return; // a case pattern
                }
                if let Some(name) = command_of(&words)
                    && !funcs.contains(&name)
                {
                    out.push(Word { name, line: *n });
                }
            };
        for t in toks {
            match t {
                Tok::Word(w) => segment.push(w),
                Tok::Sep(paren) => finish(&mut segment, paren, &mut case_depth),
            }
        }
        finish(&mut segment, false, &mut case_depth);
    }
    out
}

/// Whether the script reads other files into itself (`. file`, `source file`): names it calls
/// may then be functions defined there.
pub fn sources_other_files(script: &str) -> bool {
    logical_lines(script).iter().any(|(_, l)| {
        let t = l.trim_start();
        t.starts_with(". ") || t.starts_with("source ")
    })
}

/// The directories a script puts on its own `PATH` (`PATH=…` or `export PATH=…` at the start
/// of a line), and whether it keeps the inherited `$PATH` in it. `None` when it sets none.
pub fn own_path(script: &str) -> Option<(Vec<String>, bool)> {
    for (_, l) in logical_lines(script) {
        let t = l.trim_start();
        let t = t.strip_prefix("export ").unwrap_or(t);
        if let Some(v) = t.strip_prefix("PATH=") {
            let v = v
                .split([';', ' ', '#'])
                .next()
                .unwrap_or("")
                .trim_matches(['"', '\'']);
            let keeps = v.contains("$PATH") || v.contains("${PATH}");
            let dirs = v
                .split(':')
                .filter(|d| d.starts_with('/'))
                .map(|d| d.trim_end_matches('/').to_string())
                .collect();
            return Some((dirs, keeps));
        }
    }
    None
}

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
