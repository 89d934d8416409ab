//! Turns Tinybird's Tornado-flavoured template text into minijinja syntax, line for line.
//!
//! Tornado closes every block with `{% end %}`; minijinja wants `endif`/`endfor`. A small tag
//! scanner keeps a stack of open blocks and rewrites each `end`. It also lists the identifiers
//! inside tags (with their lines) so `compile` can name an unknown function or a reserved
//! parameter at the right line. Every rewrite keeps newlines where they were, so minijinja's
//! line numbers stay true to the pipe author's source.

use super::TemplateError;

/// Whether a tag prints (`{{ }}`) or controls (`{% %}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TagKind {
    Expr,
    Stmt,
}

/// One `{{ }}` or `{% %}` tag of the source.
#[derive(Debug)]
pub(super) struct Tag {
    pub kind: TagKind,
    /// 1-based line of the opening delimiter.
    pub line: usize,
    /// Byte range of the content, without delimiters and whitespace-control markers.
    pub inner: std::ops::Range<usize>,
}

/// An identifier as written inside a tag.
#[derive(Debug)]
pub(super) struct Ident<'a> {
    pub name: &'a str,
    pub line: usize,
    /// Followed by `(`, and not an attribute, method or filter: a global function call.
    pub is_call: bool,
    /// Follows `.` or `|`, or names a keyword argument: never a template variable.
    pub is_member: bool,
}

/// Blanks a leading `%` line (Tinybird's marker for templated SQL), keeping the line itself so
/// line numbers do not move.
pub(super) fn strip_marker(source: &str) -> String {
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            offset += line.len();
            continue;
        }
        if trimmed == "%" {
            let end = offset + line.trim_end_matches(['\n', '\r']).len();
            return format!("{}{}", &source[..offset], &source[end..]);
        }
        break;
    }
    source.to_owned()
}

/// Finds every tag. Comments are skipped; an unterminated tag ends the scan (minijinja reports
/// it with its own message).
pub(super) fn scan(source: &str) -> Vec<Tag> {
    let bytes = source.as_bytes();
    let mut tags = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i + 1 < bytes.len() {
        let close: &[u8] = match &bytes[i..i + 2] {
            b"{{" => b"}}",
            b"{%" => b"%}",
            b"{#" => b"#}",
            _ => {
                line += usize::from(bytes[i] == b'\n');
                i += 1;
                continue;
            }
        };
        let kind = if bytes[i + 1] == b'{' {
            TagKind::Expr
        } else {
            TagKind::Stmt
        };
        let Some(end) = find_close(bytes, i + 2, close, bytes[i + 1] != b'#') else {
            break;
        };
        if bytes[i + 1] != b'#' {
            let mut start = i + 2;
            if matches!(bytes.get(start), Some(b'-' | b'+' | b'~')) {
                start += 1;
            }
            let mut stop = end;
            if stop > start && matches!(bytes[stop - 1], b'-' | b'+') {
                stop -= 1;
            }
            tags.push(Tag {
                kind,
                line,
                inner: start..stop,
            });
        }
        line += bytes[i..end].iter().filter(|b| **b == b'\n').count();
        i = end + 2;
    }
    tags
}

/// Byte offset of `close` from `from`, skipping quoted strings when `quotes` is set.
fn find_close(bytes: &[u8], from: usize, close: &[u8], quotes: bool) -> Option<usize> {
    let mut i = from;
    let mut quote = None;
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (Some(_), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (None, b'\'' | b'"') if quotes => quote = Some(bytes[i]),
            (None, _) if bytes[i..].starts_with(close) => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Rewrites Tornado's `{% end %}` into the matching minijinja end tag, and refuses the blocks
/// whose output is text already holding placeholders (see the module doc of `template`).
pub(super) fn translate_ends(source: &str, tags: &[Tag]) -> Result<String, TemplateError> {
    // (end tag, keyword, line) of every block still open.
    let mut open: Vec<(&'static str, &str, usize)> = Vec::new();
    let mut out = String::with_capacity(source.len() + 16);
    let mut copied = 0;
    for tag in tags.iter().filter(|t| t.kind == TagKind::Stmt) {
        let content = &source[tag.inner.clone()];
        let keyword_at = tag.inner.start + (content.len() - content.trim_start().len());
        let keyword = content
            .trim_start()
            .split(|c: char| !is_ident_char(c))
            .next()
            .unwrap_or_default();
        let closer = match keyword {
            "if" => "endif",
            "for" => "endfor",
            "filter" => "endfilter",
            "with" => "endwith",
            "autoescape" => "endautoescape",
            "raw" => "endraw",
            // `{% set x = ... %}` is fine; `{% set x %}...` would capture rendered placeholders.
            "set" if !content.contains('=') => return Err(unsupported(tag, "{% set %} blocks")),
            "macro" | "call" => return Err(unsupported(tag, "macros")),
            "include" | "import" | "from" | "extends" | "block" => {
                return Err(unsupported(tag, "other templates"));
            }
            "end" => {
                let (closer, _, _) = open.pop().ok_or_else(|| TemplateError {
                    line: tag.line,
                    message: "{% end %} closes no open block: remove it or open an \
                              {% if %}/{% for %} before it"
                        .into(),
                })?;
                out.push_str(&source[copied..keyword_at]);
                out.push_str(closer);
                copied = keyword_at + "end".len();
                continue;
            }
            word if word.starts_with("end") => {
                open.pop();
                continue;
            }
            _ => continue,
        };
        open.push((closer, keyword, tag.line));
    }
    if let Some((_, keyword, line)) = open.pop() {
        return Err(TemplateError {
            line,
            message: format!(
                "this {{% {keyword} %}} is never closed: add {{% end %}} after its body"
            ),
        });
    }
    out.push_str(&source[copied..]);
    Ok(out)
}

fn unsupported(tag: &Tag, what: &str) -> TemplateError {
    TemplateError {
        line: tag.line,
        message: format!(
            "pipe templates here do not support {what}: write the SQL inline, printing values \
             with type functions such as {{{{ String(x) }}}}"
        ),
    }
}

/// Every identifier inside the tags, outside string literals.
pub(super) fn identifiers<'a>(source: &'a str, tags: &[Tag]) -> Vec<Ident<'a>> {
    let mut found = Vec::new();
    for tag in tags {
        let content = &source[tag.inner.clone()];
        let bytes = content.as_bytes();
        let (mut i, mut line) = (0, tag.line);
        let mut previous = b' ';
        while i < bytes.len() {
            let c = bytes[i];
            if c == b'\'' || c == b'"' {
                i = skip_string(bytes, i);
                previous = c;
                continue;
            }
            if c.is_ascii_alphabetic() || c == b'_' {
                let start = i;
                while i < bytes.len() && is_ident_char(bytes[i] as char) {
                    i += 1;
                }
                let rest = content[i..].trim_start();
                let kwarg = rest.starts_with('=') && !rest.starts_with("==");
                found.push(Ident {
                    name: &content[start..i],
                    line,
                    is_call: rest.starts_with('('),
                    is_member: matches!(previous, b'.' | b'|') || kwarg,
                });
                previous = b'a';
                continue;
            }
            if c == b'\n' {
                line += 1;
            }
            if !c.is_ascii_whitespace() {
                previous = c;
            }
            i += 1;
        }
    }
    found
}

/// Offset just past the string literal that opens at `start`.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            c if c == bytes[start] => return i + 1,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}
