//! The crate map in `src/lib.rs` stays true: its table of which module
//! uses which is what `use crate::…` in the sources says, and the
//! dependencies have no cycle (regression: `http::response` and
//! `access_log` used to import each other, and so did `config` and
//! `models`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Top-level module → the other top-level modules its files name as
/// `crate::module`.
fn actual() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
            if top == "lib" || top == "main" {
                continue;
            }
            let text = fs::read_to_string(&path).unwrap();
            let uses = graph.entry(top.to_owned()).or_default();
            for (i, _) in text.match_indices("crate::") {
                let name: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

/// The table in lib.rs's doc: "| [`a`], [`b`] | `x`, `y` |".
fn documented() -> Graph {
    let lib = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).unwrap();
    let mut graph = Graph::new();
    let names = |cell: &str| -> BTreeSet<String> {
        cell.split(',')
            .map(|n| n.trim().trim_matches(|c| "[]`".contains(c)).to_owned())
            .filter(|n| !n.is_empty() && n != "nothing")
            .collect()
    };
    let table = lib.split("//! | module | uses |").nth(1).unwrap();
    for line in table.lines().skip(2) {
        let Some(row) = line.strip_prefix("//! |") else {
            break;
        };
        let cells: Vec<&str> = row.split('|').collect();
        for module in names(cells[0]) {
            graph.insert(module, names(cells[1]));
        }
    }
    graph
}

#[test]
fn lib_rs_crate_map_matches_the_sources() {
    assert_eq!(documented(), actual());
}

#[test]
fn module_dependencies_have_no_cycle() {
    let graph = actual();
    // Kahn's algorithm: peel modules that use nothing left.
    let mut left = graph.clone();
    while !left.is_empty() {
        let leaves: Vec<String> = left
            .iter()
            .filter(|(_, uses)| uses.iter().all(|u| !left.contains_key(u)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(!leaves.is_empty(), "a cycle among {:?}", left);
        for leaf in leaves {
            left.remove(&leaf);
        }
    }
    assert_eq!(graph["http"], BTreeSet::from(["limits".to_owned()]));
}
