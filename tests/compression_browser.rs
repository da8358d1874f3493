//! A real browser loads a page whose HTML, CSS and JavaScript stoke
//! compresses on the fly: headless Chromium renders it (the stylesheet
//! applies, the script runs), and the page's own Resource Timing entries
//! prove each response was content-coded: `encodedBodySize` (the body as
//! sent, before content decoding) is smaller than `decodedBodySize`, which
//! equals the file's size. No devtools protocol and no response headers
//! read from script: these are the browser's own byte counts. The server's
//! compression counter confirms it from the other side. Without Chromium
//! the test is skipped, except under CI (env `CI` set), where it must run.
mod common;
use common::browser::{chromium_or_skip, run_chromium};
use common::*;

/// Filler that makes a file worth compressing (well above `COMPRESS_MIN_SIZE`).
fn filler(comment_open: &str, comment_close: &str) -> String {
    let line = "stoke compresses text on the fly; the browser decodes it.";
    let mut s = String::new();
    for i in 0..60 {
        s.push_str(&format!("{comment_open} {i} {line} {comment_close}\n"));
    }
    s
}

#[test]
fn chromium_renders_a_compressed_page() {
    let Some(bin) = chromium_or_skip() else {
        return;
    };
    let root = TempDir::new("cmp-browser");
    let css = format!("{}#styled {{ color: rgb(1, 2, 3); }}\n", filler("/*", "*/"));
    let js = format!(
        "{}document.getElementById('js').textContent = 'app.js ran';\n",
        filler("/*", "*/")
    );
    // The inline script runs after the stylesheet and app.js have loaded
    // (both block it), so their timing entries exist; the document's own
    // entry is complete at the load event.
    let html = format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>compressed</title>
<link rel="stylesheet" href="style.css"></head>
<body>
<p id="styled">styled text</p>
<p id="js">app.js did not run</p>
<p id="report"></p>
<p id="nav"></p>
<!--
{}-->
<script src="app.js"></script>
<script>
function sizes(e) {{ return e ? e.encodedBodySize + '/' + e.decodedBodySize : 'missing'; }}
var found = performance.getEntriesByType('resource');
var out = ['style.css', 'app.js'].map(function (name) {{
  var e = found.find(function (r) {{ return r.name.endsWith('/' + name); }});
  return name + '=' + sizes(e);
}});
out.push('color=' + getComputedStyle(document.getElementById('styled')).color);
document.getElementById('report').textContent = out.join(' ');
window.addEventListener('load', function () {{
  var n = performance.getEntriesByType('navigation')[0];
  document.getElementById('nav').textContent = 'index.html=' + sizes(n);
}});
</script>
</body></html>
"#,
        filler("", "")
    );
    root.write("index.html", &html);
    root.write("style.css", &css);
    root.write("app.js", &js);
    // Chromium fetches the three files at once; at most half the workers
    // compress at a time (past that a request gets the identity body), so
    // give the pool enough workers that all three are compressed.
    let server = TestServer::with(root.path(), |c| c.threads = 8);
    let work = TempDir::new("cmp-browser-profile");
    let url = format!("http://{}/", server.addr);
    let out = run_chromium(&bin, work.path(), &["--dump-dom".into(), url]);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();

    // Rendered: the decoded script ran and the decoded stylesheet applied.
    assert!(dom.contains("<p id=\"js\">app.js ran</p>"), "{dom}");
    assert!(dom.contains("color=rgb(1, 2, 3)"), "{dom}");

    // Compressed: fewer bytes sent than decoded, and decoded = the file.
    for (name, file) in [("style.css", &css), ("app.js", &js), ("index.html", &html)] {
        let key = format!("{name}=");
        let at = dom
            .find(&key)
            .unwrap_or_else(|| panic!("{name} sizes in DOM: {dom}"));
        let sizes = dom[at + key.len()..]
            .split(|c: char| !c.is_ascii_digit() && c != '/')
            .next()
            .unwrap();
        let (encoded, decoded) = sizes
            .split_once('/')
            .unwrap_or_else(|| panic!("{name}: {sizes:?} in {dom}"));
        let (encoded, decoded): (usize, usize) =
            (encoded.parse().unwrap(), decoded.parse().unwrap());
        assert_eq!(decoded, file.len(), "{name}: decoded to the file's size");
        assert!(
            encoded > 0 && encoded * 2 < decoded,
            "{name}: sent compressed ({encoded} of {decoded} bytes)"
        );
    }
    // One coding (Chromium's favourite) for each of the three files.
    assert_eq!(server.compressions(), 3);
}
