//! Which programs a shell snippet or script calls, by a deliberately simple heuristic.
//!
//! The command word of each simple command is taken: the first word of a line and the first
//! word after `;`, `&`, `&&`, `||`, `|`, `(`, `$(`, a backtick, and after the keywords `if`,
//! `then`, `else`, `elif`, `while`, `until`, `do`, `!`, `time` and `{`; leading variable
//! assignments and redirections are skipped, and so are the prefixes `sudo`, `exec`, `env`,
//! `nice`, `nohup`, `timeout`, `command` and `builtin` with their options. Not command words:
//! shell builtins and keywords, functions defined in the script, words with `$` or a glob,
//! paths (anything with `/`), `for`/`select` headers, here-document bodies and comments.
//! `case` is read by its grammar: `case WORD in`, then pattern lists (`a|b|c)`, `(a)`,
//! quoted, globbed, on the `in` line or their own) that are skipped up to their closing `)`,
//! each followed by an arm of commands up to `;;`, `;&`, `;;&` or `esac`; a command
//! substitution in the subject (`case $(uname) in`) is read as commands. What it misses
//! (substitutions inside a pattern, `eval` strings, aliases) it misses quietly: it exists to
//! catch the common `ip route add …` in a hook, not to parse shell.

/// A program called by bare name, with its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The program's name.
    pub name: String,
    /// Where (1-based line of the script).
    pub line: usize,
}

#[path = "shell_tokens.rs"]
mod tokens;
use tokens::{Sep, Tok, tokenize};

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

/// Where the walker stands in the `case` grammar; the innermost construct is last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctx {
    /// After `case`: the subject comes next (`subject_seen` false), then `in`.
    CaseHeader { subject_seen: bool },
    /// A pattern list (`a|b*|"c d")`, optionally opened by `(`) up to its closing `)`;
    /// `depth` counts parentheses inside it (extglobs, substitutions), `started` is set once
    /// anything of it was seen (so a later `esac` is an alternative, not the end).
    Pattern { depth: usize, started: bool },
    /// The commands of a `case` arm, up to `;;`, `;&`, `;;&` or `esac`.
    Arm,
    /// A command substitution in a `case` subject, up to its `)` (or backtick, `tick`).
    Subst { depth: usize, tick: bool },
}

/// Walks a script's tokens, line after line, and collects the command words.
struct Walker<'a> {
    /// Functions the script defines: calling one is not calling a program.
    funcs: &'a [String],
    stack: Vec<Ctx>,
    /// The words of the simple command being read.
    segment: Vec<String>,
    /// The current (logical) line.
    line: usize,
    out: Vec<Word>,
}

impl Walker<'_> {
    fn feed(&mut self, tok: Tok) {
        match self.stack.last().copied() {
            Some(Ctx::CaseHeader { subject_seen }) => self.header(tok, subject_seen),
            Some(Ctx::Pattern { depth, started }) => self.pattern(tok, depth, started),
            _ => self.command(tok),
        }
    }

    fn set_top(&mut self, ctx: Ctx) {
        if let Some(top) = self.stack.last_mut() {
            *top = ctx;
        }
    }

    /// `case WORD in`: only a substitution in the subject holds commands.
    fn header(&mut self, tok: Tok, subject_seen: bool) {
        match tok {
            Tok::Word(w) if subject_seen && w == "in" => self.set_top(Ctx::Pattern {
                depth: 0,
                started: false,
            }),
            Tok::Word(_) => self.set_top(Ctx::CaseHeader { subject_seen: true }),
            Tok::Sep(sep @ (Sep::SubstOpen | Sep::Tick)) => {
                self.set_top(Ctx::CaseHeader { subject_seen: true });
                self.stack.push(Ctx::Subst {
                    depth: 0,
                    tick: sep == Sep::Tick,
                });
            }
            Tok::Sep(_) => {}
        }
    }

    /// A pattern is never a command: skip it, up to the `)` that closes it.
    fn pattern(&mut self, tok: Tok, depth: usize, started: bool) {
        let next = match tok {
            Tok::Word(w) if !started && depth == 0 && w == "esac" => {
                self.stack.pop();
                return;
            }
            Tok::Word(_) => Ctx::Pattern {
                depth,
                started: true,
            },
            // The optional `(` before a pattern (POSIX).
            Tok::Sep(Sep::Open) if !started && depth == 0 => Ctx::Pattern {
                depth,
                started: true,
            },
            Tok::Sep(Sep::Open | Sep::SubstOpen) => Ctx::Pattern {
                depth: depth + 1,
                started: true,
            },
            Tok::Sep(Sep::Close) if depth == 0 => Ctx::Arm,
            Tok::Sep(Sep::Close) => Ctx::Pattern {
                depth: depth - 1,
                started,
            },
            // `|` between alternatives, line ends between arms.
            Tok::Sep(_) => return,
        };
        self.set_top(next);
    }

    /// Ordinary commands (at the top level, in a `case` arm or in a subject's substitution).
    fn command(&mut self, tok: Tok) {
        let sep = match tok {
            Tok::Word(w) => {
                let at_command = self
                    .segment
                    .iter()
                    .all(|s| LEADING_KEYWORDS.contains(&s.as_str()));
                if at_command && w == "case" {
                    self.segment.clear();
                    self.stack.push(Ctx::CaseHeader {
                        subject_seen: false,
                    });
                } else if at_command && w == "esac" && self.stack.last() == Some(&Ctx::Arm) {
                    self.segment.clear();
                    self.stack.pop();
                } else {
                    self.segment.push(w);
                }
                return;
            }
            Tok::Sep(sep) => sep,
        };
        self.finish();
        let next = match (sep, self.stack.last().copied()) {
            (Sep::ArmEnd, Some(Ctx::Arm)) => Ctx::Pattern {
                depth: 0,
                started: false,
            },
            (Sep::Open | Sep::SubstOpen, Some(Ctx::Subst { depth, tick })) => Ctx::Subst {
                depth: depth + 1,
                tick,
            },
            (
                Sep::Close,
                Some(Ctx::Subst {
                    depth: 0,
                    tick: false,
                }),
            )
            | (Sep::Tick, Some(Ctx::Subst { tick: true, .. })) => {
                self.stack.pop();
                return;
            }
            (Sep::Close, Some(Ctx::Subst { depth, tick })) if depth > 0 => Ctx::Subst {
                depth: depth - 1,
                tick,
            },
            _ => return,
        };
        self.set_top(next);
    }

    /// Ends the simple command being read and records its command word.
    fn finish(&mut self) {
        let words = std::mem::take(&mut self.segment);
        if let Some(name) = command_of(&words)
            && !self.funcs.contains(&name)
        {
            self.out.push(Word {
                name,
                line: self.line,
            });
        }
    }
}

/// The programs a script calls by bare name, in order, with their lines.
pub fn command_words(script: &str) -> Vec<Word> {
    let lines = logical_lines(script);
    let funcs = functions(&lines);
    let mut walker = Walker {
        funcs: &funcs,
        stack: Vec::new(),
        segment: Vec::new(),
        line: 0,
        out: Vec::new(),
    };
    for (n, line) in &lines {
        walker.line = *n;
        for tok in tokenize(line) {
            walker.feed(tok);
        }
        walker.feed(Tok::Sep(Sep::Plain));
    }
    walker.out
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
