//! Directory listing pages (HTML and JSON).
//!
//! Role in the request's path: runs on a worker thread after the URL path has
//! been decoded and resolved to a directory that has no index file, when
//! listings are enabled. [`read_entries`] does the only I/O, through the
//! directory's descriptor (see `sys::dir`); the two render functions are pure
//! string building, so they can be tested without a disk.
//!
//! A page is bounded twice: at most [`MAX_ENTRIES`] rows and at most
//! [`MAX_PAGE_BYTES`] in all; a page cut by either says so (a visible note,
//! `"truncated": true` in JSON). `site::listing_cache` shares one rendering
//! between the requests that ask for the same directory.
//!
//! Everything that came from the filesystem or the URL is untrusted text here:
//! names are HTML-escaped where shown, percent-encoded where linked, and
//! JSON-escaped in the JSON form.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::time::SystemTime;

use crate::http::date;
use crate::limits::{MAX_ENTRIES, MAX_PAGE_BYTES};
use crate::site::url_path::{encode, is_hidden_name};
use crate::sys::dir::DirReader;

/// Room kept for the "truncated" note, so that the note, the rows and the
/// rest of the page stay within [`MAX_PAGE_BYTES`].
const NOTE_ROOM: usize = 200;

/// Sizes at or above this many bytes are shown in KiB and larger units; a
/// binary step matches what `ls -h` and file managers show.
const SIZE_STEP: f64 = 1024.0;

/// Unit names for [`human_size`], one per power of [`SIZE_STEP`]; a u64
/// cannot reach the next one (ZiB).
const SIZE_UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// One row of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name (valid UTF-8, never contains '/').
    pub name: String,
    /// The entry itself is a directory (a symlink is not followed, so a
    /// symlink to a directory is listed as a file).
    pub is_dir: bool,
    /// Size in bytes; 0 for directories, whose on-disk size means nothing to
    /// a visitor.
    pub size: u64,
    /// Last modification time; the UNIX epoch when the platform cannot say.
    pub modified: SystemTime,
}

/// A directory's entries, sorted, and whether some were left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// The directory has more than [`MAX_ENTRIES`] visible entries; those
    /// kept are the first the file system returned, not the first by name.
    pub truncated: bool,
}

/// Read the entries of the open directory `dir`, ready to render.
///
/// The entries come from the descriptor, never from a path: the listing
/// shows exactly the directory that was opened (and vetted) beneath the
/// root, even if its path has been swapped for a symlink since.
///
/// Hidden names are skipped unless `allow_hidden`, as are names that are not
/// valid UTF-8 (they could not be linked faithfully) and entries whose
/// metadata cannot be read (they vanished, or we lack permission). Symlinks
/// are not followed. At most [`MAX_ENTRIES`] entries are kept.
///
/// Order: directories first, then by name compared ASCII-case-insensitively
/// ("b" sorts between "A" and "C", as people expect), with plain byte order
/// as the tie-break so the order is total and stable.
pub fn read_entries(dir: &File, allow_hidden: bool) -> io::Result<Listing> {
    let mut reader = DirReader::new(dir)?;
    let mut listing = Listing::default();
    while let Some(name) = reader.next_name() {
        // A failing `readdir` may fail again at the same place: show what
        // was read so far rather than loop.
        let Ok(name) = name else {
            break;
        };
        let Ok(name) = name.into_string() else {
            continue;
        };
        if !allow_hidden && is_hidden_name(&name) {
            continue;
        }
        if listing.entries.len() >= MAX_ENTRIES {
            listing.truncated = true;
            break;
        }
        // Not following symlinks: a link pointing outside the root reveals
        // nothing about its target here. One unreadable entry should not
        // hide the rest of the directory.
        let Ok(meta) = reader.metadata(OsStr::new(&name)) else {
            continue;
        };
        listing.entries.push(Entry {
            name,
            is_dir: meta.is_dir,
            size: if meta.is_dir { 0 } else { meta.len },
            modified: meta.modified,
        });
    }
    listing.entries.sort_by(listing_order);
    Ok(listing)
}

/// The part of a page that lists entries, cut to the rows' byte budget.
struct Rows {
    text: String,
    shown: usize,
    /// Some entries were left out, here or when reading the directory.
    truncated: bool,
}

