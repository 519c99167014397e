//! Property test: random sequences of create / replace / mkdir / symlink / link /
//! unlink / remove-tree / flush on a small image, applied through [`Ext`] and to
//! an in-memory model; afterwards `e2fsck -fn` must be clean and the tree read
//! back through ext4-view must equal the model.

use std::collections::BTreeMap;

use domuify::disk::Access;
use domuify::ext::{Ext, ROOT_INO};
use domuify::ErrorKind;
use proptest::prelude::*;

use super::engine::{node, Img};

#[derive(Clone, Debug)]
enum Op {
    Create {
        dir: usize,
        name: usize,
        len: usize,
        seed: u8,
    },
    Replace {
        file: usize,
        len: usize,
        seed: u8,
    },
    Mkdir {
        dir: usize,
        name: usize,
    },
    Symlink {
        dir: usize,
        name: usize,
        tlen: usize,
    },
    Link {
        file: usize,
        dir: usize,
        name: usize,
    },
    Unlink {
        file: usize,
    },
    RemoveTree {
        dir: usize,
    },
    Flush,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    File(Vec<u8>),
    Dir,
    Link(Vec<u8>),
}

const NAMES: usize = 48;

/// Name number `i`: short and long ones, so directories grow past one block.
fn nm(i: usize) -> String {
    if i % 3 == 0 {
        format!(
            "long-name-with-many-characters-{i:03}-{}",
            "x".repeat(i % 40)
        )
    } else {
        format!("n{i}")
    }
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![Just(0usize), 1usize..3000, 3000usize..120_000];
    prop_oneof![
        4 => (any::<usize>(), 0..NAMES, len.clone(), any::<u8>())
            .prop_map(|(dir, name, len, seed)| Op::Create { dir, name, len, seed }),
        2 => (any::<usize>(), len, any::<u8>()).prop_map(|(file, len, seed)| Op::Replace { file, len, seed }),
        2 => (any::<usize>(), 0..NAMES).prop_map(|(dir, name)| Op::Mkdir { dir, name }),
        1 => (any::<usize>(), 0..NAMES, 1usize..200).prop_map(|(dir, name, tlen)| Op::Symlink { dir, name, tlen }),
        1 => (any::<usize>(), any::<usize>(), 0..NAMES).prop_map(|(file, dir, name)| Op::Link { file, dir, name }),
        2 => any::<usize>().prop_map(|file| Op::Unlink { file }),
        1 => any::<usize>().prop_map(|dir| Op::RemoveTree { dir }),
        1 => Just(Op::Flush),
    ]
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn parent_of(p: &str) -> (&str, &str) {
    let i = p.rfind('/').unwrap();
    (if i == 0 { "/" } else { &p[..i] }, &p[i + 1..])
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

struct Model {
    paths: BTreeMap<String, usize>,
    nodes: Vec<Node>,
}

impl Model {
    fn dirs(&self) -> Vec<String> {
        let mut v = vec!["/".to_string()];
        v.extend(
            self.paths
                .iter()
                .filter(|(_, &n)| self.nodes[n] == Node::Dir)
                .map(|(p, _)| p.clone()),
        );
        v
    }
    fn files(&self) -> Vec<String> {
        self.paths
            .iter()
            .filter(|(_, &n)| matches!(self.nodes[n], Node::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }
}

fn run_case(args: &[&str], ops: &[Op], flush_often: bool) -> Result<(), TestCaseError> {
    let img = Img::new(args, None, 4);
    let mut fs = img.open_rw();
    if flush_often {
        fs.set_auto_flush_bytes(0);
    }
    let mut m = Model {
        paths: BTreeMap::new(),
        nodes: Vec::new(),
    };
    let ino_of = |fs: &Ext<_>, p: &str| fs.resolve(p.as_bytes(), false).unwrap();
    for op in ops {
        match op.clone() {
            Op::Create {
                dir,
                name,
                len,
                seed,
            } => {
                let dirs = m.dirs();
                let d = &dirs[dir % dirs.len()];
                let p = join(d, &nm(name));
                let content = data(len, seed);
                let r = fs.create_file(
                    ino_of(&fs, d),
                    nm(name).as_bytes(),
                    &node(0o644, 1),
                    &mut &content[..],
                    len as u64,
                );
                match r {
                    Ok(_) => {
                        prop_assert!(!m.paths.contains_key(&p), "created over {p}");
                        m.nodes.push(Node::File(content));
                        m.paths.insert(p, m.nodes.len() - 1);
                    }
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        prop_assert!(m.paths.contains_key(&p))
                    }
                    Err(e) if e.kind() == ErrorKind::NoSpace => {}
                    Err(e) => return Err(TestCaseError::fail(format!("create {p}: {e}"))),
                }
            }
            Op::Replace { file, len, seed } => {
                let files = m.files();
                if files.is_empty() {
                    continue;
                }
                let p = &files[file % files.len()];
                let content = data(len, seed);
                let r = fs.replace_contents(
                    ino_of(&fs, p),
                    &mut &content[..],
                    len as u64,
                    domuify::ext::Timestamp::now(),
                );
                match r {
                    Ok(()) => {
                        let n = m.paths[p];
                        m.nodes[n] = Node::File(content);
                    }
                    Err(e) if e.kind() == ErrorKind::NoSpace => {}
                    Err(e) => return Err(TestCaseError::fail(format!("replace {p}: {e}"))),
                }
            }
            Op::Mkdir { dir, name } => {
                let dirs = m.dirs();
                let d = &dirs[dir % dirs.len()];
                let p = join(d, &nm(name));
                match fs.mkdir(ino_of(&fs, d), nm(name).as_bytes(), &node(0o755, 1)) {
                    Ok(_) => {
                        prop_assert!(!m.paths.contains_key(&p));
                        m.nodes.push(Node::Dir);
                        m.paths.insert(p, m.nodes.len() - 1);
                    }
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        prop_assert!(m.paths.contains_key(&p))
                    }
                    Err(e) if e.kind() == ErrorKind::NoSpace => {}
                    Err(e) => return Err(TestCaseError::fail(format!("mkdir {p}: {e}"))),
                }
            }
            Op::Symlink { dir, name, tlen } => {
                let dirs = m.dirs();
                let d = &dirs[dir % dirs.len()];
                let p = join(d, &nm(name));
                let target: Vec<u8> = (0..tlen).map(|i| b'a' + (i % 26) as u8).collect();
                match fs.symlink(
                    ino_of(&fs, d),
                    nm(name).as_bytes(),
                    &target,
                    &node(0o777, 1),
                ) {
                    Ok(_) => {
                        prop_assert!(!m.paths.contains_key(&p));
                        m.nodes.push(Node::Link(target));
                        m.paths.insert(p, m.nodes.len() - 1);
                    }
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        prop_assert!(m.paths.contains_key(&p))
                    }
                    Err(e) if e.kind() == ErrorKind::NoSpace => {}
                    Err(e) => return Err(TestCaseError::fail(format!("symlink {p}: {e}"))),
                }
            }
            Op::Link { file, dir, name } => {
                let files = m.files();
                if files.is_empty() {
                    continue;
                }
                let src = files[file % files.len()].clone();
                let dirs = m.dirs();
                let d = &dirs[dir % dirs.len()];
                let p = join(d, &nm(name));
                match fs.link(ino_of(&fs, d), nm(name).as_bytes(), ino_of(&fs, &src)) {
                    Ok(()) => {
                        prop_assert!(!m.paths.contains_key(&p));
                        let n = m.paths[&src];
                        m.paths.insert(p, n);
                    }
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        prop_assert!(m.paths.contains_key(&p))
                    }
                    Err(e) if e.kind() == ErrorKind::NoSpace => {}
                    Err(e) => return Err(TestCaseError::fail(format!("link {p}: {e}"))),
                }
            }
            Op::Unlink { file } => {
                let files: Vec<String> = m
                    .paths
                    .iter()
                    .filter(|(_, &n)| m.nodes[n] != Node::Dir)
                    .map(|(p, _)| p.clone())
                    .collect();
                if files.is_empty() {
                    continue;
                }
                let p = &files[file % files.len()];
                let (d, name) = parent_of(p);
                fs.unlink(ino_of(&fs, d), name.as_bytes())
                    .map_err(|e| TestCaseError::fail(format!("unlink {p}: {e}")))?;
                m.paths.remove(p);
            }
            Op::RemoveTree { dir } => {
                let dirs = m.dirs();
                if dirs.len() < 2 {
                    continue;
                }
                let p = dirs[1 + dir % (dirs.len() - 1)].clone();
                let (d, name) = parent_of(&p);
                fs.remove_tree(ino_of(&fs, d), name.as_bytes())
                    .map_err(|e| TestCaseError::fail(format!("remove_tree {p}: {e}")))?;
                let prefix = format!("{p}/");
                m.paths.retain(|k, _| k != &p && !k.starts_with(&prefix));
            }
            Op::Flush => fs
                .flush()
                .map_err(|e| TestCaseError::fail(format!("flush: {e}")))?,
        }
    }
    fs.flush().unwrap();
    drop(fs);
    let (rc, out) = img.fsck();
    prop_assert_eq!(rc, 0, "e2fsck after {:?}:\n{}", ops, out);
    // Read back with ext4-view and compare.
    let v = ext4_view::Ext4::load(Box::new(img.window(Access::ReadOnly))).unwrap();
    let mut seen = BTreeMap::new();
    let mut stack = vec!["/".to_string()];
    while let Some(d) = stack.pop() {
        for e in v.read_dir(d.as_str()).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().as_str().unwrap().to_string();
            if name == "." || name == ".." || (d == "/" && name == "lost+found") {
                continue;
            }
            let p = join(&d, &name);
            let md = v.symlink_metadata(p.as_str()).unwrap();
            let n = if md.is_dir() {
                stack.push(p.clone());
                Node::Dir
            } else if md.is_symlink() {
                Node::Link(v.read_link(p.as_str()).unwrap().as_ref().to_vec())
            } else {
                Node::File(v.read(p.as_str()).unwrap())
            };
            seen.insert(p, n);
        }
    }
    let want: BTreeMap<String, Node> = m
        .paths
        .iter()
        .map(|(p, &n)| (p.clone(), m.nodes[n].clone()))
        .collect();
    prop_assert!(seen == want, "tree differs after {:?}", ops);
    let _ = ROOT_INO;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_prop_ext4_1k(ops in prop::collection::vec(op(), 1..80)) {
        run_case(&["-t", "ext4", "-b", "1024"], &ops, false)?;
    }

    #[test]
    fn engine_prop_ext2(ops in prop::collection::vec(op(), 1..80)) {
        // Flushing after every step (and between the directories of a tree
        // removal) must leave the same result.
        run_case(&["-t", "ext2", "-b", "1024"], &ops, true)?;
    }
}
