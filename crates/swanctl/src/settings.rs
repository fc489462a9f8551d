//! strongSwan's settings syntax, the one of strongswan.conf and swanctl.conf, read as
//! libstrongswan's parser reads it (src/libstrongswan/settings/settings_lexer.l, settings_parser.y,
//! settings_types.c):
//!
//! - `name { ... }` sections and `key = value` settings; a value is the rest of the line up to a
//!   `#` or `}`, its words joined by one space; `"..."` strings keep their spaces and take `\n`,
//!   `\r`, `\t`, `\` before a line end (lines joined) and `\x` for `x`; `key =` alone sets no value
//!   (it hides the key of a referenced section);
//! - `#` comments, anywhere outside strings;
//! - `include PATTERN`: the files matching the glob(3) pattern, relative to the including file's
//!   directory, in sorted order, read in place as if their text stood there;
//! - a section or key given again extends the first: keys take the later value, sections merge,
//!   and the order is that of the first appearance;
//! - `name : other.section, ... { ... }` references: the section inherits the keys and subsections
//!   of the sections named by their full paths, its own taking precedence ([`Settings::resolved`]).
//!
//! Unlike strongSwan, which has no bounds, hostile input is bounded: include depth and loops, the
//! number and size of files, section nesting, and what references may expand to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How deep includes may nest (strongSwan has no limit; a file including itself loops there).
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// How many files one configuration may read, includes counted.
pub const MAX_FILES: usize = 512;
/// The largest file read.
pub const MAX_FILE_SIZE: u64 = 4 << 20;
/// The most text read in all, includes counted.
pub const MAX_TOTAL_SIZE: u64 = 32 << 20;
/// How deep sections may nest.
pub const MAX_SECTION_DEPTH: usize = 64;
/// The most settings and sections that resolving references may produce.
pub const MAX_RESOLVED: usize = 1 << 20;

/// Where a section or setting was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    /// The file (as its include named it, joined to the including file's directory).
    pub file: Arc<Path>,
    /// 1-based line.
    pub line: usize,
}

impl core::fmt::Display for Loc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A syntax error, an unreadable file, or a limit reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct ParseError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when the file itself could not be read).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// One `key = value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// The value; `None` for `key =` with nothing after it.
    pub value: Option<String>,
    /// Where the value in force was written.
    pub loc: Loc,
}

/// A section: its settings and subsections in the order of their first appearance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name (empty for the file's top level).
    pub name: String,
    /// Where it was first opened.
    pub loc: Loc,
    /// Settings.
    pub kvs: Vec<Kv>,
    /// Subsections.
    pub sections: Vec<Section>,
    /// Full paths of the sections it references (`name : a.b, c {`).
    pub refs: Vec<String>,
}

impl Section {
    fn new(name: String, loc: Loc) -> Self {
        Section { name, loc, kvs: Vec::new(), sections: Vec::new(), refs: Vec::new() }
    }

    /// An empty section, for one that is not written (swanctl's defaults apply).
    pub(crate) fn empty(name: &str, loc: &Loc) -> Self {
        Section::new(name.to_owned(), loc.clone())
    }

    /// The setting `key`, if written (its value may be `None`).
    pub fn kv(&self, key: &str) -> Option<&Kv> {
        self.kvs.iter().find(|k| k.key == key)
    }

    /// The value of `key`, when it has one.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.kv(key).and_then(|k| k.value.as_deref())
    }

    /// The subsection `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The subsection at a dotted path (`connections.site`).
    pub fn find(&self, path: &str) -> Option<&Section> {
        path.split('.').try_fold(self, |s, part| s.section(part))
    }

    /// Adds a setting as strongSwan does: a key given again takes the new value in its first place.
    fn add_kv(&mut self, kv: Kv) {
        match self.kvs.iter_mut().find(|k| k.key == kv.key) {
            Some(found) => {
                found.value = kv.value;
                found.loc = kv.loc;
            }
            None => self.kvs.push(kv),
        }
    }

    /// Adds a subsection: one with the same name is extended by it (`settings_section_extend`).
    fn add_section(&mut self, section: Section) {
        match self.sections.iter_mut().find(|s| s.name == section.name) {
            Some(found) => found.extend(section),
            None => self.sections.push(section),
        }
    }

    fn extend(&mut self, other: Section) {
        for kv in other.kvs {
            self.add_kv(kv);
        }
        for s in other.sections {
            self.add_section(s);
        }
        for r in other.refs {
            if !self.refs.contains(&r) {
                self.refs.push(r);
            }
        }
    }

    fn count(&self) -> usize {
        self.sections.iter().fold(1 + self.kvs.len(), |n, s| n.saturating_add(s.count()))
    }
}