/// Renders `render_row` for each entry while the rows fit in `budget`
/// bytes; `sep` goes between rows.
fn rows(
    listing: &Listing,
    budget: usize,
    sep: &str,
    mut render_row: impl FnMut(&mut String, &Entry),
) -> Rows {
    let mut text = String::new();
    let mut row = String::new();
    let mut cut = false;
    let mut shown = 0;
    for entry in &listing.entries {
        row.clear();
        if shown > 0 {
            row.push_str(sep);
        }
        render_row(&mut row, entry);
        if text.len() + row.len() > budget {
            cut = true;
            break;
        }
        text.push_str(&row);
        shown += 1;
    }
    Rows {
        text,
        shown,
        truncated: cut || listing.truncated,
    }
}

/// Render the listing as a self-contained, accessible HTML5 page.
///
/// `url_path` is the decoded path of the directory (e.g. "/docs/"). Links are
/// relative to it, so the page must be served at a URL ending in '/'. The
/// page is at most [`MAX_PAGE_BYTES`] (the fixed parts, two copies of the
/// escaped path, bounded by the request head's size limit, and the rows that
/// fit in the rest).
pub fn render_html(url_path: &str, listing: &Listing) -> String {
    let title = escape_html(url_path);
    let mut top = String::with_capacity(STYLE.len() + 2 * title.len() + 512);
    top.push_str(
        "<!doctype html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    );
    // Writing into a String cannot fail; ignoring the Result avoids a panic path.
    let _ = writeln!(top, "<title>Index of {title}</title>");
    top.push_str(STYLE);
    top.push_str("</head>\n<body>\n<main>\n");
    let _ = writeln!(top, "<h1>Index of {title}</h1>");
    let mut table = String::from(
        "<table>\n\
         <thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Size</th>\
         <th scope=\"col\">Last modified</th></tr></thead>\n\
         <tbody>\n",
    );
    if url_path != "/" {
        table.push_str(
            "<tr><td><a href=\"../\" aria-label=\"Parent directory\">../</a></td>\
             <td class=\"size\">—</td><td></td></tr>\n",
        );
    }
    const BOTTOM: &str = "</tbody>\n</table>\n</main>\n</body>\n</html>\n";
    let fixed = top.len() + table.len() + BOTTOM.len() + NOTE_ROOM;
    let rows = rows(
        listing,
        MAX_PAGE_BYTES.saturating_sub(fixed),
        "",
        |row, entry| {
            let (href, shown, class, size) = if entry.is_dir {
                (
                    format!("{}/", encode(&entry.name)),
                    format!("{}/", escape_html(&entry.name)),
                    "dir",
                    "—".to_string(),
                )
            } else {
                (
                    encode(&entry.name),
                    escape_html(&entry.name),
                    "file",
                    human_size(entry.size),
                )
            };
            let seconds = unix_seconds(entry.modified);
            let _ = writeln!(
                row,
                "<tr class=\"{class}\"><td><a href=\"{href}\">{shown}</a></td>\
             <td class=\"size\">{size}</td>\
             <td><time datetime=\"{}\">{}</time></td></tr>",
                rfc3339(seconds),
                short_time(seconds),
            );
        },
    );
    let mut page = top;
    page.reserve(table.len() + rows.text.len() + BOTTOM.len() + NOTE_ROOM);
    if rows.truncated {
        let before = page.len();
        let noun = if rows.shown == 1 {
            "entry is"
        } else {
            "entries are"
        };
        let _ = writeln!(
            page,
            "<p class=\"note\" role=\"status\">This listing is truncated: \
             only {} {noun} shown.</p>",
            rows.shown
        );
        debug_assert!(page.len() - before <= NOTE_ROOM);
    }
    page.push_str(&table);
    page.push_str(&rows.text);
    page.push_str(BOTTOM);
    page
}

/// Render the same data as JSON:
/// `{"path":"/x/","truncated":false,"entries":[{"name":"a.txt","type":"file","size":12,"modified":"2026-11-25T10:04:00Z"}]}`.
/// `type` is "dir" or "file"; directories have size 0. `truncated` is true
/// when entries were left out; the document is at most [`MAX_PAGE_BYTES`]
/// (as for [`render_html`]).
pub fn render_json(url_path: &str, listing: &Listing) -> String {
    let mut top = String::with_capacity(64 + url_path.len());
    top.push_str("{\"path\":");
    push_json_string(&mut top, url_path);
    // `"truncated":false,"entries":[` and `]}`, with room for `true`.
    const FRAME: usize = 48;
    let budget = MAX_PAGE_BYTES.saturating_sub(top.len() + FRAME);
    let rows = rows(listing, budget, ",", |row, entry| {
        row.push_str("{\"name\":");
        push_json_string(row, &entry.name);
        let kind = if entry.is_dir { "dir" } else { "file" };
        let _ = write!(
            row,
            ",\"type\":\"{kind}\",\"size\":{},\"modified\":\"{}\"}}",
            entry.size,
            rfc3339(unix_seconds(entry.modified)),
        );
    });
    let mut json = top;
    json.reserve(FRAME + rows.text.len());
    let _ = write!(json, ",\"truncated\":{},\"entries\":[", rows.truncated);
    json.push_str(&rows.text);
    json.push_str("]}");
    json
}

/// Inline style only: the page must work with no other request, and adapts to
/// the visitor's light/dark preference.
const STYLE: &str = "<style>
:root { color-scheme: light dark; --fg: #1b1b1b; --bg: #fdfdfd; --muted: #666; --link: #0b57d0; --rule: #ddd; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e6e6; --bg: #161616; --muted: #a0a0a0; --link: #8ab4f8; --rule: #333; }
}
body { margin: 0; background: var(--bg); color: var(--fg); font: 16px/1.5 system-ui, sans-serif; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.4rem; overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; }
th, td { padding: 0.35rem 0.5rem; border-bottom: 1px solid var(--rule); text-align: left; }
th { color: var(--muted); font-weight: 600; }
td:first-child { overflow-wrap: anywhere; }
.size { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
th:nth-child(2) { text-align: right; }
td:last-child { white-space: nowrap; color: var(--muted); }
a { color: var(--link); }
a:focus-visible { outline: 2px solid var(--link); outline-offset: 2px; }
.dir a { font-weight: 600; }
.note { color: var(--muted); }
</style>
";

/// Directories first, then ASCII-case-insensitive name, then byte order.
fn listing_order(a: &Entry, b: &Entry) -> Ordering {
    b.is_dir
        .cmp(&a.is_dir)
        .then_with(|| {
            let fold_a = a.name.bytes().map(|c| c.to_ascii_lowercase());
            let fold_b = b.name.bytes().map(|c| c.to_ascii_lowercase());
            fold_a.cmp(fold_b)
        })
        .then_with(|| a.name.cmp(&b.name))
}

/// Escape the five characters that matter in HTML text and quoted attributes.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Append `text` as a quoted JSON string (RFC 8259 escaping).
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c < '\u{20}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// "3 B", "1.2 KiB", "4.0 GiB": one decimal once past bytes.
fn human_size(bytes: u64) -> String {
    // Lossy above 2^53 bytes, which is invisible at one decimal place.
    let mut value = bytes as f64;
    if value < SIZE_STEP {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    // Compare against the rounding edge so 1023.96 KiB prints as "1.0 MiB",
    // not "1024.0 KiB".
    while value >= SIZE_STEP - 0.05 && unit + 1 < SIZE_UNITS.len() {
        value /= SIZE_STEP;
        unit += 1;
    }
    let name = SIZE_UNITS.get(unit).copied().unwrap_or("B");
    format!("{value:.1} {name}")
}

/// Whole seconds since the UNIX epoch; times before it clamp to 0 (a
/// listing has no use for dates before 1970, and the calendar is shared
/// with the `Date` header: [`crate::http::date`]).
fn unix_seconds(time: SystemTime) -> u64 {
    u64::try_from(date::unix_seconds(time)).unwrap_or(0)
}

fn civil_from_unix(seconds: u64) -> date::Civil {
    date::civil_from_unix(i64::try_from(seconds).unwrap_or(i64::MAX))
}

/// "2026-11-25T10:04:00Z", for machines (JSON and `<time datetime>`).
fn rfc3339(seconds: u64) -> String {
    let t = civil_from_unix(seconds);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// "2026-11-25 10:04", for people.
fn short_time(seconds: u64) -> String {
    let t = civil_from_unix(seconds);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(name: &str, is_dir: bool, size: u64, seconds: u64) -> Entry {
        Entry {
            name: name.to_string(),
            is_dir,
            size,
            modified: UNIX_EPOCH + Duration::from_secs(seconds),
        }
    }

    const TIME_CASES: &[(u64, &str)] = &[
        (0, "1970-01-01T00:00:00Z"),
        (86_399, "1970-01-01T23:59:59Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (1_709_208_000, "2024-02-29T12:00:00Z"),
        (1_798_193_040, "2026-12-25T10:04:00Z"),
        (1_795_601_040, "2026-11-25T10:04:00Z"),
        (4_102_444_800, "2100-01-01T00:00:00Z"),
        (253_402_300_799, "9999-12-31T23:59:59Z"),
    ];

    #[test]
    fn time_table() {
        for &(seconds, expected) in TIME_CASES {
            assert_eq!(rfc3339(seconds), expected, "{seconds}");
        }
        assert_eq!(short_time(1_795_601_040), "2026-11-25 10:04");
        // Extremes must not panic.
        let _ = rfc3339(u64::MAX);
        let before_epoch = UNIX_EPOCH.checked_sub(Duration::from_secs(10));
        if let Some(before_epoch) = before_epoch {
            assert_eq!(unix_seconds(before_epoch), 0);
        }
    }

    const SIZE_CASES: &[(u64, &str)] = &[
        (0, "0 B"),
        (3, "3 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1229, "1.2 KiB"),
        (1_048_524, "1023.9 KiB"),
        (1_048_525, "1.0 MiB"),
        (5 * 1024 * 1024 * 1024, "5.0 GiB"),
        (u64::MAX, "16.0 EiB"),
    ];

    #[test]
    fn size_table() {
        for &(bytes, expected) in SIZE_CASES {
            assert_eq!(human_size(bytes), expected, "{bytes}");
        }
    }

    const HTML_ESCAPE_CASES: &[(&str, &str)] = &[
        ("plain", "plain"),
        ("a&b", "a&amp;b"),
        ("<script>", "&lt;script&gt;"),
        ("\"x'", "&quot;x&#39;"),
        ("✓", "✓"),
    ];

    #[test]
    fn html_escape_table() {
        for &(text, expected) in HTML_ESCAPE_CASES {
            assert_eq!(escape_html(text), expected, "{text:?}");
        }
    }

    const JSON_ESCAPE_CASES: &[(&str, &str)] = &[
        ("a.txt", "\"a.txt\""),
        ("q\"uote", "\"q\\\"uote\""),
        ("back\\slash", "\"back\\\\slash\""),
        ("nl\nx\u{1}", "\"nl\\u000ax\\u0001\""),
        ("✓", "\"✓\""),
    ];

    #[test]
    fn json_escape_table() {
        for &(text, expected) in JSON_ESCAPE_CASES {
            let mut out = String::new();
            push_json_string(&mut out, text);
            assert_eq!(out, expected, "{text:?}");
        }
    }

    #[test]
    fn sort_order() {
        let mut entries = [
            entry("b.txt", false, 1, 0),
            entry("Zeta", true, 0, 0),
            entry("A.txt", false, 1, 0),
            entry("a.txt", false, 1, 0),
            entry("alpha", true, 0, 0),
            entry("C.txt", false, 1, 0),
        ];
        entries.sort_by(listing_order);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["alpha", "Zeta", "A.txt", "a.txt", "b.txt", "C.txt"]);
    }

    /// (url_path, entries, substrings the page must contain, substrings it must not)
    type HtmlCase = (
        &'static str,
        Vec<Entry>,
        &'static [&'static str],
        &'static [&'static str],
    );

    #[test]
    fn html_table() {
        let cases: Vec<HtmlCase> = vec![
            (
                "/",
                vec![entry("a b.txt", false, 1229, 1_795_601_040)],
                &[
                    "<!doctype html>",
                    "<html lang=\"en\">",
                    "<meta charset=\"utf-8\">",
                    "<meta name=\"viewport\"",
                    "<title>Index of /</title>",
                    "<h1>Index of /</h1>",
                    "prefers-color-scheme",
                    "<th scope=\"col\">Name</th>",
                    "<td><a href=\"a%20b.txt\">a b.txt</a></td>",
                    "1.2 KiB",
                    "<time datetime=\"2026-11-25T10:04:00Z\">2026-11-25 10:04</time>",
                ],
                &["href=\"../\"", "<link", "<script"],
            ),
            (
                "/docs/<x>&\"'/",
                vec![entry("sub", true, 0, 0), entry("<img>&\".txt", false, 3, 0)],
                &[
                    "<title>Index of /docs/&lt;x&gt;&amp;&quot;&#39;/</title>",
                    "<td><a href=\"../\"",
                    "<td><a href=\"sub/\">sub/</a></td>",
                    "<td class=\"size\">—</td>",
                    "<a href=\"%3Cimg%3E%26%22.txt\">&lt;img&gt;&amp;&quot;.txt</a>",
                    "<td class=\"size\">3 B</td>",
                ],
                &["<img>", "<x>"],
            ),
            (
                "/✓/",
                vec![entry("✓.txt", false, 0, 0)],
                &["Index of /✓/", "href=\"%E2%9C%93.txt\">✓.txt</a>"],
                &[],
            ),
        ];
        for (url_path, entries, present, absent) in cases {
            let listing = Listing {
                entries: entries.clone(),
                truncated: false,
            };
            let page = render_html(url_path, &listing);
            assert!(!page.contains("truncated"), "{url_path:?}");
            for needle in present {
                assert!(
                    page.contains(needle),
                    "{url_path:?} lacks {needle:?}:\n{page}"
                );
            }
            for needle in absent {
                assert!(
                    !page.contains(needle),
                    "{url_path:?} has {needle:?}:\n{page}"
                );
            }
            // One link per entry, plus the parent link below the root.
            let links = page.matches("<td><a href=").count();
            let parent = usize::from(url_path != "/");
            assert_eq!(links, entries.len() + parent, "{url_path:?}");
        }
    }

    #[test]
    fn json_table() {
        let cases: &[(&str, Vec<Entry>, &str)] = &[
            (
                "/",
                vec![],
                r#"{"path":"/","truncated":false,"entries":[]}"#,
            ),
            (
                "/x/",
                vec![
                    entry("d", true, 0, 0),
                    entry("a.txt", false, 12, 1_795_601_040),
                ],
                concat!(
                    r#"{"path":"/x/","truncated":false,"entries":["#,
                    r#"{"name":"d","type":"dir","size":0,"modified":"1970-01-01T00:00:00Z"},"#,
                    r#"{"name":"a.txt","type":"file","size":12,"modified":"2026-11-25T10:04:00Z"}]}"#
                ),
            ),
            (
                "/q\"\\/",
                vec![entry("t\tb", false, 1, 0)],
                concat!(
                    r#"{"path":"/q\"\\/","truncated":false,"entries":["#,
                    r#"{"name":"t\u0009b","type":"file","size":1,"modified":"1970-01-01T00:00:00Z"}]}"#
                ),
            ),
        ];
        for (url_path, entries, expected) in cases {
            let listing = Listing {
                entries: entries.clone(),
                truncated: false,
            };
            assert_eq!(render_json(url_path, &listing), *expected, "{url_path:?}");
        }
    }

    /// A scratch directory unique to this test process and test name.
    fn scratch_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stoke-listing-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    #[test]
    fn read_entries_table() {
        let dir = scratch_dir("read");
        fs::create_dir(dir.join("zdir")).expect("mkdir");
        fs::create_dir(dir.join(".hiddendir")).expect("mkdir");
        fs::write(dir.join("B.txt"), b"hello").expect("write");
        fs::write(dir.join("a.txt"), b"").expect("write");
        fs::write(dir.join(".env"), b"SECRET=1").expect("write");

        /// (name, is_dir, size) as read back from disk.
        type Row<'a> = (&'a str, bool, u64);
        let cases: &[(bool, &[Row<'static>])] = &[
            (
                false,
                &[("zdir", true, 0), ("a.txt", false, 0), ("B.txt", false, 5)],
            ),
            (
                true,
                &[
                    (".hiddendir", true, 0),
                    ("zdir", true, 0),
                    (".env", false, 8),
                    ("a.txt", false, 0),
                    ("B.txt", false, 5),
                ],
            ),
        ];
        for &(allow_hidden, expected) in cases {
            let handle = File::open(&dir).expect("open dir");
            let listing = read_entries(&handle, allow_hidden).expect("read_entries");
            assert!(!listing.truncated);
            let entries = listing.entries;
            let got: Vec<Row<'_>> = entries
                .iter()
                .map(|e| (e.name.as_str(), e.is_dir, e.size))
                .collect();
            assert_eq!(got, expected, "allow_hidden={allow_hidden}");
            assert!(entries.iter().all(|e| e.modified > UNIX_EPOCH));
        }
        // A descriptor that is not a directory cannot be listed.
        let file = File::open(dir.join("B.txt")).expect("open file");
        assert!(read_entries(&file, false).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    /// The listing used to be read again by path after the directory had
    /// been opened and checked beneath the root: a directory swapped for a
    /// symlink to the outside in between was listed. Entries now come from
    /// the checked descriptor.
    #[test]
    fn a_directory_swapped_for_an_outside_symlink_after_the_check_is_not_listed() {
        let base = scratch_dir("swap");
        let root = base.join("root");
        fs::create_dir_all(root.join("sub")).expect("mkdir");
        fs::write(root.join("sub/inside.txt"), b"inside").expect("write");
        fs::create_dir_all(base.join("outside")).expect("mkdir");
        fs::write(base.join("outside/secret.txt"), b"secret").expect("write");
        let root_handle = File::open(&root).expect("open root");
        let sub = std::path::Path::new("sub");
        let stay_inside = crate::sys::Symlinks::StayInside;
        let dir = crate::sys::open_beneath(&root_handle, &root, sub, stay_inside)
            .expect("open beneath")
            .file;
        // The swap lands between the check (the open) and the listing.
        fs::rename(root.join("sub"), root.join("sub.old")).expect("rename");
        std::os::unix::fs::symlink("../outside", root.join("sub")).expect("symlink");
        let names: Vec<String> = read_entries(&dir, false)
            .expect("read_entries")
            .entries
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["inside.txt"]);
        let _ = fs::remove_dir_all(&base);
    }

    /// Many long names that escape to several times their length: the page
    /// stops at the byte cap and says so, in HTML and in JSON.
    #[test]
    fn a_page_of_many_long_names_is_capped_and_says_truncated() {
        let name = |n: usize| format!("{n:05}{}", "&<\"".repeat(80));
        let listing = Listing {
            entries: (0..MAX_ENTRIES)
                .map(|n| entry(&name(n), false, 1, 0))
                .collect(),
            truncated: false,
        };
        let html = render_html("/many/", &listing);
        assert!(html.len() <= MAX_PAGE_BYTES, "{}", html.len());
        assert!(html.contains("This listing is truncated"));
        assert!(html.ends_with("</html>\n"), "a complete page");
        let shown = html.matches("<tr class=\"file\">").count();
        assert!(shown > 0 && shown < MAX_ENTRIES, "{shown}");
        assert!(html.contains(&format!("only {shown} entries are shown.")));
        let json = render_json("/many/", &listing);
        assert!(json.len() <= MAX_PAGE_BYTES, "{}", json.len());
        assert!(json.contains("\"truncated\":true"));
        assert!(json.ends_with("]}"), "a complete document");
        // A listing cut when reading says so even if its rows fit.
        let few = Listing {
            entries: vec![entry("a", false, 1, 0)],
            truncated: true,
        };
        assert!(render_html("/", &few).contains("only 1 entry is shown."));
        assert!(render_json("/", &few).contains("\"truncated\":true"));
    }

    #[cfg(unix)]
    #[test]
    fn read_entries_skips_non_utf8_and_does_not_follow_symlinks() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;

        let dir = scratch_dir("unix");
        fs::create_dir(dir.join("real")).expect("mkdir");
        fs::write(dir.join(OsStr::from_bytes(b"bad\xff")), b"x").expect("write");
        std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).expect("symlink");

        let handle = File::open(&dir).expect("open dir");
        let entries = read_entries(&handle, false).expect("read_entries").entries;
        let got: Vec<(&str, bool)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.is_dir))
            .collect();
        assert_eq!(got, [("real", true), ("link", false)]);
        let _ = fs::remove_dir_all(&dir);
    }
}
