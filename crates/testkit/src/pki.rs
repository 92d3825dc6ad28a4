//! A throwaway PKI for TLS tests: a CA, a server certificate for `localhost` / `127.0.0.1`,
//! and a client certificate, written as PEM files.

use std::path::PathBuf;

/// The PEM files, in a temporary directory removed when dropped: `ca.crt`, `server.crt`,
/// `server.key`, `client.crt`, `client.key`.
pub struct Pki {
    /// The directory holding the files.
    pub dir: tempfile::TempDir,
    /// The CA certificate.
    pub ca_pem: String,
}

impl Pki {
    /// Generates the CA and the two certificates.
    pub fn generate() -> Pki {
        let dir = tempfile::tempdir().expect("tmp");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        for (name, names) in [
            (
                "server",
                vec!["localhost".to_string(), "127.0.0.1".to_string()],
            ),
            ("client", vec!["rthanos-client".to_string()]),
        ] {
            let params = rcgen::CertificateParams::new(names).expect("params");
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, &issuer).expect("sign");
            std::fs::write(dir.path().join(format!("{name}.crt")), cert.pem()).expect("cert");
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem())
                .expect("key");
        }
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).expect("ca");
        Pki {
            dir,
            ca_pem: ca.pem(),
        }
    }

    /// The path of one of the files.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}
