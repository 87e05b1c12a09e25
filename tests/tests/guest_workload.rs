//! The in-guest CPU workload of the `boot` benchmark (issue 5), at tiny
//! sizes so CI stays fast: the stock Debian kernel (vmlinux through its PVH
//! entry, `-machine pc`, interpreter) boots the test guest, which runs
//! `dd if=/dev/zero bs=1M count=4 | sha256sum` and
//! `seq 1 30000 | gzip -9 | sha256sum` from the kernel command line; the
//! digests on its console must equal those of the same script run on the
//! host under the guest's own busybox (busybox's gzip output differs from
//! GNU gzip's). The script, the marker lines and the host run are the
//! benchmark's own code (benches/src/workload.rs), so the benchmark's path
//! cannot rot. Duration: 189 s in the debug profile on this 2-core machine
//! at load average 24 (2026-11-23); the boot is the vmlinux's ~1.6 G
//! instructions plus well under 1 G for the jobs, so a quiet machine should
//! take a fraction of that.

use kagami_tests::harness::kagami;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

#[allow(dead_code)]
#[path = "../../benches/src/workload.rs"]
mod workload;

/// The guest folder, built by scripts/build-test-guest.sh when a file is missing.
fn guest() -> PathBuf {
    kagami_tests::harness::test_guest(&["vmlinux", "initramfs.cpio.gz", "busybox"])
}

#[test]
fn workload_digests_match_the_host() {
    let g = guest();
    let jobs = workload::jobs(4, 30_000);
    let script = workload::script(&jobs);

    // The reference: the same script on the host under the guest's busybox.
    let dir = workload::scratch_dir("guest-workload-test");
    let mut host = workload::host_command(&g.join("busybox"), &dir, &script).expect("set up the host busybox run");
    let host = workload::run_timed("host busybox", &mut host, Duration::from_secs(120), workload::all_results(&jobs));
    let _ = std::fs::remove_dir_all(&dir);
    let host = host.unwrap();

    let mut cmd = Command::new(kagami());
    cmd.args([
        "-machine",
        "pc",
        "-m",
        "256",
        "-accel",
        "tcg",
        "--no-jit",
        "-nographic",
        "-no-reboot",
    ])
    .arg("-kernel")
    .arg(g.join("vmlinux"))
    .arg("-initrd")
    .arg(g.join("initramfs.cpio.gz"))
    .args([
        "-append",
        &format!("console=ttyS0 kagami.poweroff=1 {}", workload::append_word(&script)),
    ]);
    // Generous: a loaded 2-core machine; the timeout only keeps a hang from
    // holding CI forever, nothing depends on the time.
    let guest_run = workload::run_timed("kagami", &mut cmd, Duration::from_secs(900), workload::all_results(&jobs)).unwrap();

    assert!(guest_run.marker().is_some(), "no marker line:\n{}", guest_run.output);
    for j in &jobs {
        let want = host.job_result(j.name).unwrap();
        let got = guest_run.job_result(j.name).unwrap();
        assert_eq!(want.digest.len(), 64, "host {}: not a SHA-256 digest: {}", j.title, want.digest);
        if j.name == "zero" {
            // SHA-256 of 4 MiB of zero bytes, a fixed fact that guards the host run.
            assert_eq!(want.digest, "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8");
        }
        assert_eq!(got.digest, want.digest, "{}: the guest's digest differs from the host's", j.title);
        eprintln!(
            "{}: {} (guest {:.2} s by its uptime, host {:.3} s)",
            j.title,
            got.digest,
            got.guest_secs.unwrap_or(f64::NAN),
            want.host_secs
        );
    }
}
