//! Splitting one logical shell line into words and separators.

/// A separator between words, by what it means to the `case` grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sep {
    /// `;`, `&`, `&&`, a line's end: ends a simple command.
    Plain,
    /// `|` (also each half of `||`): ends a command, separates `case` alternatives.
    Pipe,
    /// `(`: a subshell, or the optional prefix of a `case` pattern.
    Open,
    /// `$(`: a command substitution starts.
    SubstOpen,
    /// `)`: ends a subshell, a substitution or a `case` pattern.
    Close,
    /// A backtick (starts or ends a substitution).
    Tick,
    /// `;;`, `;&` or `;;&`: ends a `case` arm.
    ArmEnd,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Word(String),
    Sep(Sep),
}

/// Splits one logical line into words and separators.
pub(super) fn tokenize(line: &str) -> Vec<Tok> {
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
                toks.push(Tok::Sep(Sep::SubstOpen));
                if dq {
                    subst_in_dq += 1;
                    dq = false;
                }
                i += 2;
                continue;
            }
            '`' => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(Sep::Tick));
            }
            ')' if subst_in_dq > 0 && !dq => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(Sep::Close));
                subst_in_dq -= 1;
                dq = true;
            }
            _ if dq => word.push(c),
            '#' if word.is_empty() => break,
            ' ' | '\t' => flush(&mut word, &mut toks),
            ';' if next == Some(';') || next == Some('&') => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(Sep::ArmEnd));
                i += 2;
                if next == Some(';') && chars.get(i) == Some(&'&') {
                    i += 1; // bash's `;;&`
                }
                continue;
            }
            ';' | '\n' => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(Sep::Plain));
            }
            '|' => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(Sep::Pipe));
            }
            '(' => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(Sep::Open));
            }
            ')' => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(Sep::Close));
            }
            '&' if word.ends_with('>') || word.ends_with('<') || next == Some('>') => word.push(c),
            '&' => {
                flush(&mut word, &mut toks);
                toks.push(Tok::Sep(Sep::Plain));
            }
            _ => word.push(c),
        }
        i += 1;
    }
    flush(&mut word, &mut toks);
    toks
}
