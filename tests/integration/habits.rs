//! Issue 13, the habits of domuify's users: every `--help` ends with what the
//! command reads and writes and examples that run as written; man pages render
//! with `man -l` without a warning; the bash completion loads and completes;
//! `inspect IMAGE...` gives JSON Lines in order, with damaged or unrecognised
//! images as their own problem lines; `inspect --hash` agrees with sha256sum,
//! sha1sum and md5sum over the same bytes (`dd`), and changes nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::fixtures;
use crate::harness::{assert_fsck_clean, run};

fn domuify() -> PathBuf {
    assert_cmd::cargo::cargo_bin("domuify")
}

fn out(cmd: &mut Command) -> (i32, String, String) {
    let o = run(cmd);
    let code = o.status.code().expect("exited, not killed");
    assert_ne!(
        code,
        101,
        "{cmd:?} panicked: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        code,
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The commands `domuify --help` lists.
fn subcommands() -> Vec<String> {
    let (code, help, _) = out(Command::new(domuify()).arg("--help"));
    assert_eq!(code, 0);
    let list: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    for c in [
        "inspect",
        "ls",
        "cat",
        "write",
        "copy-in",
        "undo",
        "man",
        "completions",
    ] {
        assert!(list.iter().any(|l| l == c), "{c} missing from {list:?}");
    }
    list
}

/// The `$ ` lines of the Examples of a help text.
fn examples(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Examples:")
        .filter_map(|l| l.trim().strip_prefix("$ ").map(String::from))
        .collect()
}

/// Every command's help says what it reads and writes, and ends with two or
/// three examples; each runs as written, in order, in a directory holding the
/// sample disk (and a HOME of its own), and succeeds. The ext filesystems of the
/// sample disk are `e2fsck -fn` clean afterwards.
#[test]
fn help_examples_run() {
    // dom0's root (3) and the guest's (5), as build/fixtures/README lists them.
    let ext_parts = [26214400u64, 52428800];
    let mut commands = subcommands();
    commands.insert(0, String::new()); // `domuify --help` itself
    for sub in commands {
        let mut cmd = Command::new(domuify());
        if !sub.is_empty() {
            cmd.arg(&sub);
        }
        let (code, help, _) = out(cmd.arg("--help"));
        assert_eq!(code, 0, "{sub} --help");
        assert!(help.contains("\nReads: "), "{sub}: no Reads: line\n{help}");
        if !sub.is_empty() {
            assert!(
                help.contains("\nWrites: "),
                "{sub}: no Writes: line\n{help}"
            );
        }
        let ex = examples(&help);
        assert!(
            (2..=3).contains(&ex.len()),
            "{sub}: {} examples\n{help}",
            ex.len()
        );
        assert!(
            help.trim_end().ends_with(ex.last().unwrap().as_str()),
            "{sub}: examples are not last"
        );
        // -h shows the same end.
        let mut short = Command::new(domuify());
        if !sub.is_empty() {
            short.arg(&sub);
        }
        assert_eq!(examples(&out(short.arg("-h")).1), ex, "{sub} -h");

        let tmp = tempfile::tempdir().unwrap();
        let seed = fixtures::copy("seed.img", tmp.path());
        assert_eq!(seed.file_name().unwrap(), "seed.img");
        std::fs::create_dir(tmp.path().join("home")).unwrap();
        let bin_dir = domuify().parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        for line in &ex {
            let (code, stdout, stderr) = out(Command::new("bash")
                .args(["-e", "-o", "pipefail", "-c", line])
                .current_dir(tmp.path())
                .env("HOME", tmp.path().join("home"))
                .env("PATH", &path)
                .stdin(Stdio::null()));
            assert_eq!(code, 0, "{sub}: `{line}` failed:\n{stdout}\n{stderr}");
        }
        for off in ext_parts {
            assert_fsck_clean(&seed, off);
        }
    }
}

/// `domuify man` writes one page for domuify and one per command, into a
/// directory it creates; each renders with `man -l` at 80 columns with nothing
/// on stderr and no warning (also with groff's warnings on), and holds its
/// examples.
#[test]
fn man_pages_render_without_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("share/man/man1");
    let (code, listed, err) = out(Command::new(domuify()).args(["man", "--out"]).arg(&dir));
    assert_eq!(code, 0, "{err}");
    let mut want: Vec<String> = subcommands()
        .iter()
        .map(|c| format!("domuify-{c}.1"))
        .collect();
    want.push("domuify.1".into());
    want.sort();
    let mut got: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(listed.lines().count(), want.len(), "{listed}");
    for page in &want {
        let path = dir.join(page);
        assert!(listed.contains(path.to_str().unwrap()), "{page} not listed");
        let (code, text, _) = out(Command::new("sh")
            .arg("-c")
            .arg("MANWIDTH=80 man -l \"$1\" 2>&1")
            .arg("sh")
            .arg(&path));
        assert_eq!(code, 0, "{page}: {text}");
        assert!(!text.to_lowercase().contains("warning"), "{page}:\n{text}");
        assert!(!text.contains("can't break"), "{page}:\n{text}");
        let (code, _, stderr) = out(Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80"));
        assert_eq!(code, 0);
        assert!(stderr.is_empty(), "{page}: groff warned:\n{stderr}");
        let name = page.trim_end_matches(".1");
        assert!(text.contains("NAME"), "{page}:\n{text}");
        assert!(text.contains(name), "{page}:\n{text}");
        assert!(
            text.contains("EXAMPLES") && text.contains("READS AND WRITES"),
            "{page}:\n{text}"
        );
        // The examples are those of --help, line for line.
        let sub = name.strip_prefix("domuify-");
        let mut help = Command::new(domuify());
        help.args(sub).arg("--help");
        for ex in examples(&out(&mut help).1) {
            assert!(
                text.contains(&format!("$ {ex}")),
                "{page}: `{ex}` missing:\n{text}"
            );
        }
    }
}

/// The bash completion parses (`bash -n`), registers for `domuify`, and
/// completes commands, flags and flag values.
#[test]
fn bash_completion_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("domuify.bash");
    let (code, text, _) = out(Command::new(domuify()).args(["completions", "bash"]));
    assert_eq!(code, 0);
    std::fs::write(&script, text).unwrap();
    let (code, _, err) = out(Command::new("bash").arg("-n").arg(&script));
    assert_eq!(code, 0, "bash -n: {err}");
    // COMPREPLY for a command line ending in the word being completed, as
    // readline would ask; `complete -p` gives the function bash registered.
    let complete = |line: &str| -> Vec<String> {
        let prog = r#"
            source "$1"
            words=($2)
            [ "${2: -1}" = " " ] && words+=("")
            func=$(complete -p domuify | sed -n 's/.*-F \([^ ]*\).*/\1/p')
            COMP_WORDS=("${words[@]}"); COMP_CWORD=$(( ${#words[@]} - 1 ))
            COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9
            "$func" domuify "${words[-1]}" "${words[-2]}"
            printf '%s\n' "${COMPREPLY[@]}"
        "#;
        let (code, o, e) = out(Command::new("bash")
            .args(["-c", prog, "bash"])
            .arg(&script)
            .arg(line));
        assert_eq!(code, 0, "{line}: {e}");
        o.lines().map(|l| l.trim().to_string()).collect()
    };
    let subs = complete("domuify ");
    for c in subcommands() {
        assert!(subs.contains(&c), "`domuify ` does not offer {c}: {subs:?}");
    }
    assert_eq!(complete("domuify ins"), ["inspect"]);
    assert!(complete("domuify co").contains(&"copy-in".to_string()));
    let flags = complete("domuify inspect --");
    for f in ["--json", "--hash", "--jobs", "--stats", "--help"] {
        assert!(flags.contains(&f.to_string()), "{f} not offered: {flags:?}");
    }
    let mut algos = complete("domuify inspect --hash ");
    algos.sort();
    assert_eq!(algos, ["md5", "sha1", "sha256"]);
    let shells = complete("domuify completions ");
    for s in ["bash", "zsh", "fish"] {
        assert!(shells.contains(&s.to_string()), "{shells:?}");
    }
    assert!(complete("domuify write --").contains(&"--undo".to_string()));
    // zsh and fish get scripts of their own.
    for (shell, marker) in [("zsh", "#compdef domuify"), ("fish", "complete -c domuify")] {
        let (code, text, _) = out(Command::new(domuify()).args(["completions", shell]));
        assert_eq!(code, 0);
        assert!(text.contains(marker), "{shell}");
    }
}

/// Bytes that are neither a partition table nor a filesystem (no 0x55AA at 510).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    let mut v: Vec<u8> = (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect();
    v[510] = 0;
    v
}

/// Images blkid finds nothing on, and sfdisk no table on, are a problem: exit 1,
/// as `blkid -p` exits non-zero; images where blkid finds something are not.
#[test]
fn nothing_recognised_is_a_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let zeros = tmp.path().join("zeros.img");
    std::fs::File::create(&zeros)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let random = tmp.path().join("random.img");
    std::fs::write(&random, noise(4 << 20, 13)).unwrap();
    let small = tmp.path().join("small.img");
    std::fs::write(&small, noise(3000, 7)).unwrap();
    for img in [&zeros, &random, &small] {
        let (blkid, _, _) = out(Command::new("blkid").arg("-p").arg(img));
        assert_ne!(blkid, 0, "blkid found something on {}", img.display());
        let (sfdisk, _, _) = out(Command::new("sfdisk").arg("--json").arg(img));
        assert_ne!(sfdisk, 0, "sfdisk found a table on {}", img.display());
        let (code, json, _) = out(Command::new(domuify()).args(["inspect", "--json"]).arg(img));
        assert_eq!(code, 1, "{}", img.display());
        let v: Value = serde_json::from_str(&json).unwrap();
        let problems = crate::harness::findings(&v, "damage");
        assert!(
            problems.iter().any(|p| p["message"]
                .as_str()
                .unwrap()
                .contains("nothing recognised")),
            "{v:#}"
        );
    }
    for name in ["seed.img", "gpt.img", "bare-ext4.img"] {
        let img = fixtures::image(name);
        let (blkid, _, _) = out(Command::new("blkid").arg("-p").arg(&img));
        let (sfdisk, _, _) = out(Command::new("sfdisk").arg("--json").arg(&img));
        assert!(blkid == 0 || sfdisk == 0, "{name}");
        let (code, json, _) = out(Command::new(domuify())
            .args(["inspect", "--json"])
            .arg(&img));
        assert_eq!(code, 0, "{name}: {json}");
    }
}

fn inspect_many(args: &[&str], images: &[PathBuf]) -> (i32, String, String) {
    let mut cmd = Command::new(domuify());
    cmd.arg("inspect").args(args).args(images);
    out(&mut cmd)
}

/// `inspect --json IMAGE...`: one line per image, in the order given, each the
/// document `inspect --json IMAGE` gives alone (or, for an image that cannot be
/// opened, its `image` and `problems`); the exit code is the worst; human output
/// is one report after another under a header.
#[test]
fn batch_json_lines_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let zeros = tmp.path().join("zeros.img");
    std::fs::File::create(&zeros)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let good: Vec<PathBuf> = ["seed.img", "gpt.img", "bare-ext4.img", "seed-2logicals.img"]
        .iter()
        .map(|n| fixtures::image(n))
        .collect();
    let mut images = good.clone();
    images.insert(1, fixtures::image("truncated.img"));
    images.insert(3, tmp.path().join("missing.img"));
    images.insert(4, fixtures::image("empty.img"));
    images.push(zeros);
    images.push(fixtures::image("corrupt-ext.img"));
    images.push(fixtures::image("seed.img")); // the same image twice: two lines

    for jobs in ["1", "3", "16"] {
        let (code, stdout, stderr) = inspect_many(&["--json", "--jobs", jobs], &images);
        assert_eq!(code, 1, "{stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), images.len(), "{stdout}");
        for (line, img) in lines.iter().zip(&images) {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["image"], img.to_str().unwrap());
            if img.exists() {
                let (alone_code, alone, _) = inspect_many(&["--json"], std::slice::from_ref(img));
                let alone: Value = serde_json::from_str(&alone).unwrap();
                assert_eq!(v, alone, "{}", img.display());
                let damaged = !crate::harness::findings(&v, "damage").is_empty();
                assert_eq!(alone_code, i32::from(damaged), "{}", img.display());
            } else {
                let p = crate::harness::findings(&v, "damage")[0];
                assert_eq!(p["where"], "image", "{v}");
                assert!(
                    p["message"].as_str().unwrap().contains("missing.img"),
                    "{v}"
                );
                assert!(stderr.contains("missing.img"));
            }
        }
    }
    // Only good images: exit 0.
    let (code, stdout, _) = inspect_many(&["--json"], &good);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), good.len());
    // Human: a header per image, in order, each followed by its own report.
    let (code, stdout, _) = inspect_many(&["--jobs", "2"], &images);
    assert_eq!(code, 1);
    let headers: Vec<&str> = stdout.lines().filter(|l| l.starts_with("==> ")).collect();
    let want: Vec<String> = images
        .iter()
        .map(|i| format!("==> {} <==", i.display()))
        .collect();
    assert_eq!(headers, want);
    let (_, alone, _) = inspect_many(&[], &good[..1]);
    assert!(
        stdout.contains(&alone),
        "the seed's report differs in a batch"
    );
    // Usage errors.
    assert_eq!(inspect_many(&["--jobs", "0"], &good).0, 2);
    assert_eq!(out(Command::new(domuify()).arg("inspect")).0, 2);
}

