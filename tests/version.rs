//! `stoke --version` names the version and what the build can do, on
//! stdout, with exit status 0.
use std::process::Command;

#[test]
fn version_names_the_version_and_the_enabled_features() {
    let out = Command::new(env!("CARGO_BIN_EXE_stoke"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("stoke {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let features = text
        .lines()
        .find_map(|l| l.strip_prefix("features: "))
        .unwrap_or_else(|| panic!("no features line: {text}"));
    for f in [
        "https (rustls",
        "proxy-protocol",
        "socket-activation",
        "reuse-port",
    ] {
        assert!(features.contains(f), "{f} in {features}");
    }
    // Test-only code is announced loudly when it is compiled in.
    assert_eq!(
        features.contains("test-hooks"),
        cfg!(feature = "test-hooks"),
        "{features}"
    );
}
