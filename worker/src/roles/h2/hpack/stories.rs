//! The hpack-test-case stories (`shared/data/hpack-test-case`, see its README): each
//! story is a sequence of header blocks sharing one compression context. For every
//! encoder's folder, every story is decoded case by case with one decoder and each
//! header list compared; `raw-data`'s header sets are encoded by lwsd's encoder under
//! several settings and decoded back.
//!
//! The data lives outside the repository, beside it; [`shared_data_dir`] finds it and
//! the tests fail (never pass silently) when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::tests::{List, decode};
use super::*;

/// `shared/data`: `$LWSD_SHARED_DATA` if set; else `../shared/data` from the repository
/// root (a fresh clone with `shared/` beside it, as in CI), `../../shared/data` (a git
/// worktree one level further down), or `shared/data` beside the repository a local
/// clone came from (`git remote get-url origin`). The same search as
/// `scripts/autobahn.sh` makes for its tools.
pub(super) fn shared_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LWSD_SHARED_DATA") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("hpack-test-case").is_dir(),
            "LWSD_SHARED_DATA={} has no hpack-test-case/",
            dir.display()
        );
        return dir;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the worker crate is inside the repository");
    let mut candidates = vec![root.join("../shared/data"), root.join("../../shared/data")];
    let origin = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["remote", "get-url", "origin"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok());
    if let Some(origin) = origin {
        let origin = PathBuf::from(origin.trim());
        if origin.is_absolute() {
            candidates.push(origin.join("../shared/data"));
        }
    }
    for dir in &candidates {
        if dir.join("hpack-test-case").is_dir() {
            return dir.clone();
        }
    }
    panic!(
        "shared test data not found (looked in {candidates:?}); clone it beside the \
         repository or set LWSD_SHARED_DATA to its data/ directory"
    );
}

/// One case of a story: the table size announced before it, the block, the list.
struct Case {
    table_size: Option<usize>,
    wire: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The stories of one folder, in file-name order.
fn stories(folder: &str) -> Vec<(String, Vec<Case>)> {
    let dir = shared_data_dir().join("hpack-test-case").join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let json: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let cases = json["cases"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: no cases", path.display()))
                .iter()
                .map(|c| Case {
                    table_size: c["header_table_size"].as_u64().map(|n| n as usize),
                    wire: super::tests::hex(c["wire"].as_str().unwrap_or("")),
                    headers: c["headers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .flat_map(|h| h.as_object().unwrap().iter())
                        .map(|(n, v)| {
                            (
                                n.as_bytes().to_vec(),
                                v.as_str().unwrap().as_bytes().to_vec(),
                            )
                        })
                        .collect(),
                })
                .collect();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                cases,
            )
        })
        .collect()
}

fn names_values(l: List) -> Vec<(Vec<u8>, Vec<u8>)> {
    l.into_iter().map(|(n, v, _)| (n, v)).collect()
}

/// Decodes every story of `folder`; returns the number of cases checked.
fn decode_folder(folder: &str) -> usize {
    let stories = stories(folder);
    assert!(
        stories.len() >= 30,
        "{folder}: only {} stories",
        stories.len()
    );
    let mut checked = 0;
    for (name, cases) in stories {
        let mut d = Decoder::new(DEFAULT_TABLE_SIZE);
        for (i, case) in cases.iter().enumerate() {
            if let Some(size) = case.table_size {
                d.set_max_table_size(size);
            }
            let got = decode(&mut d, &case.wire)
                .unwrap_or_else(|e| panic!("{folder}/{name} case {i}: {e}"));
            assert!(
                names_values(got) == case.headers,
                "{folder}/{name} case {i}: header list differs"
            );
            let (size, max) = d.table_size();
            assert!(size <= max && max <= d.max_table_size());
            checked += 1;
        }
    }
    checked
}

#[test]
fn story_decode_nghttp2() {
    assert!(decode_folder("nghttp2") > 500);
}

#[test]
fn story_decode_nghttp2_16384_4096() {
    assert!(decode_folder("nghttp2-16384-4096") > 500);
}

#[test]
fn story_decode_nghttp2_change_table_size() {
    assert!(decode_folder("nghttp2-change-table-size") > 500);
}

#[test]
fn story_decode_go_hpack() {
    assert!(decode_folder("go-hpack") > 500);
}

#[test]
fn story_decode_python_hpack() {
    assert!(decode_folder("python-hpack") > 500);
}

/// How the round trip configures the encoder.
#[derive(Clone, Copy, Debug)]
enum Setup {
    /// `Encoder::new()`.
    Default,
    /// No Huffman coding.
    Plain,
    /// No dynamic table.
    NoTable,
    /// The peer's SETTINGS_HEADER_TABLE_SIZE moves between 256, 0 and 4096 every few
    /// cases (size updates, evictions, an emptied table).
    ChangingSize,
}

/// Encodes every `raw-data` story and decodes it back; returns (raw bytes, encoded
/// bytes) over all cases.
fn round_trip(setup: Setup) -> (usize, usize) {
    let stories = stories("raw-data");
    assert!(
        stories.len() >= 30,
        "raw-data: only {} stories",
        stories.len()
    );
    let (mut raw, mut encoded) = (0, 0);
    let mut block = Vec::new();
    for (name, cases) in stories {
        let mut e = Encoder::new();
        let mut d = Decoder::new(DEFAULT_TABLE_SIZE);
        match setup {
            Setup::Plain => e.set_huffman(false),
            Setup::NoTable => e.set_table_size_cap(0),
            Setup::Default | Setup::ChangingSize => {}
        }
        for (i, case) in cases.iter().enumerate() {
            if let Setup::ChangingSize = setup
                && i % 3 == 0
            {
                let size = [256, 0, 4096, 1000][(i / 3) % 4];
                d.set_max_table_size(size);
                e.set_peer_max_table_size(size);
            }
            block.clear();
            e.encode(
                case.headers
                    .iter()
                    .map(|(n, v)| (n.as_slice(), v.as_slice())),
                &mut block,
            );
            let got = decode(&mut d, &block)
                .unwrap_or_else(|err| panic!("{setup:?} raw-data/{name} case {i}: {err}"));
            assert!(
                names_values(got) == case.headers,
                "{setup:?} raw-data/{name} case {i}: header list differs"
            );
            assert_eq!(e.table_size(), d.table_size(), "{name} case {i}");
            raw += case
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>();
            encoded += block.len();
        }
    }
    (raw, encoded)
}

#[test]
fn story_round_trip_default() {
    let (raw, encoded) = round_trip(Setup::Default);
    // The dynamic table and Huffman coding pay: the stories compress to about a
    // quarter (nghttp2 reaches ~25 %, hpack-test-case's wiki).
    assert!(encoded * 3 < raw, "{encoded} of {raw} bytes");
}

#[test]
fn story_round_trip_plain() {
    let (raw, encoded) = round_trip(Setup::Plain);
    assert!(encoded < raw);
}

#[test]
fn story_round_trip_without_dynamic_table() {
    let (default_raw, with_table) = round_trip(Setup::Default);
    let (raw, without) = round_trip(Setup::NoTable);
    assert_eq!(raw, default_raw);
    assert!(without > with_table, "the table saves bytes");
}

#[test]
fn story_round_trip_changing_table_size() {
    round_trip(Setup::ChangingSize);
}