/// A file read with its includes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The top level, references not yet resolved.
    pub root: Section,
    /// What was read but deserves a word: an include whose file does not exist, a reference to a
    /// section that does not exist or that loops.
    pub warnings: Vec<(Loc, String)>,
}

impl Settings {
    /// The tree with every reference resolved: a section referencing others gets, after its own,
    /// the keys it does not have and the subsections of the referenced sections (merged with its
    /// own of the same name), as libstrongswan's lookups see it. A key written without a value
    /// hides the referenced one. References that loop are followed once. Returns the tree and
    /// what deserves a word (references to nothing, loops).
    pub fn resolved(&self) -> Result<(Section, Vec<(Loc, String)>), ParseError> {
        let mut r = Resolver { root: &self.root, stack: Vec::new(), made: 0, warnings: Vec::new() };
        let out = r.resolve(&self.root)?;
        Ok((out, r.warnings))
    }
}

struct Resolver<'a> {
    root: &'a Section,
    /// The references being resolved, to break loops.
    stack: Vec<String>,
    made: usize,
    warnings: Vec<(Loc, String)>,
}

impl Resolver<'_> {
    fn resolve(&mut self, s: &Section) -> Result<Section, ParseError> {
        let mut out = Section::new(s.name.clone(), s.loc.clone());
        out.kvs = s.kvs.clone();
        for sub in &s.sections {
            out.sections.push(self.resolve(sub)?);
        }
        for r in &s.refs {
            if self.stack.contains(r) || self.stack.len() >= MAX_SECTION_DEPTH {
                self.warnings.push((s.loc.clone(), format!("reference `{r}` loops; followed once")));
                continue;
            }
            let Some(target) = self.root.find(r) else {
                self.warnings.push((s.loc.clone(), format!("reference `{r}`: no such section")));
                continue;
            };
            self.stack.push(r.clone());
            let resolved = self.resolve(target);
            self.stack.pop();
            inherit(&mut out, resolved?);
        }
        self.made = self.made.saturating_add(out.count());
        if self.made > MAX_RESOLVED {
            return Err(ParseError {
                file: s.loc.file.to_path_buf(),
                line: s.loc.line,
                message: format!("references expand to more than {MAX_RESOLVED} settings"),
            });
        }
        Ok(out)
    }
}

/// What a section gets from one it references: what it does not have itself.
fn inherit(own: &mut Section, from: Section) {
    for kv in from.kvs {
        if own.kv(&kv.key).is_none() {
            own.kvs.push(kv);
        }
    }
    for s in from.sections {
        match own.sections.iter_mut().find(|o| o.name == s.name) {
            Some(o) => inherit(o, s),
            None => own.sections.push(s),
        }
    }
}

/// Reads `path` and what it includes.
pub fn load(path: &Path) -> Result<Settings, ParseError> {
    let mut reader = Reader { files: 0, total: 0, stack: Vec::new(), warnings: Vec::new() };
    let file: Arc<Path> = Arc::from(path);
    let mut root = Section::new(String::new(), Loc { file: file.clone(), line: 1 });
    reader.read_file(&file, &mut root, None, 0)?;
    Ok(Settings { root, warnings: reader.warnings })
}

