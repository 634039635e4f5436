"""A throwaway PostgreSQL cluster for the tests: initdb into a temporary directory, started with
pg_ctl on 127.0.0.1 (a free port) and a Unix socket in that directory, trust authentication,
and stopped and deleted at the end. The PostgreSQL bridge tests use one when no server answers
(and DATABASE_URL is not set), and the durable tier's tests always start one, with
wal_level=logical.

initdb refuses to run as root: as root the cluster belongs to the `postgres` system user, which
the PostgreSQL packages create.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile

from interop_router import free_tcp_port

INSTALL_HINT = (
    "install the PostgreSQL server (Debian: apt-get install postgresql, which brings initdb and "
    "pg_ctl and the `postgres` user), or set DATABASE_URL to a server"
)


def find_bindir() -> str | None:
    """The directory of initdb and pg_ctl: on PATH, else Debian's versioned directory."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(on_path))
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    return None


def make_ca_and_server_cert(directory: str, name: str = "switchboard test") -> dict:
    """A CA and a server certificate for 127.0.0.1 and localhost signed by it, as PEM files in
    `directory`: {"ca", "cert", "key"} paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": os.path.join(directory, "ca.pem"), "cert": os.path.join(directory, "server.pem"),
             "key": os.path.join(directory, "server.key")}
    with open(paths["ca"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key"], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(paths["key"], 0o600)
    return paths


class Cluster:
    """One throwaway cluster; `settings` go into postgresql.conf. With `tls_only`, the server
    has a certificate of a CA of its own (`self.tls["ca"]`) and refuses connections over TCP
    without TLS."""

    def __init__(self, settings: dict | None = None, tls_only: bool = False):
        self.settings = settings or {}
        self.tls_only = tls_only
        self.tls = None
        self.bindir = None
        self.datadir = None
        self.port = None
        self.user = "postgres"
        self._as = None

    def _run(self, args: list, **kwargs):
        if self._as is not None:
            args = ["runuser", "-u", self._as, "--"] + args
        return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)

    def start(self) -> "Cluster":
        self.bindir = find_bindir()
        if self.bindir is None:
            raise RuntimeError(f"initdb and pg_ctl were not found: {INSTALL_HINT}")
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as e:
                raise RuntimeError(f"initdb cannot run as root and there is no `postgres` user: {INSTALL_HINT}") from e
            self._as = "postgres"
        self.datadir = tempfile.mkdtemp(prefix="sb-pgcluster-")
        if self._as is not None:
            os.chown(self.datadir, owner.pw_uid, owner.pw_gid)
        data = os.path.join(self.datadir, "data")
        initdb = self._run([os.path.join(self.bindir, "initdb"), "-D", data, "-U", self.user, "--auth=trust",
                            "-E", "UTF8", "--no-sync", "--no-instructions"])
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stderr[-2000:]}")
        self.port = free_tcp_port()
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.datadir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_connections": "100",
        }
        if self.tls_only:
            self.tls = make_ca_and_server_cert(self.datadir)
            if self._as is not None:
                for path in (self.tls["cert"], self.tls["key"]):
                    os.chown(path, owner.pw_uid, owner.pw_gid)
            conf.update({"ssl": "on", "ssl_cert_file": f"'{self.tls['cert']}'",
                         "ssl_key_file": f"'{self.tls['key']}'"})
            hba = ("local all all trust\n"
                   "hostssl all all 127.0.0.1/32 trust\n"
                   "hostssl replication all 127.0.0.1/32 trust\n"
                   "hostnossl all all 127.0.0.1/32 reject\n"
                   "hostnossl replication all 127.0.0.1/32 reject\n")
            written = self._run(["sh", "-c", f"cat > '{data}/pg_hba.conf'"], input=hba)
            if written.returncode != 0:
                raise RuntimeError(f"cannot write pg_hba.conf: {written.stderr}")
        conf.update({k: str(v) for k, v in self.settings.items()})
        lines = "".join(f"{k} = {v}\n" for k, v in conf.items())
        appended = self._run(["sh", "-c", f"cat >> '{data}/postgresql.conf'"], input=lines)
        if appended.returncode != 0:
            raise RuntimeError(f"cannot write postgresql.conf: {appended.stderr}")
        started = self._run([os.path.join(self.bindir, "pg_ctl"), "-D", data, "-l", os.path.join(self.datadir, "log"),
                             "-w", "-t", "60", "start"])
        if started.returncode != 0:
            log = ""
            try:
                with open(os.path.join(self.datadir, "log")) as f:
                    log = f.read()[-2000:]
            except OSError:
                pass
            raise RuntimeError(f"pg_ctl start failed: {started.stderr[-1000:]}\n{log}")
        return self

    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.datadir is None:
            return
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", os.path.join(self.datadir, "data"),
                   "-m", "immediate", "stop"])
        shutil.rmtree(self.datadir, ignore_errors=True)
        self.datadir = None
