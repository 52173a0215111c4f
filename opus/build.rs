//! Compiles libopus from `libopus/` with the `cc` crate: no cmake, autotools or system library,
//! so a fresh machine with a C compiler builds it (every bundled libopus crate needs cmake).
//! The source lists are read from libopus's own `*_sources.mk`, so an update of the vendored
//! tree brings its file list with it. Float build, the configuration of libopus's defaults;
//! on x86-64 the SSE and SSE2 kernels (part of the baseline ISA, so no run-time detection).
//! `libopus/` is upstream's 1.5.2 tree less what this build never compiles or includes: the
//! fixed-point sources and tables, ARM, MIPS, SSE4.1/AVX2 (they need run-time dispatch), the
//! deep-learning extensions (dnn/), tests, demos and build systems.

use std::path::{Path, PathBuf};

/// The files a `NAME = a.c \ b.c` variable of a libopus `.mk` file lists.
fn sources(root: &Path, mk: &str, variable: &str) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(root.join(mk)).unwrap_or_else(|e| panic!("{mk}: {e}"));
    let mut files = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if !inside {
            let Some((name, rest)) = line.split_once('=') else {
                continue;
            };
            if name.trim() != variable {
                continue;
            }
            files.extend(
                rest.split_whitespace()
                    .filter(|w| *w != "\\")
                    .map(|f| root.join(f)),
            );
            inside = line.ends_with('\\');
            continue;
        }
        files.extend(
            line.split_whitespace()
                .filter(|w| *w != "\\")
                .map(|f| root.join(f)),
        );
        inside = line.ends_with('\\');
    }
    assert!(!files.is_empty(), "{variable} not found in {mk}");
    files
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("libopus");
    println!("cargo:rerun-if-changed=libopus");
    let mut files = Vec::new();
    for (mk, var) in [
        ("celt_sources.mk", "CELT_SOURCES"),
        ("silk_sources.mk", "SILK_SOURCES"),
        ("silk_sources.mk", "SILK_SOURCES_FLOAT"),
        ("opus_sources.mk", "OPUS_SOURCES"),
        ("opus_sources.mk", "OPUS_SOURCES_FLOAT"),
    ] {
        files.extend(sources(&root, mk, var));
    }
    let mut build = cc::Build::new();
    let x86_64 = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    if x86_64 {
        files.extend(sources(&root, "celt_sources.mk", "CELT_SOURCES_SSE"));
        files.extend(sources(&root, "celt_sources.mk", "CELT_SOURCES_SSE2"));
        for define in [
            "OPUS_X86_MAY_HAVE_SSE",
            "OPUS_X86_PRESUME_SSE",
            "OPUS_X86_MAY_HAVE_SSE2",
            "OPUS_X86_PRESUME_SSE2",
        ] {
            build.define(define, None);
        }
    }
    for dir in ["include", "celt", "silk", "silk/float", "src"] {
        build.include(root.join(dir));
    }
    build
        .files(&files)
        .define("OPUS_BUILD", None)
        .define("USE_ALLOCA", None)
        .define("HAVE_LRINT", "1")
        .define("HAVE_LRINTF", "1")
        .define("ENABLE_HARDENING", None)
        .define("PACKAGE_VERSION", "\"1.5.2\"")
        .opt_level(2)
        .warnings(false)
        .compile("opus");
}
