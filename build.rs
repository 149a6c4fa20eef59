//! Embeds the community presets (`presets/<name>/...`, data files) in the
//! binary, so `vre init --preset NAME` works wherever vre is installed.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut out = String::from(
        "/// (preset name, [(path inside the preset, contents)])\npub static PRESETS: &[(&str, &[(&str, &str)])] = &[\n",
    );
    let mut presets: Vec<_> = std::fs::read_dir(&root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    presets.sort();
    for p in presets {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let _ = writeln!(out, "    ({name:?}, &[");
        let mut files = Vec::new();
        collect(&p, &p, &mut files);
        files.sort();
        for (rel, abs) in files {
            println!("cargo:rerun-if-changed={abs}");
            let _ = writeln!(out, "        ({rel:?}, include_str!({abs:?})),");
        }
        let _ = writeln!(out, "    ]),");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("presets.rs");
    std::fs::write(dest, out).expect("write presets.rs");
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.filter_map(|e| e.ok()) {
        let path = e.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(base, &path, out);
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.push((rel.to_string_lossy().replace('\\', "/"), path.display().to_string()));
        }
    }
}
