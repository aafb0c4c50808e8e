//! The private CA and the leaf certificate the servers present. rustls refuses a self-signed
//! leaf (`CaUsedAsEndEntity`) and a trusted leaf without its CA (`UnknownIssuer`), so this makes a
//! CA and a separate leaf for `localhost` and `127.0.0.1`, with the openssl command-line tool.
//! The material is made once per test binary and copied into each server directory.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

pub struct TlsMaterial {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

pub fn material() -> &'static TlsMaterial {
    static MATERIAL: OnceLock<TlsMaterial> = OnceLock::new();
    MATERIAL.get_or_init(make)
}

fn make() -> TlsMaterial {
    let dir = tempfile::Builder::new()
        .prefix("pushback-tls.")
        .tempdir()
        .expect("cannot create a temp dir for the test CA");
    let d = dir.path();
    let leaf_ext = "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
                    basicConstraints=critical,CA:FALSE\n\
                    keyUsage=critical,digitalSignature\n\
                    extendedKeyUsage=serverAuth\n";
    fs::write(d.join("leaf.ext"), leaf_ext).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        d,
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-sha256",
                "-days",
                "3650",
                "-subj",
                "/CN=pushback test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ],
    );
    openssl(
        d,
        &[
            &["req", "-new"],
            &ec[..],
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ],
        ],
    );
    openssl(
        d,
        &[&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-sha256",
            "-days",
            "3650",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ]],
    );
    let read = |name: &str| fs::read(d.join(name)).unwrap();
    TlsMaterial {
        ca_pem: read("ca.pem"),
        cert_pem: read("cert.pem"),
        key_pem: read("key.pem"),
    }
}

fn openssl(dir: &Path, args: &[&[&str]]) {
    let args: Vec<&str> = args.concat();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("cannot run openssl: install the `openssl` package (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