/// `coreutils_sum` of the `len` bytes at `start` of `img`, read by `dd`.
fn dd_sum(tool: &str, img: &Path, start: u64, len: u64) -> String {
    let script = format!(
        "dd if=\"$1\" bs=1M iflag=skip_bytes,count_bytes skip={start} count={len} status=none | {tool}"
    );
    let (code, o, e) = out(Command::new("sh").args(["-c", &script, "sh"]).arg(img));
    assert_eq!(code, 0, "{e}");
    o.split_whitespace().next().unwrap().to_string()
}

fn file_sum(tool: &str, img: &Path) -> String {
    let (code, o, e) = out(Command::new(tool).arg(img));
    assert_eq!(code, 0, "{e}");
    o.split_whitespace().next().unwrap().to_string()
}

/// `inspect --hash` over partitioned, bare, sparse, truncated and damaged
/// images: every hash is what sha256sum, sha1sum and md5sum print for the same
/// bytes (`dd` for each partition, including one cut short by the end of the
/// file), on a 0444 image whose sha256 and mtime stay the same; nothing on
/// stderr when it is a pipe; the human report shows the same hashes.
#[test]
fn hashes_match_coreutils() {
    let tools = [
        ("sha256", "sha256sum"),
        ("sha1", "sha1sum"),
        ("md5", "md5sum"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "seed.img",
        "gpt.img",
        "bare-ext4.img",
        "truncated.img",
        "past-end.img",
    ] {
        let img = fixtures::copy(name, tmp.path());
        std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o444)).unwrap();
        let before = (
            file_sum("sha256sum", &img),
            std::fs::metadata(&img).unwrap().modified().unwrap(),
        );
        let (plain_code, _, _) = inspect_many(&["--json"], std::slice::from_ref(&img));
        let (code, json, stderr) = out(Command::new(domuify())
            .args([
                "inspect", "--json", "--hash", "md5", "--hash", "sha256", "--hash", "sha1",
            ])
            .arg(&img));
        assert_eq!(code, plain_code, "{name}: {stderr}");
        assert!(
            stderr.is_empty() || plain_code == 1,
            "{name}: stderr on a pipe: {stderr}"
        );
        let v: Value = serde_json::from_str(&json).unwrap();
        for (key, tool) in tools {
            assert_eq!(v["hashes"][key], file_sum(tool, &img), "{name} {key}");
            for p in v["partitions"].as_array().unwrap() {
                let (start, len) = (
                    p["start_bytes"].as_u64().unwrap(),
                    p["size_bytes"].as_u64().unwrap(),
                );
                assert_eq!(
                    p["hashes"][key],
                    dd_sum(tool, &img, start, len),
                    "{name} partition {} {key}",
                    p["number"]
                );
            }
        }
        assert_eq!(v["hashes"].as_object().unwrap().len(), 3);
        let after = (
            file_sum("sha256sum", &img),
            std::fs::metadata(&img).unwrap().modified().unwrap(),
        );
        assert_eq!(before, after, "{name} changed");
        // Human output carries the same hashes, and none when not asked.
        let (_, human, _) = out(Command::new(domuify())
            .args(["inspect", "--hash", "sha256"])
            .arg(&img));
        assert!(
            human.contains(v["hashes"]["sha256"].as_str().unwrap()),
            "{name}:\n{human}"
        );
        assert!(!human.contains(v["hashes"]["md5"].as_str().unwrap()));
        let (_, plain, _) = inspect_many(&["--json"], std::slice::from_ref(&img));
        assert!(
            !plain.contains("\"hashes\""),
            "{name}: hashes when not asked"
        );
    }
}

/// A progress bar on a terminal only: under `script` (a pty) the hash pass of a
/// 256 MiB sparse image draws it; on a pipe nothing is printed.
#[test]
fn hash_progress_only_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy("seed.img", tmp.path());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let cmd = format!(
        "{} inspect --hash sha256 --hash md5 {} >/dev/null",
        domuify().display(),
        img.display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (bsdutils)");
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{tty}");
    assert!(
        tty.contains("hashing") && tty.contains("MiB"),
        "no progress bar on a terminal: {tty:?}"
    );
    let (code, _, piped) = out(Command::new(domuify())
        .args(["inspect", "--hash", "sha256"])
        .arg(&img));
    assert_eq!(code, 0);
    assert!(piped.is_empty(), "stderr on a pipe: {piped}");
}
