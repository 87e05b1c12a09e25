//! What the tests that run the `kagami` binary share: finding (or building)
//! the binary, SeaBIOS, the Linux test guest and its disk modules, the boot
//! images, scratch folders, checksums, and the rule for a missing piece: the
//! test says SKIPPED, or fails when `KAGAMI_REQUIRE_GUEST=1` (scripts/test.sh
//! sets it, so CI never skips silently).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Debian's SeaBIOS (package `seabios`).
pub const SEABIOS: &str = "/usr/share/seabios/bios-256k.bin";

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether a missing guest, image or tool is a failure (`KAGAMI_REQUIRE_GUEST=1`).
pub fn required() -> bool {
    std::env::var("KAGAMI_REQUIRE_GUEST").is_ok_and(|v| v == "1")
}

/// Report a missing piece: a failure under `KAGAMI_REQUIRE_GUEST=1`,
/// otherwise "SKIPPED: msg" on stderr (the caller then returns).
pub fn skip(msg: &str) {
    assert!(!required(), "{msg}");
    eprintln!("SKIPPED: {msg}");
}

/// The cargo target folder: $CARGO_TARGET_DIR or the workspace's target/.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or(workspace().join("target"), PathBuf::from)
}

/// target/<profile>/kagami of the running test's profile, built with cargo
/// if the test runner did not build it (nextest builds only test targets).
pub fn kagami() -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("kagami");
    let _once = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "kagami-machine", "--bin", "kagami", "--target-dir"])
            .arg(profile_dir.parent().unwrap())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the kagami binary failed");
    }
    bin
}

/// SeaBIOS's path, or None (after [`skip`]) when the package is missing.
pub fn seabios() -> Option<&'static Path> {
    if Path::new(SEABIOS).is_file() {
        Some(Path::new(SEABIOS))
    } else {
        skip(&format!("{SEABIOS} is missing (install the Debian package seabios)"));
        None
    }
}

/// Whether every tool is on PATH and every file exists; otherwise [`skip`]
/// naming what is missing, with `packages` as the hint.
pub fn have(tools: &[&str], files: &[&str], packages: &str) -> bool {
    let missing: Vec<String> = tools
        .iter()
        .filter(|t| {
            !Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|t| t.to_string())
        .chain(files.iter().filter(|f| !Path::new(f).exists()).map(|f| f.to_string()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip(&format!("missing {} (Debian packages: {packages})", missing.join(", ")));
    false
}

/// A fresh scratch folder under the system temp folder, unique to this
/// process: kagami-<prefix>-<pid>-<name>.
pub fn tmpdir(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kagami-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The Linux test guest's folder: $KAGAMI_GUEST_DIR or target/guest.
pub fn guest_dir() -> PathBuf {
    std::env::var_os("KAGAMI_GUEST_DIR").map_or(target_dir().join("guest"), PathBuf::from)
}

/// Run one of the idempotent build scripts (scripts/NAME) with the test
/// process's environment; its stderr when it fails.
fn build_script(name: &str) -> Result<(), String> {
    // The scripts lock their own outputs, but one test binary runs its tests
    // as threads (cargo test): one at a time is enough.
    static RUN: Mutex<()> = Mutex::new(());
    let _one = RUN.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("bash")
        .arg(workspace().join("scripts").join(name))
        .current_dir(workspace())
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "scripts/{name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// The test guest's folder with `files` present: runs
/// scripts/build-test-guest.sh when one is missing, and fails the test if
/// the guest cannot be built.
pub fn test_guest(files: &[&str]) -> PathBuf {
    let dir = guest_dir();
    if !files.iter().all(|f| dir.join(f).is_file()) {
        if let Err(e) = build_script("build-test-guest.sh") {
            panic!("the Linux guest cannot be built: {e}");
        }
    }
    dir
}

/// The test guest with its disk modules (target/guest/disk-modules, from
/// scripts/build-disk-guest.sh, which this runs when they are missing), or
/// None after [`skip`].
pub fn guest_with_disk_modules() -> Option<PathBuf> {
    let g = guest_dir();
    let complete = ["bzImage", "vmlinux", "busybox", "disk-modules/modules.order"]
        .iter()
        .all(|f| g.join(f).is_file());
    if !complete {
        if let Err(e) = build_script("build-test-guest.sh").and_then(|_| build_script("build-disk-guest.sh")) {
            skip(&format!("the test guest or its disk modules cannot be built: {e}"));
            return None;
        }
    }
    Some(g)
}

/// (disk.raw, cd.iso): the test guest on a SYSLINUX disk image and an
/// ISOLINUX CD image, from scripts/build-boot-images.sh (run every time; it
/// is idempotent and rebuilds only when an input changed), or None after
/// [`skip`].
pub fn boot_images() -> Option<(PathBuf, PathBuf)> {
    seabios()?;
    if let Err(e) = build_script("build-boot-images.sh") {
        skip(&e);
        return None;
    }
    let dir = std::env::var_os("KAGAMI_BOOT_IMAGES_DIR").map_or(target_dir().join("boot-images"), PathBuf::from);
    let (disk, cd) = (dir.join("disk.raw"), dir.join("cd.iso"));
    assert!(
        disk.is_file() && cd.is_file(),
        "scripts/build-boot-images.sh succeeded but {} or {} is missing",
        disk.display(),
        cd.display()
    );
    Some((disk, cd))
}

/// The first word of a command's stdout (for `sha256sum`, `md5sum`).
fn first_word(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// SHA-256 of a file, hex.
pub fn sha256_file(p: &Path) -> String {
    first_word(Command::new("sha256sum").arg(p))
}

/// MD5 of bytes, hex (what busybox md5sum prints in a guest).
pub fn md5(data: &[u8]) -> String {
    let p = tmpdir(
        "md5",
        &format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), ""),
    );
    let f = p.join("in");
    std::fs::write(&f, data).unwrap();
    let sum = first_word(Command::new("md5sum").arg(&f));
    let _ = std::fs::remove_dir_all(&p);
    sum
}

/// CPU seconds (user + system) used so far by the children this process
/// has waited for: /proc/self/stat's cutime and cstime, in USER_HZ (100 on
/// x86 Linux) ticks. On a busy machine a boot's wall time says little; its
/// CPU time says what it costs.
pub fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of the line; `rest` starts at field 3.
    let ticks: f64 = [13, 14].iter().filter_map(|&i| f.get(i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}
