//! Workload certificates made with the openssl CLI: a test CA (`wca`), another CA (`other`),
//! and leaves signed by them with chosen extensions and validity (`openssl ca`, so the
//! start date can be in the past: the harness clock starts at `T0`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): install the Debian package `openssl`"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub struct Cas {
    pub dir: PathBuf,
}

/// A CA named `name` in `dir` (`NAME.crt`, `NAME.key`, and its `openssl ca` database).
fn ca(dir: &Path, name: &str) {
    let key = format!("{name}.key");
    let crt = format!("{name}.crt");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
        ]
        .iter()
        .copied()
        .chain(["-days", "3650", "-subj", &format!("/CN={name} test CA")])
        .collect::<Vec<_>>(),
    );
    std::fs::create_dir_all(dir.join(format!("{name}.db"))).unwrap();
    std::fs::write(dir.join(format!("{name}.db/index.txt")), "").unwrap();
    std::fs::write(dir.join(format!("{name}.db/serial")), "1000\n").unwrap();
    std::fs::write(
        dir.join(format!("{name}.cnf")),
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndir = {name}.db\ndatabase = $dir/index.txt\nnew_certs_dir = $dir\n\
             serial = $dir/serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\ncopy_extensions = none\n\
             [p]\ncommonName = supplied\n"
        ),
    )
    .unwrap();
}

impl Cas {
    pub fn new(dir: &Path) -> Cas {
        ca(dir, "wca");
        ca(dir, "other");
        Cas { dir: dir.to_path_buf() }
    }

    /// A client certificate `NAME.crt`/`NAME.key` signed by CA `by`, with these extensions,
    /// valid from `start` to `end` (`YYYYMMDDHHMMSSZ`).
    pub fn leaf(&self, by: &str, name: &str, ext: &str, start: &str, end: &str) {
        let d = &self.dir;
        let (key, csr, crt, extf) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
            ]
            .iter()
            .copied()
            .chain([format!("/CN={name}").as_str()])
            .collect::<Vec<_>>(),
        );
        std::fs::write(d.join(&extf), ext).unwrap();
        openssl(
            d,
            &[
                "ca",
                "-batch",
                "-notext",
                "-config",
                &format!("{by}.cnf"),
                "-cert",
                &format!("{by}.crt"),
                "-keyfile",
                &format!("{by}.key"),
                "-in",
                &csr,
                "-out",
                &crt,
                "-startdate",
                start,
                "-enddate",
                end,
                "-extfile",
                &extf,
            ],
        );
    }
}

/// The extensions of an X.509-SVID client certificate for `ids` (URI SANs).
pub fn svid_ext(ids: &[&str]) -> String {
    let sans: Vec<String> = ids.iter().map(|i| format!("URI:{i}")).collect();
    format!(
        "subjectAltName = {}\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\nbasicConstraints = critical, CA:FALSE\n",
        sans.join(", ")
    )
}

/// A plain client certificate (no URI SAN): named by its subject.
pub const PLAIN_EXT: &str = "keyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\n";

/// Valid around the harness clock's `T0` (2026-11-23T12:00Z) and the real time of the run.
pub const LONG_AGO: &str = "20260101000000Z";
pub const JUST_BEFORE_T0: &str = "20261123115900Z";
pub const FAR: &str = "20360101000000Z";