/// Parses `text` as the content of `file` (includes are relative to its directory).
pub fn parse_str(file: &Path, text: &str) -> Result<Settings, ParseError> {
    let mut reader = Reader { files: 1, total: text.len() as u64, stack: Vec::new(), warnings: Vec::new() };
    let file: Arc<Path> = Arc::from(file);
    let mut root = Section::new(String::new(), Loc { file: file.clone(), line: 1 });
    reader.stack.push(canonical(&file));
    Parser { text: text.as_bytes(), pos: 0, line: 1, file, reader: &mut reader, include_depth: 0 }
        .statements(&mut root, 0, None)?;
    Ok(Settings { root, warnings: reader.warnings })
}

/// Reads at most `limit` octets of a file, and fails beyond: a device such as /dev/zero, whose
/// size says nothing, is bounded too.
pub(crate) fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {} MiB", limit >> 20)));
    }
    Ok(bytes)
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

struct Reader {
    files: usize,
    total: u64,
    /// Canonical paths of the files being read, outermost first: an include of one of them loops.
    stack: Vec<PathBuf>,
    warnings: Vec<(Loc, String)>,
}

impl Reader {
    /// Reads one file into `section`; `from` is the include that names it.
    fn read_file(
        &mut self,
        file: &Arc<Path>,
        section: &mut Section,
        from: Option<&Loc>,
        depth: usize,
    ) -> Result<(), ParseError> {
        let at = |message: String| match from {
            Some(l) => ParseError { file: l.file.to_path_buf(), line: l.line, message },
            None => ParseError { file: file.to_path_buf(), line: 0, message },
        };
        let canon = canonical(file);
        if self.stack.contains(&canon) {
            return Err(at(format!("include of {} loops", file.display())));
        }
        if depth > MAX_INCLUDE_DEPTH {
            return Err(at(format!("includes nest deeper than {MAX_INCLUDE_DEPTH}")));
        }
        self.files = self.files.saturating_add(1);
        if self.files > MAX_FILES {
            return Err(at(format!("more than {MAX_FILES} files included")));
        }
        let bytes =
            read_limited(file, MAX_FILE_SIZE).map_err(|e| at(format!("cannot read {}: {e}", file.display())))?;
        self.total = self.total.saturating_add(bytes.len() as u64);
        if self.total > MAX_TOTAL_SIZE {
            return Err(at(format!("the files included exceed {} MiB", MAX_TOTAL_SIZE >> 20)));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let before = e.as_bytes().get(..e.utf8_error().valid_up_to()).unwrap_or(&[]);
            let line = before.iter().filter(|b| **b == b'\n').count().saturating_add(1);
            ParseError { file: file.to_path_buf(), line, message: "not UTF-8 text".into() }
        })?;
        self.stack.push(canon);
        let result =
            Parser { text: text.as_bytes(), pos: 0, line: 1, file: file.clone(), reader: self, include_depth: depth }
                .statements(section, 0, None);
        self.stack.pop();
        result
    }

    /// `include PATTERN` at `loc`: every regular file matching, sorted, read into `section`.
    fn include(&mut self, pattern: &str, loc: &Loc, section: &mut Section, depth: usize) -> Result<(), ParseError> {
        let err = |message: String| ParseError { file: loc.file.to_path_buf(), line: loc.line, message };
        if pattern.is_empty() {
            self.warnings.push((loc.clone(), "include without a pattern, ignored".into()));
            return Ok(());
        }
        // Relative to the including file's directory (parser_helper.c's file_include); the
        // directory is escaped so that its name is not read as a pattern.
        let full = if Path::new(pattern).is_absolute() {
            pattern.to_owned()
        } else {
            let dir = loc.file.parent().unwrap_or(Path::new(""));
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            format!("{}/{pattern}", glob::Pattern::escape(&dir.to_string_lossy()))
        };
        let paths = glob::glob(&full).map_err(|e| err(format!("include pattern `{pattern}`: {e}")))?;
        let mut matched = 0usize;
        for p in paths {
            let p = p.map_err(|e| err(format!("include `{pattern}`: {e}")))?;
            // glob(3) lists directories too; strongSwan reads only regular files.
            if !p.is_file() {
                continue;
            }
            matched = matched.saturating_add(1);
            self.read_file(&Arc::from(p.as_path()), section, Some(loc), depth.saturating_add(1))?;
        }
        if matched == 0 && !pattern.contains(['*', '?', '[']) {
            self.warnings.push((loc.clone(), format!("include {pattern}: no such file")));
        }
        Ok(())
    }
}

