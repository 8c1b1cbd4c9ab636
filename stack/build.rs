//! `SKIP_BROWSER=1` marks the browser test ignored (so the test run says it was skipped,
//! rather than that it passed).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(skip_browser)");
    println!("cargo::rerun-if-env-changed=SKIP_BROWSER");
    if std::env::var("SKIP_BROWSER").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=skip_browser");
    }
}
