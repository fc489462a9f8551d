#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use super::*;

fn parse(text: &str) -> Section {
    parse_str(Path::new("/nonexistent/swanctl.conf"), text).unwrap().root
}

fn err(text: &str) -> ParseError {
    parse_str(Path::new("/nonexistent/swanctl.conf"), text).unwrap_err()
}

/// A fresh directory for include tests.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oxswan-settings-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn values_run_to_the_end_of_the_line_and_words_join_with_one_space() {
    let s = parse("a = one   two\tthree # a comment\nb=x,y\nc = \"  kept  \" and \"more\"\nd =\n");
    assert_eq!(s.get("a"), Some("one two three"));
    assert_eq!(s.get("b"), Some("x,y"));
    assert_eq!(s.get("c"), Some("  kept   and more"));
    assert!(s.kv("d").is_some() && s.get("d").is_none(), "`d =` has no value");
    assert_eq!(s.kvs.len(), 4);
}

#[test]
fn a_stray_closing_brace_is_an_error_with_its_line() {
    let e = err("a = 1\nb = 2 }\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("unexpected `}`"), "{e}");
}

#[test]
fn sections_nest_and_names_may_continue_on_the_next_line() {
    let s = parse("connections {\n  site\n  {\n    local { auth = psk\n            id = a }\n  }\n}\n");
    let site = s.find("connections.site").unwrap();
    assert_eq!(site.loc.line, 2);
    let local = site.section("local").unwrap();
    assert_eq!(local.get("auth"), Some("psk"));
    assert_eq!(local.get("id"), Some("a"));
    assert_eq!(local.kv("id").unwrap().loc.line, 5);
}

#[test]
fn strings_take_escapes_and_span_lines() {
    let s = parse("a = \"x\\ty\\n\\\"q\\\" \\\\ end\"\nb = \"one\\\ntwo\"\nc = \"multi\nline\"\nd = after\n");
    assert_eq!(s.get("a"), Some("x\ty\n\"q\" \\ end"));
    assert_eq!(s.get("b"), Some("onetwo"), "an escaped line end joins the lines");
    assert_eq!(s.get("c"), Some("multi\nline"));
    assert_eq!(s.kv("d").unwrap().loc.line, 6, "lines inside strings count");
}

#[test]
fn comments_end_values_but_not_strings() {
    let s = parse("a = x#y\nb = \"x#y\" # z\n# whole line\n   # indented\nc = 1\n");
    assert_eq!(s.get("a"), Some("x"));
    assert_eq!(s.get("b"), Some("x#y"));
    assert_eq!(s.get("c"), Some("1"));
}

#[test]
fn syntax_errors_name_their_line() {
    for (text, line, what) in [
        ("a {\n b = 1\n", 3, "end of file inside section `a` opened at line 1"),
        ("a = \"open\n\n", 1, "unterminated string"),
        ("a {\n  b c = 1\n}\n", 2, "syntax error after `b`"),
        ("\n\n\"x\" = 1\n", 3, "unexpected string"),
        ("a.b = 1\n", 1, "syntax error after `a`"),
        ("a : {\n}\n", 1, "syntax error in references"),
        ("a = 1\n= 2\n", 2, "expecting a name"),
    ] {
        let e = err(text);
        assert_eq!((e.line, e.file.as_path()), (line, Path::new("/nonexistent/swanctl.conf")), "{text:?}: {e}");
        assert!(e.message.contains(what), "{text:?}: {e}");
    }
}

#[test]
fn repeated_sections_and_keys_merge_as_strongswan_does() {
    let s = parse("a {\n x = 1\n y = 2\n}\nb { z = 0 }\na {\n x = 3\n w = 4\n c { k = v }\n}\n");
    let a = s.section("a").unwrap();
    let keys: Vec<(&str, Option<&str>)> = a.kvs.iter().map(|k| (k.key.as_str(), k.value.as_deref())).collect();
    assert_eq!(keys, vec![("x", Some("3")), ("y", Some("2")), ("w", Some("4"))], "first place, last value");
    assert_eq!(a.kv("x").unwrap().loc.line, 7, "the location of the value in force");
    assert_eq!(s.sections.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(a.section("c").unwrap().get("k"), Some("v"));
}

#[test]
fn references_inherit_what_a_section_does_not_have() {
    let text = "base {\n  proposals = p1\n  mobike = no\n  local { auth = psk\n id = me }\n}\n\
                conn : base {\n  proposals = p2\n  mobike =\n  local { id = other }\n}\n";
    let settings = parse_str(Path::new("/x/swanctl.conf"), text).unwrap();
    let (root, warnings) = settings.resolved().unwrap();
    assert!(warnings.is_empty());
    let conn = root.section("conn").unwrap();
    assert_eq!(conn.get("proposals"), Some("p2"), "its own value first");
    assert_eq!(conn.get("mobike"), None, "`mobike =` hides the referenced value");
    let local = conn.section("local").unwrap();
    assert_eq!((local.get("auth"), local.get("id")), (Some("psk"), Some("other")));
    assert_eq!(settings.root.section("conn").unwrap().refs, vec!["base"]);
}

#[test]
fn references_that_loop_or_point_nowhere_are_named() {
    let text = "a : b { x = 1 }\nb : a, c.d { y = 2 }\n";
    let (root, warnings) = parse_str(Path::new("/x/swanctl.conf"), text).unwrap().resolved().unwrap();
    assert_eq!(root.section("a").unwrap().get("y"), Some("2"));
    assert_eq!(root.section("b").unwrap().get("x"), Some("1"));
    let msgs: Vec<&str> = warnings.iter().map(|(_, m)| m.as_str()).collect();
    assert!(msgs.iter().any(|m| m.contains("`a` loops")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("`c.d`: no such section")), "{msgs:?}");
}

#[test]
fn references_that_explode_are_refused() {
    // Each section references the previous one twice over (itself and through its sibling): the
    // resolved tree would grow far beyond the input.
    let mut text = String::from("s0 { k = v }\n");
    for i in 1..40 {
        text.push_str(&format!("s{i} : s{}, t{} {{ k{i} = v }}\nt{i} : s{} {{ }}\n", i - 1, i - 1, i - 1));
    }
    text.push_str("t0 { }\n");
    let r = parse_str(Path::new("/x/swanctl.conf"), &text).unwrap().resolved();
    assert!(r.is_err_and(|e| e.message.contains("references expand")));
}

#[test]
fn includes_are_read_in_place_relative_to_the_including_file_sorted() {
    let d = tmp("include");
    std::fs::create_dir_all(d.join("conf.d/sub")).unwrap();
    std::fs::write(
        d.join("swanctl.conf"),
        "connections {\n  include conf.d/*.conf\n}\ninclude conf.d/sub/secrets.conf # a comment\n",
    )
    .unwrap();
    std::fs::write(d.join("conf.d/b.conf"), "b { x = 2 }\na { y = from-b }\n").unwrap();
    std::fs::write(d.join("conf.d/a.conf"), "a { y = from-a\n z = 1 }\n").unwrap();
    // Relative to conf.d/sub/, not to the top file.
    std::fs::write(d.join("conf.d/sub/secrets.conf"), "include more.conf\n").unwrap();
    std::fs::write(d.join("conf.d/sub/more.conf"), "secrets { ike { secret = s } }\n").unwrap();
    let s = load(&d.join("swanctl.conf")).unwrap();
    let conns = s.root.section("connections").unwrap();
    let names: Vec<&str> = conns.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b"], "a.conf first");
    let a = conns.section("a").unwrap();
    assert_eq!(a.get("y"), Some("from-b"), "b.conf, read later, wins");
    assert_eq!(*a.kv("y").unwrap().loc.file, *d.join("conf.d/b.conf"));
    assert_eq!(a.kv("z").unwrap().loc.line, 2);
    assert_eq!(s.root.find("secrets.ike").unwrap().get("secret"), Some("s"));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_include_naming_a_missing_file_is_a_warning_a_pattern_matching_none_is_not() {
    let d = tmp("missing");
    std::fs::write(d.join("swanctl.conf"), "include conf.d/*.conf\ninclude nothere.conf\na = 1\n").unwrap();
    let s = load(&d.join("swanctl.conf")).unwrap();
    assert_eq!(s.root.get("a"), Some("1"));
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert_eq!(s.warnings[0].0.line, 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn include_loops_and_errors_in_included_files_name_the_place() {
    let d = tmp("loop");
    std::fs::write(d.join("swanctl.conf"), "a = 1\ninclude b.conf\n").unwrap();
    std::fs::write(d.join("b.conf"), "\ninclude swanctl.conf\n").unwrap();
    let e = load(&d.join("swanctl.conf")).unwrap_err();
    assert_eq!((e.file.as_path(), e.line), (d.join("b.conf").as_path(), 2), "{e}");
    assert!(e.message.contains("loops"), "{e}");

    std::fs::write(d.join("b.conf"), "ok = 1\nbroken {\n").unwrap();
    let e = load(&d.join("swanctl.conf")).unwrap_err();
    assert_eq!((e.file.as_path(), e.line), (d.join("b.conf").as_path(), 3), "{e}");

    std::fs::write(d.join("b.conf"), "}\n").unwrap();
    let e = load(&d.join("swanctl.conf")).unwrap_err();
    assert!(e.message.contains("unexpected `}`"), "an included file closes no section of its includer: {e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn deep_includes_many_files_and_large_files_are_refused() {
    let d = tmp("limits");
    // A chain of includes deeper than the limit (no loop: each file is another).
    for i in 0..=MAX_INCLUDE_DEPTH + 1 {
        std::fs::write(d.join(format!("f{i}.conf")), format!("include f{}.conf\n", i + 1)).unwrap();
    }
    let e = load(&d.join("f0.conf")).unwrap_err();
    assert!(e.message.contains("nest deeper"), "{e}");

    let big = d.join("big.conf");
    std::fs::write(&big, "a = ".to_owned() + &"x".repeat(usize::try_from(MAX_FILE_SIZE).unwrap()) + "\n").unwrap();
    let e = load(&big).unwrap_err();
    assert!(e.message.contains("larger than"), "{e}");
    // A device's size says nothing: it is read up to the limit only.
    let e = load(Path::new("/dev/zero")).unwrap_err();
    assert!(e.message.contains("larger than"), "{e}");

    // The same file included over and over, side by side (not nested): bounded by the file count.
    std::fs::write(d.join("leaf.conf"), "x = 1\n").unwrap();
    std::fs::write(d.join("many.conf"), "include leaf.conf\n".repeat(MAX_FILES + 1)).unwrap();
    let e = load(&d.join("many.conf")).unwrap_err();
    assert!(e.message.contains("files included"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sections_nested_too_deep_are_refused() {
    let text = "a {\n".repeat(MAX_SECTION_DEPTH + 1);
    assert!(err(&text).message.contains("nest deeper"));
    let ok = format!("{}{}", "a {\n".repeat(MAX_SECTION_DEPTH), "}\n".repeat(MAX_SECTION_DEPTH));
    assert!(parse_str(Path::new("/x"), &ok).is_ok());
}

#[test]
fn a_key_named_include_is_a_key() {
    let s = parse("include = yes\nincludes { x = 1 }\n");
    assert_eq!(s.get("include"), Some("yes"));
    assert!(s.section("includes").is_some());
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap fuzz: every prefix of a configuration mixing every construct, and some noise.
    let text = "connections {\n a : b.c, d {\n  k = \"v\\\"\\n\" w # c\n  include x/*.conf\n }\n}\n\x01\u{fffd}=\"";
    for end in 0..=text.len() {
        if let Some(t) = text.get(..end) {
            let _ = parse_str(Path::new("/nonexistent/x.conf"), t).map(|s| s.resolved());
        }
    }
}