/// Characters of section and key names (the lexer's NAME class).
fn is_name(b: u8) -> bool {
    !matches!(b, b'#' | b'{' | b'}' | b':' | b'.' | b',' | b'=' | b'"' | b'\r' | b'\n' | b'\t' | b' ')
}

/// A reference may name a section by its dotted path.
fn is_ref_name(b: u8) -> bool {
    is_name(b) || b == b'.'
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
    file: Arc<Path>,
    reader: &'a mut Reader,
    include_depth: usize,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError { file: self.file.to_path_buf(), line: self.line, message: message.into() }
    }

    fn loc(&self) -> Loc {
        Loc { file: self.file.clone(), line: self.line }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos = self.pos.saturating_add(1);
        if b == b'\n' {
            self.line = self.line.saturating_add(1);
        }
        Some(b)
    }

    fn skip_comment(&mut self) {
        while self.peek().is_some_and(|b| b != b'\n') {
            self.bump();
        }
    }

    /// Whitespace, line ends and comments between tokens.
    fn skip_blank(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    self.bump();
                }
                b'#' => self.skip_comment(),
                _ => break,
            }
        }
    }

    fn name(&mut self, class: fn(u8) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(class) {
            self.bump();
        }
        String::from_utf8_lossy(self.text.get(start..self.pos).unwrap_or(&[])).into_owned()
    }

    /// A description of the next token, for syntax errors.
    fn next_token(&self) -> String {
        match self.peek() {
            None => "end of file".into(),
            Some(b'\n') => "end of line".into(),
            Some(b) if b.is_ascii_graphic() => format!("`{}`", b as char),
            Some(b) => format!("character 0x{b:02x}"),
        }
    }

    /// Statements until the end of the file (`open` is `None`) or the `}` that closes the section
    /// opened at `open`.
    fn statements(&mut self, section: &mut Section, depth: usize, open: Option<&Loc>) -> Result<(), ParseError> {
        loop {
            self.skip_blank();
            match self.peek() {
                None => {
                    return match open {
                        None => Ok(()),
                        Some(l) => Err(ParseError {
                            file: self.file.to_path_buf(),
                            line: self.line,
                            message: format!("end of file inside section `{}` opened at line {}", section.name, l.line),
                        }),
                    };
                }
                Some(b'}') => {
                    if open.is_none() {
                        return Err(self.err("syntax error, unexpected `}`"));
                    }
                    self.bump();
                    return Ok(());
                }
                Some(b'"') => return Err(self.err("unexpected string")),
                Some(b) if !is_name(b) => {
                    return Err(self.err(format!("syntax error, unexpected {}, expecting a name", self.next_token())));
                }
                Some(_) => {}
            }
            if self.at_include() {
                let loc = self.loc();
                let pattern = self.include_pattern()?;
                self.reader.include(&pattern, &loc, section, self.include_depth)?;
                continue;
            }
            let loc = self.loc();
            let name = self.name(is_name);
            self.skip_blank();
            match self.peek() {
                Some(b'=') => {
                    self.bump();
                    let value = self.value()?;
                    section.add_kv(Kv { key: name, value, loc });
                }
                Some(b'{') => {
                    self.bump();
                    section.add_section(self.section(name, loc, depth, Vec::new())?);
                }
                Some(b':') => {
                    self.bump();
                    let refs = self.references()?;
                    section.add_section(self.section(name, loc, depth, refs)?);
                }
                _ => {
                    return Err(self.err(format!(
                        "syntax error after `{name}`: unexpected {}, expecting `=`, `{{` or `:`",
                        self.next_token()
                    )));
                }
            }
        }
    }

    fn section(&mut self, name: String, loc: Loc, depth: usize, refs: Vec<String>) -> Result<Section, ParseError> {
        if depth >= MAX_SECTION_DEPTH {
            return Err(self.err(format!("sections nest deeper than {MAX_SECTION_DEPTH}")));
        }
        let mut s = Section::new(name, loc.clone());
        s.refs = refs;
        self.statements(&mut s, depth.saturating_add(1), Some(&loc))?;
        Ok(s)
    }

    /// `a.b, c {`: the names, and the `{` consumed.
    fn references(&mut self) -> Result<Vec<String>, ParseError> {
        let mut refs = Vec::new();
        loop {
            self.skip_blank();
            let r = self.name(is_ref_name);
            if r.is_empty() || r.starts_with('.') || r.ends_with('.') || r.contains("..") {
                return Err(self.err(format!("syntax error in references: unexpected {}", self.next_token())));
            }
            refs.push(r);
            self.skip_blank();
            match self.peek() {
                Some(b',') => {
                    self.bump();
                }
                Some(b'{') => {
                    self.bump();
                    return Ok(refs);
                }
                _ => {
                    return Err(self.err(format!(
                        "syntax error in references: unexpected {}, expecting `,` or `{{`",
                        self.next_token()
                    )));
                }
            }
        }
    }

    /// `include` followed by blanks and something that is not `=` (then it is a key named include).
    fn at_include(&self) -> bool {
        let rest = self.text.get(self.pos..).unwrap_or(&[]);
        let Some(after) = rest.strip_prefix(b"include") else { return false };
        let blanks = after.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
        blanks > 0 && after.get(blanks).is_some_and(|b| *b != b'=')
    }

    /// The include pattern: up to an unescaped blank, `#`, `}` or line end, or a quoted string.
    fn include_pattern(&mut self) -> Result<String, ParseError> {
        self.pos = self.pos.saturating_add("include".len());
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'#' | b'}' | b'\n' | b'\t' | b' ') => break,
                Some(b'\r') => {
                    self.bump();
                }
                Some(b'"') => {
                    self.bump();
                    out.extend(self.string()?.into_bytes());
                    break;
                }
                Some(b'\\') => {
                    self.bump();
                    match self.peek() {
                        Some(c @ (b'"' | b'#' | b'}' | b' ')) => {
                            self.bump();
                            out.push(c);
                        }
                        _ => out.push(b'\\'),
                    }
                }
                Some(b) => {
                    self.bump();
                    out.push(b);
                }
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The rest of the line after `=`: words joined by one space, strings as they are; `None`
    /// when there is nothing. A `#` or `}` ends it (and is read again by the caller).
    fn value(&mut self) -> Result<Option<String>, ParseError> {
        let mut parts: Vec<String> = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'#' | b'}' | b'\n') => break,
                Some(b'\r' | b' ' | b'\t') => {
                    self.bump();
                }
                Some(b'"') => {
                    self.bump();
                    parts.push(self.string()?);
                }
                Some(_) => {
                    let start = self.pos;
                    while self.peek().is_some_and(|b| !matches!(b, b'#' | b'}' | b'"' | b'\r' | b'\n' | b'\t' | b' ')) {
                        self.bump();
                    }
                    parts.push(String::from_utf8_lossy(self.text.get(start..self.pos).unwrap_or(&[])).into_owned());
                }
            }
        }
        Ok(if parts.is_empty() { None } else { Some(parts.join(" ")) })
    }

    /// A quoted string, its opening `"` read.
    fn string(&mut self) -> Result<String, ParseError> {
        let start_line = self.line;
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => {
                    return Err(ParseError {
                        file: self.file.to_path_buf(),
                        line: start_line,
                        message: "unterminated string".into(),
                    });
                }
                Some(b'"') => break,
                Some(b'\r') => {}
                Some(b'\\') => match self.bump() {
                    None => {
                        return Err(ParseError {
                            file: self.file.to_path_buf(),
                            line: start_line,
                            message: "unterminated string".into(),
                        });
                    }
                    Some(b'n') => out.push(b'\n'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b't') => out.push(b'\t'),
                    // A line end escaped joins the lines.
                    Some(b'\n') => {}
                    Some(b'\r') if self.peek() == Some(b'\n') => {
                        self.bump();
                    }
                    Some(c) => out.push(c),
                },
                Some(b) => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests;
